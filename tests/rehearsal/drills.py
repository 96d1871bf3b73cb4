#!/usr/bin/env python3
"""Failure drills of the production rehearsal, under steady HTTPS load through the web hosts.

    tests/rehearsal/drills.py --web web1,web2 --db db1,db2,db3 --site www.example.com --ca CA.pem

Run by scripts/rehearsal after the two converges (hosts are the rehearsal's test hosts, driven with `docker`).
Secrets come from the environment (REHEARSAL_REDIS_PASSWORD, REHEARSAL_SENTINEL_PASSWORD), never argv.

Each drill starts the load (threads, bounded in time and count, only to the web hosts' addresses): GET /version/
and every 5th request a POST /tasks/ (a Celery task that writes one row per execution in app_task_runs). A
client that fails on one web host tries the other, as a browser does with two addresses. Drills:
- patroni: `docker kill` of the Patroni leader: a new leader, writes succeed again, every row committed before
  the kill is still there (count + checksum), the old leader rejoins as a replica once started;
- redis: `docker kill` of the Redis master: Sentinel promotes a replica, tasks keep flowing, none lost;
- web: `docker kill` of one web/app host: the site keeps answering from the other; it rejoins when started.
Each prints `REHEARSAL-NUMBER <drill>: ...` (failed requests, recovery seconds, rows or tasks lost) and the whole
program exits 1 naming every drill whose goal was not met. A load that cannot reach the site fails at once.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

PENDING = ("local n = redis.call('HLEN', 'unacked') "
           "for _, k in ipairs(redis.call('KEYS', 'celery*')) do "
           "if redis.call('TYPE', k).ok == 'list' then n = n + redis.call('LLEN', k) end end return n")


class DrillError(Exception):
    """A drill's goal was not met (the message says which and by how much)."""


def sh(*argv: str, check: bool = True, env: dict | None = None, timeout: float = 120) -> str:
    run = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=timeout)
    if check and run.returncode != 0:
        raise DrillError(f"{' '.join(argv[:6])}... exited {run.returncode}: {run.stderr.strip()[-500:]}")
    return run.stdout.strip()


def ip_of(host: str) -> str:
    return sh("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", host).split()[0]


def running(host: str) -> bool:
    return sh("docker", "inspect", "-f", "{{.State.Running}}", host, check=False) == "true"


