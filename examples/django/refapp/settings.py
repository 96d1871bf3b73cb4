"""Settings of the reference application, all read from the environment (the app role's app_env and app_secrets).

Secrets come from files (``*_FILE``, mounted by compose under /run/secrets/), never from the environment itself,
so ``docker inspect`` and the role's .env file show no password.
"""

import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    return os.environ.get(name, default).strip()


def secret(name, required=True):
    """The value of NAME, or the content of the file NAME_FILE (one trailing newline removed)."""
    if os.environ.get(name):
        return os.environ[name]
    path = env(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().removesuffix("\n")
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    if required:
        raise ImproperlyConfigured(f"set {name}_FILE (a secret file) or {name}")
    return ""


def database(url, password):
    """A DATABASES entry from postgresql://user[:password]@host[:port][,host[:port]...]/name[?option=value&...].

    Several hosts (libpq's multi-host form, e.g. every HAProxy of a Patroni cluster with
    ``target_session_attrs=read-write``) are tried in order: the first that answers as asked is used.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ImproperlyConfigured(f"not a postgresql://user@host:port/name URL: {parts.scheme}://{parts.netloc}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, _, url_password = userinfo.partition(":")
    hosts, ports = [], []
    for item in hostlist.split(","):
        host, _, port = item.rpartition(":")
        if not port.isdigit():
            host, port = item, ""
        hosts.append(host)
        ports.append(port or "5432")
    options = dict(option.split("=", 1) for option in parts.query.split("&") if "=" in option)
    options.setdefault("connect_timeout", "2")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.strip("/")),
        "USER": unquote(user),
        "PASSWORD": password or unquote(url_password),
        "HOST": ",".join(hosts),
        "PORT": ",".join(ports),
        "OPTIONS": options,
        # Connections are reused for a minute and checked before reuse (a failover or a restarted PgBouncer
        # does not break the next request).
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        # PgBouncer in transaction pooling mode cannot keep a server-side cursor between transactions.
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }


def redis_url(url, password):
    """REDIS_URL with the password of REDIS_PASSWORD_FILE put in (quoted: any character is allowed)."""
    if not password:
        return url
    parts = urlsplit(url)
    netloc = f":{quote(password, safe='')}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


RELEASE = env("APP_RELEASE", "dev")
# Test hooks of the image (build args BROKEN and SMOKE_BROKEN, see refapp/faults.py); empty in a real image.
BROKEN = bool(env("APP_BROKEN"))
SMOKE_BROKEN = bool(env("APP_SMOKE_BROKEN"))
# Seconds the `record` task works before it writes its rows; seconds between two beat heartbeats.
TASK_SECONDS = float(env("APP_TASK_SECONDS", "0.2"))
BEAT_SECONDS = float(env("APP_BEAT_SECONDS", "30"))
# The `worker` column of app_task_runs.
WORKER_ID = env("APP_WORKER_ID") or os.uname().nodename

SECRET_KEY = secret("DJANGO_SECRET_KEY")
DEBUG = False
# localhost and 127.0.0.1 always: the compose health check and the smoke test ask for them.
ALLOWED_HOSTS = ["localhost", "127.0.0.1", *(host.strip() for host in env("DJANGO_ALLOWED_HOSTS").split(","))]
ALLOWED_HOSTS = [host for host in ALLOWED_HOSTS if host]

INSTALLED_APPS = ["django.contrib.staticfiles", "jobs"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Checks the Host header against ALLOWED_HOSTS (400 otherwise).
    "django.middleware.common.CommonMiddleware",
    "refapp.faults.FaultMiddleware",
]
ROOT_URLCONF = "refapp.urls"
WSGI_APPLICATION = "refapp.wsgi.application"
# The URLs answer with and without their trailing slash (see refapp/urls.py), never with a redirect.
APPEND_SLASH = False
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]

if not env("DATABASE_URL"):
    raise ImproperlyConfigured("set DATABASE_URL (postgresql://user@host:port/name)")
_db_password = secret("DATABASE_PASSWORD", required=False)
DATABASES = {"default": database(env("DATABASE_URL"), _db_password)}
if env("DATABASE_READ_URL"):
    # Reads go to the replicas (e.g. HAProxy's read port of a Patroni cluster), writes to DATABASE_URL.
    DATABASES["replica"] = database(env("DATABASE_READ_URL"), _db_password)
    DATABASE_ROUTERS = ["refapp.routers.ReadReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url(env("REDIS_URL", "redis://127.0.0.1:6379/0"), secret("REDIS_PASSWORD", required=False))
# With Redis Sentinel (REDIS_SENTINELS=host:26379,host:26379,...): the master is asked of the Sentinels, named
# REDIS_SENTINEL_MASTER; REDIS_URL then gives only the database number and the password (its host is unused).
REDIS_SENTINELS = [
    (host, int(port or 26379))
    for host, _, port in (item.strip().partition(":") for item in env("REDIS_SENTINELS").split(","))
    if host
]
REDIS_SENTINEL_MASTER = env("REDIS_SENTINEL_MASTER", "mymaster")
REDIS_SENTINEL_PASSWORD = secret("REDIS_SENTINEL_PASSWORD", required=False)

USE_TZ = True
TIME_ZONE = "UTC"

# collectstatic (run by gunicorn.conf.py when the web starts) writes here: a host directory bind-mounted on
# /app/static is what nginx serves. Hashed names (style.<hash>.css) can be cached for a long time.
STATIC_URL = "/static/"
STATIC_ROOT = env("STATIC_ROOT", "/app/static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# Everything goes to stdout/stderr (docker logs); with DEBUG off Django would otherwise print no tracebacks.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

# Celery (refapp/celery.py reads every CELERY_* setting).
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
if REDIS_SENTINELS:
    # kombu and Celery's result backend: one sentinel:// URL per Sentinel, the master by name.
    _redis = urlsplit(REDIS_URL)
    _auth = f"{_redis.netloc.rpartition('@')[0]}@" if "@" in _redis.netloc else ""
    CELERY_BROKER_URL = ";".join(f"sentinel://{_auth}{host}:{port}{_redis.path}" for host, port in REDIS_SENTINELS)
    CELERY_RESULT_BACKEND = CELERY_BROKER_URL
    _sentinel_options = {"master_name": REDIS_SENTINEL_MASTER}
    if REDIS_SENTINEL_PASSWORD:
        _sentinel_options["sentinel_kwargs"] = {"password": REDIS_SENTINEL_PASSWORD}
    CELERY_BROKER_TRANSPORT_OPTIONS = dict(_sentinel_options)
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = dict(_sentinel_options)
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Acknowledge a task after it ran, not when a worker takes it: the message of a task whose worker died mid-task
# stays in Redis and is delivered again (on Redis after the visibility timeout, one hour by default).
CELERY_TASK_ACKS_LATE = True
# ... also when the worker's child process is killed (OOM, SIGKILL): the task is requeued, not marked failed.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker process reserves one message at a time: a stopping worker holds back no queue of tasks.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "heartbeat", "schedule": BEAT_SECONDS},
}
