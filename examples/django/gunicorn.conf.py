"""gunicorn's settings (`gunicorn -c /app/gunicorn.conf.py refapp.wsgi`, the image's default command)."""

import os

import django
from django.core.management import call_command

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# 2 * CPUs + 1 sync workers (the CPUs this container may use), unless GUNICORN_WORKERS says otherwise.
workers = int(os.environ.get("GUNICORN_WORKERS") or 2 * len(os.sched_getaffinity(0)) + 1)
# On SIGTERM (docker stop) the workers finish their requests for up to 8 s: within compose's 10 s before SIGKILL.
graceful_timeout = 8
timeout = 30
accesslog = "-"
errorlog = "-"


def on_starting(server):
    """Collect the static files into STATIC_ROOT once, in the master, before any worker starts."""
    django.setup()
    call_command("collectstatic", "--noinput", verbosity=0)
