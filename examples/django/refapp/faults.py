"""Test hooks: images built with BROKEN or SMOKE_BROKEN fail on purpose (the rollback tests of the app role).

BROKEN: /healthz/ answers 500, so the compose health check fails.
SMOKE_BROKEN: /healthz/ is fine (compose sees a healthy service), every other page answers 500, so a smoke
check of /version/ fails. A real image is built without them and this middleware passes every request on.
"""

from django.conf import settings
from django.http import JsonResponse


class FaultMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        health = request.path.rstrip("/") == "/healthz"
        if settings.BROKEN and health:
            return JsonResponse({"status": "broken", "release": settings.RELEASE}, status=500)
        if settings.SMOKE_BROKEN and not health:
            return JsonResponse({"status": "smoke-broken", "release": settings.RELEASE}, status=500)
        return self.get_response(request)
