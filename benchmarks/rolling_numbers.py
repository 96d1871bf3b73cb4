#!/usr/bin/env python3
"""Rolling deploys under load (issue 11): rollout time per host and in total, failed requests, lost or
duplicated tasks, and the time from a failed smoke test to the whole site serving the previous release.

    make scenario S=rolling CMD=converge         # keeps the test hosts (rolling-web, -app1, -app2, -data)
    benchmarks/rolling_numbers.py                # rollouts to the other good release, to `broken`, and back
    benchmarks/rolling_numbers.py rollout v2     # one rollout under load; prints its result as JSON
                                                 # (molecule/rolling/verify.yml asserts on it)

A load generator (threads in this process, bounded in time and count) sends GET /version/ and every 10th
request a POST /tasks/ (a Celery task) to the nginx host's address on the scenario network while
`playbooks/deploy.yml` runs, and for a few seconds after it. Each request uses its own connection. Afterwards
the script waits until Celery's queues in Redis and its unacknowledged messages are empty and counts each
enqueued task's executions in the reference application's app_task_runs table (examples/django).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "molecule" / "rolling"
WEB, DATA = "rolling-web", "rolling-data"
HOST_HEADER = "www.example.test"
REDIS = ["redis-cli", "--no-auth-warning", "-a", "redis-test-password"]


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout.strip()


def container_ip(name: str) -> str:
    return sh("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name).split()[0]


class Load:
    """Steady traffic through nginx: `workers` threads, each at most `rate` requests per second."""

    def __init__(self, address: str, workers: int = 4, rate: float = 8.0, max_seconds: float = 900,
                 max_requests: int = 200_000) -> None:
        self.address, self.workers, self.rate = address, workers, rate
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, str, int, str]] = []  # (time, method, status or 0, release or error)
        self.tasks: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]

    def _one(self, method: str, path: str) -> tuple[int, dict | str]:
        conn = http.client.HTTPConnection(self.address, 80, timeout=15)
        try:
            conn.request(method, path, headers={"Host": HOST_HEADER, "Connection": "close"})
            response = conn.getresponse()
            body = response.read()
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, body[:200].decode(errors="replace")
        finally:
            conn.close()

    def _run(self, index: int) -> None:
        count = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if len(self.results) >= self.max_requests:
                    return
            count += 1
            method, path = ("POST", "/tasks/") if count % 10 == index % 10 else ("GET", "/version/")
            started = time.time()
            try:
                status, body = self._one(method, path)
                release = body.get("release", "?") if isinstance(body, dict) else f"non-json: {body}"
                if method == "POST" and status == 202 and isinstance(body, dict):
                    with self.lock:
                        self.tasks.append(body["task"])
            except (OSError, http.client.HTTPException) as exc:
                status, release = 0, f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.results.append((started, method, status, release))
            time.sleep(max(0.0, 1.0 / self.rate - (time.time() - started)))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


# Messages waiting in Celery's queues (the list `celery` and its priority lists) plus the unacknowledged ones (the hash
# `unacked`: tasks a worker took and has not acknowledged yet, acks_late), counted in one call.
PENDING_SCRIPT = ("local n = redis.call('HLEN', 'unacked') "
                  "for _, k in ipairs(redis.call('KEYS', 'celery*')) do "
                  "if redis.call('TYPE', k).ok == 'list' then n = n + redis.call('LLEN', k) end end return n")


def wait_for_tasks(timeout: float = 180) -> None:
    """Wait until no Celery task is queued or running (a lost task then shows as missing from app_task_runs)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if int(sh("docker", "exec", DATA, *REDIS, "eval", PENDING_SCRIPT, "0") or 0) == 0:
            return
        time.sleep(2)


def task_runs() -> dict[str, int]:
    out = sh("docker", "exec", DATA, "runuser", "-u", "postgres", "--", "psql", "-XAt", "-F", " ", "-d", "app",
             "-c", "SELECT task_id, count(*) FROM app_task_runs GROUP BY task_id")
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}


def rollout(release: str, after_seconds: float = 6.0, extra: list[str] | None = None) -> dict:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        ROOT / ".cache" / "molecule" / "rolling-trixie" / "inventory" / "ansible_inventory.yml")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_SHOW_CUSTOM_STATS="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    env.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    load = Load(container_ip(WEB))
    load.start()
    time.sleep(2)
    started = time.time()
    run = subprocess.run(["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / "deploy.yml"),
                          "-e", f"@{SCENARIO / 'vars' / 'stack.yml'}", "-e", f"app_release={release}",
                          *(extra or [])], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    finished = time.time()
    time.sleep(after_seconds)
    load.finish()
    try:
        report = json.loads(run.stdout[run.stdout.index("{"):])
    except ValueError:
        report = {}
    stats = report.get("global_custom_stats", {})
    wait_for_tasks()
    runs = task_runs()
    during = [r for r in load.results if started <= r[0] < finished]
    after = [r for r in load.results if r[0] >= finished + 1]
    failed = [r for r in load.results if r[2] == 0 or r[2] >= 500]
    return {
        "release": release,
        "rc": run.returncode,
        "seconds_total": round(finished - started, 1),
        "hosts": stats.get("deploy_releases", {}),
        "failure": stats.get("deploy_failure"),
        "changed": {host: s.get("changed", 0) for host, s in report.get("stats", {}).items()},
        "requests": len(load.results),
        "failed_requests": len(failed),
        "not_2xx": len([r for r in load.results if not 200 <= r[2] < 300]),
        "failed_samples": [list(r) for r in failed[:10]],
        "releases_during": sorted({r[3] for r in during if r[1] == "GET" and r[2] == 200}),
        "releases_after": sorted({r[3] for r in after if r[1] == "GET" and r[2] == 200}),
        "responses_after": len(after),
        "tasks_enqueued": len(load.tasks),
        "tasks_lost": len([t for t in load.tasks if t not in runs]),
        "tasks_duplicated": len([t for t in load.tasks if runs.get(t, 0) > 1]),
        "any_task_run_twice": len([t for t, n in runs.items() if n > 1]),
        "playbook_tail": [] if run.returncode == 0 else (run.stderr + run.stdout)[-3000:].splitlines()[-40:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "rollout"])
    parser.add_argument("release", nargs="?")
    args = parser.parse_args()
    if args.command == "rollout":
        print(json.dumps(rollout(args.release)))
        return 0
    current = sh("docker", "exec", "rolling-app1", "readlink", "/srv/app/current").rsplit("/", 1)[-1]
    other = "v1" if current == "v2" else "v2"
    rows = [rollout(other), rollout("broken"), rollout(current)]
    for row in rows:
        print(f"\nrollout to {row['release']}: rc={row['rc']}, total {row['seconds_total']} s "
              f"(checks + migration + hosts), requests {row['requests']}, failed or 5xx {row['failed_requests']}, "
              f"tasks enqueued {row['tasks_enqueued']}, lost {row['tasks_lost']}, duplicated {row['tasks_duplicated']}")
        for host, h in sorted(row["hosts"].items()):
            print(f"  {host}: {h['before']} -> {h['after']}, {h['seconds']} s, drain {h['drain_seconds']} s, "
                  f"smoke {h['smoke']}{', rolled back' if h['rolled_back'] else ''}")
        if row["failure"]:
            print(f"  failed smoke test -> whole site on the previous release: {row['failure']['recovery_seconds']} s"
                  " (goal: under 300 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