class Load:
    """HTTPS traffic to the site through the web hosts' addresses: `workers` threads, each at most `rate` per second."""

    def __init__(self, addresses: list[str], site: str, ca: str, workers: int = 4, rate: float = 5.0,
                 max_seconds: float = 600, max_requests: int = 50_000) -> None:
        self.addresses, self.site, self.rate = addresses, site, rate
        self.context = ssl.create_default_context(cafile=ca)
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, str, int, str]] = []  # (time, method, status or 0, detail)
        self.tasks: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]

    def _one(self, address: str, method: str, path: str) -> tuple[int, dict | str]:
        conn = http.client.HTTPSConnection(self.site, 443, timeout=10, context=self.context)
        conn.sock = self.context.wrap_socket(socket.create_connection((address, 443), timeout=3),
                                             server_hostname=self.site)
        try:
            conn.request(method, path, headers={"Connection": "close"})
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
            method, path = ("POST", "/tasks/") if count % 5 == 0 else ("GET", "/version/")
            started = time.time()
            status, detail = 0, ""
            # The first address this thread prefers, then the other (a browser with two A records).
            order = self.addresses[index % len(self.addresses):] + self.addresses[:index % len(self.addresses)]
            for address in order:
                try:
                    status, body = self._one(address, method, path)
                except (OSError, http.client.HTTPException) as exc:
                    status, detail = 0, f"{address}: {type(exc).__name__}: {exc}"
                    continue
                detail = body.get("release", "?") if isinstance(body, dict) else f"non-json: {body}"
                if method == "POST" and status == 202 and isinstance(body, dict):
                    with self.lock:
                        self.tasks.append(body["task"])
                if status < 500:
                    break
            with self.lock:
                self.results.append((started, method, status, detail))
            time.sleep(max(0.0, 1.0 / self.rate - (time.time() - started)))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        time.sleep(3)
        with self.lock:
            good = [r for r in self.results if 200 <= r[2] < 300]
        if not good:
            self.__exit__()
            raise DrillError(f"the load reaches no web host ({self.addresses}): {self.results[:3]}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def failed(self) -> list[tuple[float, str, int, str]]:
        return [r for r in self.results if r[2] == 0 or r[2] >= 500]


class Stack:
    """The rehearsal's hosts: Patroni and Redis/Sentinel on the database hosts."""

    def __init__(self, db: list[str], redis_password: str, sentinel_password: str, master_name: str) -> None:
        self.db, self.master_name = db, master_name
        self.redis_env = dict(os.environ, REDISCLI_AUTH=redis_password)
        self.sentinel_env = dict(os.environ, REDISCLI_AUTH=sentinel_password)

    def alive(self) -> list[str]:
        return [h for h in self.db if running(h)]

    def cluster(self) -> dict:
        for host in self.alive():
            out = sh("docker", "exec", host, "python3", "-c",
                     "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8008/cluster',"
                     " timeout=3).read().decode())", check=False)
            if out.startswith("{"):
                return json.loads(out)
        return {}

    def leader(self) -> str:
        members = [m for m in self.cluster().get("members", []) if m.get("role") == "leader"]
        return members[0]["name"] if members else ""

    def psql(self, sql: str) -> str:
        host = self.leader()
        if not host:
            raise DrillError("no Patroni leader to query")
        return sh("docker", "exec", host, "runuser", "-u", "postgres", "--", "psql", "-XAt", "-d", "app", "-c", sql)

    def rows(self) -> tuple[int, str]:
        """(count, checksum) of app_task_runs on the leader."""
        out = self.psql("SELECT count(*) || ' ' || coalesce(md5(string_agg(task_id::text || ':' || id::text, ','"
                        " ORDER BY id)), '') FROM app_task_runs")
        count, _, digest = out.partition(" ")
        return int(count), digest

    def rows_up_to(self, count: int) -> str:
        return self.psql(f"SELECT coalesce(md5(string_agg(task_id::text || ':' || id::text, ',' ORDER BY id)), '') "
                         f"FROM (SELECT task_id, id FROM app_task_runs ORDER BY id LIMIT {count}) first_rows")

    def task_runs(self) -> dict[str, int]:
        out = self.psql("SELECT task_id, count(*) FROM app_task_runs GROUP BY task_id")
        return {line.split("|")[0]: int(line.split("|")[1]) for line in out.splitlines() if "|" in line}

    def sentinel(self, *command: str) -> str:
        for host in self.alive():
            out = sh("docker", "exec", "-e", "REDISCLI_AUTH", host, "redis-cli", "-p", "26379", *command,
                     check=False, env=self.sentinel_env)
            if out:
                return out
        return ""

    def redis_master_address(self) -> str:
        """The master's address as the surviving Sentinels report it ("" when none answers)."""
        address = self.sentinel("sentinel", "get-master-addr-by-name", self.master_name).split()
        return address[0] if address else ""

    def redis_master(self) -> str:
        address = self.redis_master_address()
        for host in self.db:
            if address and running(host) and ip_of(host) == address:
                return host
        return address

    def pending_tasks(self) -> int:
        master = self.redis_master()
        out = sh("docker", "exec", "-e", "REDISCLI_AUTH", master, "redis-cli", "eval", PENDING, "0",
                 check=False, env=self.redis_env)
        return int(out) if out.lstrip("-").isdigit() else -1

    def wait_tasks(self, timeout: float = 240) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.pending_tasks() == 0:
                return
            time.sleep(2)


def wait_for(what: str, predicate, timeout: float) -> float:
    """Seconds until predicate() is true; DrillError naming `what` after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except DrillError:
            pass
        time.sleep(1)
    raise DrillError(f"{what}: not within {timeout:.0f} s")


def recovery(load: Load, since: float) -> float:
    """Seconds from `since` to the last failed request after it (0 when none failed)."""
    failed = [r[0] for r in load.failed() if r[0] >= since]
    return round(max(failed) - since, 1) if failed else 0.0


def lost_tasks(stack: Stack, load: Load) -> tuple[int, int]:
    """(tasks enqueued by the load that never ran, tasks enqueued), once nothing is queued or running.

    A task still held unacknowledged (its worker was killed mid-task: Redis delivers it again after the broker's
    visibility timeout) is not counted as lost while it is pending; the caller reports it.
    """
    stack.wait_tasks()
    runs = stack.task_runs()
    missing = len([t for t in load.tasks if t not in runs])
    return max(0, missing - max(0, stack.pending_tasks())), len(load.tasks)


def drill_patroni(stack: Stack, load_args: dict) -> str:
    old = stack.leader()
    if not old:
        raise DrillError("patroni: no leader before the drill")
    with Load(**load_args) as load:
        time.sleep(5)
        before_count, _ = stack.rows()
        before_digest = stack.rows_up_to(before_count)
        killed = time.time()
        sh("docker", "kill", old)
        promoted = wait_for("patroni: a new leader", lambda: stack.leader() not in ("", old), 120)
        time.sleep(15)
    count, _ = stack.rows()
    kept = stack.rows_up_to(before_count) == before_digest and count >= before_count
    lost, enqueued = lost_tasks(stack, load)
    new = stack.leader()
    sh("docker", "start", old)
    rejoined = wait_for(f"patroni: {old} back as a replica", lambda: any(
        m["name"] == old and m.get("role") in ("replica", "sync_standby") and m.get("state") in ("streaming", "running")
        for m in stack.cluster().get("members", [])), 240)
    line = (f"patroni leader kill ({old} -> {new}): new leader after {promoted:.1f} s, requests {len(load.results)}, "
            f"failed {len(load.failed())}, last failure {recovery(load, killed)} s after the kill, "
            f"rows before the kill {before_count} {'all kept (count + checksum)' if kept else 'CHANGED'}, "
            f"tasks {enqueued} enqueued, {lost} lost; {old} rejoined as a replica {rejoined:.0f} s after its start")
    if not kept or lost:
        raise DrillError(line)
    return line


def drill_redis(stack: Stack, load_args: dict) -> str:
    old = stack.redis_master()
    if old not in stack.db:
        raise DrillError(f"redis: Sentinel names no master among the database hosts ({old!r})")
    old_address = ip_of(old)
    with Load(**load_args) as load:
        time.sleep(5)
        killed = time.time()
        sh("docker", "kill", old)
        promoted = wait_for("redis: Sentinel promotes a replica",
                            lambda: stack.redis_master_address() not in ("", old_address), 120)
        time.sleep(15)
    lost, enqueued = lost_tasks(stack, load)
    sh("docker", "start", old)
    new = stack.redis_master()
    def replica_again() -> bool:
        info = sh("docker", "exec", "-e", "REDISCLI_AUTH", old, "redis-cli", "info", "replication", check=False,
                  env=stack.redis_env)
        return "role:slave" in info and "master_link_status:up" in info

    rejoined = wait_for(f"redis: {old} back as a replica", replica_again, 180)
    line = (f"redis master kill ({old} -> {new}): promoted after {promoted:.1f} s, requests {len(load.results)}, "
            f"failed {len(load.failed())}, last failure {recovery(load, killed)} s after the kill, tasks {enqueued} "
            f"enqueued, {lost} lost; {old} rejoined as a replica {rejoined:.0f} s after its start")
    if lost:
        raise DrillError(line)
    return line


def drill_web(stack: Stack, load_args: dict, web: list[str]) -> str:
    victim = web[-1]
    with Load(**load_args) as load:
        time.sleep(5)
        killed = time.time()
        sh("docker", "kill", victim)
        time.sleep(20)
        sh("docker", "start", victim)
        back = wait_for(f"web: {victim} answers again", lambda: _answers(load, ip_of(victim)), 240)
        time.sleep(3)
    failed = [r for r in load.failed() if r[0] >= killed]
    lost, enqueued = lost_tasks(stack, load)
    pending = max(0, stack.pending_tasks())
    line = (f"web host kill ({victim}): requests {len(load.results)}, failed {len(failed)} while it was down "
            f"(the other host answered), tasks {enqueued} enqueued, {lost} lost, {pending} held unacknowledged "
            f"(delivered again after the broker's visibility timeout); {victim} answered again "
            f"{back:.0f} s after its start")
    if failed or lost:
        raise DrillError(line + f"; failed samples: {failed[:3]}")
    return line


def _answers(load: Load, address: str) -> bool:
    try:
        status, _ = load._one(address, "GET", "/version/")
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", required=True, help="the web hosts (comma-separated container names)")
    parser.add_argument("--db", required=True, help="the database hosts (Patroni, Redis + Sentinel)")
    parser.add_argument("--site", required=True, help="the site's name (TLS SNI and Host)")
    parser.add_argument("--ca", required=True, help="the CA that signed the site's certificate (PEM)")
    parser.add_argument("--master-name", default="opsforge", help="Sentinel's master name")
    parser.add_argument("--drills", default="patroni,redis,web")
    args = parser.parse_args()
    web, db = args.web.split(","), args.db.split(",")
    stack = Stack(db, os.environ.get("REHEARSAL_REDIS_PASSWORD", ""), os.environ.get("REHEARSAL_SENTINEL_PASSWORD", ""),
                  args.master_name)
    load_args = {"addresses": [ip_of(h) for h in web], "site": args.site, "ca": args.ca}
    drills = {"patroni": lambda: drill_patroni(stack, load_args), "redis": lambda: drill_redis(stack, load_args),
              "web": lambda: drill_web(stack, load_args, web)}
    failures = []
    for name in args.drills.split(","):
        started = time.monotonic()
        try:
            print(f"REHEARSAL-NUMBER {drills[name]()} [{time.monotonic() - started:.0f} s]", flush=True)
        except DrillError as exc:
            print(f"REHEARSAL-NUMBER FAILED {name}: {exc}", flush=True)
            failures.append(name)
    if failures:
        print(f"drills that did not meet their goal: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
