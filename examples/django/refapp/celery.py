"""The Celery application: `celery -A refapp worker` and `celery -A refapp beat` load it.

Its settings are the CELERY_* names of refapp/settings.py (broker and results on Redis, late acknowledgement,
one prefetched message per process, the beat schedule).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refapp.settings")

app = Celery("refapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Finds jobs/tasks.py (`record` and `heartbeat`).
app.autodiscover_tasks()
