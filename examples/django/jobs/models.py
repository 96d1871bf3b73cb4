"""The two tables the tasks write: one row per task id, one row per execution (duplicates are countable)."""

from django.db import models


class Task(models.Model):
    id = models.TextField(primary_key=True)
    release = models.TextField()
    done_at = models.DateTimeField()

    class Meta:
        db_table = "app_tasks"


class TaskRun(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="runs")
    release = models.TextField()
    worker = models.TextField()
    run_at = models.DateTimeField()

    class Meta:
        db_table = "app_task_runs"
