"""The WSGI application gunicorn serves (`gunicorn -c /app/gunicorn.conf.py refapp.wsgi`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refapp.settings")

application = get_wsgi_application()
