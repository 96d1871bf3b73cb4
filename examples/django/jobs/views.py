"""The page and the task endpoint."""

import uuid

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Task
from .tasks import record


@csrf_exempt
@require_POST
def enqueue(request):
    """202 with the id of a new `record` task (the worker writes its rows)."""
    task_id = f"{settings.RELEASE}-{uuid.uuid4().hex}"
    record.delay(task_id)
    return JsonResponse({"task": task_id, "release": settings.RELEASE}, status=202)


@require_GET
def index(request):
    return render(request, "jobs/index.html", {"release": settings.RELEASE, "done": Task.objects.count()})
