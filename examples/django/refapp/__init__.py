"""The reference application of opsforge.stack: Django + Celery on PostgreSQL and Redis."""

from .celery import app as celery_app

__all__ = ["celery_app"]
