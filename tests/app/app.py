#!/usr/bin/env python3
"""The test application of opsforge.stack: a tiny web + worker + scheduler stack like Django + Celery.

One image, three roles (argv[1]):
  web        HTTP on $APP_PORT (default 8000): /healthz (checks PostgreSQL and Redis), /release, /tasks
  worker     takes task ids from the Redis list `app:queue` and writes one row per task in app_tasks and one
             per execution in app_task_runs (late ack: the id moves to `app:processing:<APP_WORKER_ID>` while it
             runs and leaves it only after the rows are written)
  scheduler  enqueues a heartbeat task every $APP_BEAT_SECONDS
  migrate    creates the schema (idempotent)
Environment: APP_RELEASE, APP_BROKEN (web answers 500 when set), DATABASE_URL, REDIS_URL (redis://:pw@host:port/0).
Secrets: files under /run/secrets are read when DATABASE_PASSWORD_FILE / REDIS_PASSWORD_FILE name them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import redis

RELEASE = os.environ.get("APP_RELEASE", "unknown")
STOP = False


def _secret(name: str) -> str | None:
    path = os.environ.get(f"{name}_FILE")
    if path and os.path.exists(path):
        with open(path) as handle:
            return handle.read().strip()
    return os.environ.get(name)


def db():
    return psycopg2.connect(os.environ["DATABASE_URL"], password=_secret("DATABASE_PASSWORD"), connect_timeout=3)


def cache():
    url = urllib.parse.urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    return redis.Redis(host=url.hostname, port=url.port or 6379, password=_secret("REDIS_PASSWORD"),
                       socket_timeout=3, decode_responses=True)


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if os.environ.get("APP_BROKEN"):
            self._send(500, {"status": "broken", "release": RELEASE})
            return
        if self.path.startswith("/healthz"):
            checks = {}
            try:
                with db() as conn, conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM app_tasks")
                    checks["database"] = "up"
                    checks["tasks_done"] = cur.fetchone()[0]
            except Exception as exc:
                checks["database"] = f"down: {exc}"
            try:
                checks["redis"] = "up" if cache().ping() else "down"
            except Exception as exc:
                checks["redis"] = f"down: {exc}"
            ok = checks["database"] == "up" and checks["redis"] == "up"
            self._send(200 if ok else 503, {"status": "ok" if ok else "degraded", "release": RELEASE, **checks})
        else:
            self._send(200, {"release": RELEASE, "path": self.path})

    def do_POST(self) -> None:
        if self.path.startswith("/tasks"):
            task_id = f"{RELEASE}-{time.time_ns()}"
            cache().lpush("app:queue", task_id)
            self._send(202, {"task": task_id, "release": RELEASE})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, *args) -> None:
        pass


def migrate() -> None:
    for _ in range(30):
        try:
            with db() as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS app_tasks (id text PRIMARY KEY, release text,"
                            " done_at timestamptz DEFAULT now())")
                # One row per execution (no key): a task run twice shows up twice here.
                cur.execute("CREATE TABLE IF NOT EXISTS app_task_runs (task_id text, release text, worker text,"
                            " run_at timestamptz DEFAULT now())")
            print(f"migrated for release {RELEASE}")
            return
        except psycopg2.OperationalError as exc:
            print(f"waiting for the database: {exc}", file=sys.stderr)
            time.sleep(1)
    sys.exit("database unreachable")


def worker() -> None:
    client = cache()
    # Late acknowledgement: a task moves to app:processing:<worker> and leaves it only once its row exists;
    # a worker killed in between leaves it there, and the next start of that worker (APP_WORKER_ID, stable
    # across releases; default the container's host name) puts it back on the queue.
    worker_id = os.environ.get("APP_WORKER_ID") or os.environ.get("HOSTNAME", "w")
    processing = "app:processing:" + worker_id
    while client.llen(processing):
        client.rpoplpush(processing, "app:queue")
    while not STOP:
        task_id = client.brpoplpush("app:queue", processing, timeout=1)
        if not task_id:
            continue
        time.sleep(float(os.environ.get("APP_TASK_SECONDS", "0.2")))
        with db() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO app_tasks (id, release) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                        (task_id, RELEASE))
            cur.execute("INSERT INTO app_task_runs (task_id, release, worker) VALUES (%s, %s, %s)",
                        (task_id, RELEASE, worker_id))
        client.lrem(processing, 1, task_id)


def scheduler() -> None:
    client = cache()
    every = float(os.environ.get("APP_BEAT_SECONDS", "30"))
    while not STOP:
        client.lpush("app:queue", f"beat-{RELEASE}-{time.time_ns()}")
        for _ in range(int(every * 10)):
            if STOP:
                return
            time.sleep(0.1)


def _stop(*_args) -> None:
    global STOP  # noqa: PLW0603
    STOP = True


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    role = sys.argv[1] if len(sys.argv) > 1 else "web"
    if role == "web":
        server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("APP_PORT", "8000"))), Handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.serve_forever()
    elif role == "migrate":
        migrate()
    elif role == "worker":
        worker()
    elif role == "scheduler":
        scheduler()
    else:
        sys.exit(f"unknown role {role}: expected web, worker, scheduler or migrate")


if __name__ == "__main__":
    main()
