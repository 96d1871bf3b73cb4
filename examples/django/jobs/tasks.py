"""Celery tasks: `record` (enqueued by POST /tasks/) and `heartbeat` (scheduled by beat)."""

import time

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from .models import Task, TaskRun


def write(task_id):
    """One app_tasks row per id (kept when the task runs again) and one app_task_runs row per execution."""
    now = timezone.now()
    with transaction.atomic():
        # INSERT ... ON CONFLICT DO NOTHING on PostgreSQL: a second run of the same id does not fail.
        Task.objects.bulk_create([Task(id=task_id, release=settings.RELEASE, done_at=now)], ignore_conflicts=True)
        TaskRun.objects.create(task_id=task_id, release=settings.RELEASE, worker=settings.WORKER_ID, run_at=now)


# A database that does not answer (a failover in progress, a restarted PgBouncer) is waited for: the task is
# retried with backoff (jitter, up to 30 s apart, for about five minutes), never dropped as failed. Its
# transaction did not commit, so a retry cannot write a second run.
@shared_task(name="record", autoretry_for=(OperationalError, InterfaceError), retry_backoff=1, retry_backoff_max=30,
             retry_jitter=True, max_retries=20)
def record(task_id):
    time.sleep(settings.TASK_SECONDS)
    try:
        write(task_id)
    except (OperationalError, InterfaceError):
        connections.close_all()
        raise
    return task_id


@shared_task(name="heartbeat", bind=True)
def heartbeat(self):
    task_id = f"beat-{settings.RELEASE}-{self.request.id}"
    write(task_id)
    return task_id
