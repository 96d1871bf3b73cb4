"""Health and version endpoints (JSON)."""

import redis
import redis.sentinel
from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache


def _error(exc):
    """The first line of an error, for the health report."""
    text = str(exc).strip().splitlines()
    return f"down: {text[0] if text else type(exc).__name__}"


def _database():
    """'up' when every configured database (the primary, and the replicas when set) answers a query."""
    for alias in connections:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # any failure is reported, none is raised
            connections[alias].close()
            return _error(exc) if alias == "default" else f"{_error(exc)} ({alias})"
    return "up"


def redis_client():
    """A client of the Redis master: from REDIS_URL, or asked of the Sentinels (REDIS_SENTINELS)."""
    timeouts = {"socket_connect_timeout": 2, "socket_timeout": 2}
    if not settings.REDIS_SENTINELS:
        return redis.Redis.from_url(settings.REDIS_URL, **timeouts)
    url = redis.connection.parse_url(settings.REDIS_URL)
    sentinel = redis.sentinel.Sentinel(
        settings.REDIS_SENTINELS, sentinel_kwargs={"password": settings.REDIS_SENTINEL_PASSWORD or None, **timeouts},
        **timeouts,
    )
    return sentinel.master_for(
        settings.REDIS_SENTINEL_MASTER, password=url.get("password"), db=url.get("db", 0), **timeouts
    )


def _redis():
    try:
        client = redis_client()
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return _error(exc)
    return "up"


@never_cache
def healthz(request):
    """200 when PostgreSQL and Redis answer, else 503 naming what failed."""
    report = {"database": _database(), "redis": _redis()}
    healthy = all(value == "up" for value in report.values())
    body = {"status": "ok" if healthy else "degraded", "release": settings.RELEASE, **report}
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
def version(request):
    return JsonResponse({"release": settings.RELEASE})
