#!/usr/bin/env python3
"""Failure drills of the production rehearsal, under steady HTTPS load through the web hosts.

    tests/rehearsal/drills.py --web web1,web2 --db db1,db2,db3 --site www.example.com --ca CA.pem

Run by scripts/rehearsal after the two converges (hosts are the rehearsal's test hosts, driven with `docker`).
Secrets come from the environment (REHEARSAL_REDIS_PASSWORD, REHEARSAL_SENTINEL_PASSWORD), never argv. Playbooks
run as the rehearsal runs them (--inventory twice, --vault-password-file), with -vvv into --logs (the secrets
search of scripts/rehearsal reads them too).

Each drill starts the load (threads, bounded in time and count, only to the web hosts' addresses): GET /version/
and every 5th request a POST /tasks/ (a Celery task that writes one row per execution in app_task_runs). A
client that fails on one web host tries the other, as a browser does with two addresses. Drills:
- patroni: `docker kill` of the Patroni leader: a new leader, writes succeed again, every row committed before
  the kill is still there (count + checksum), the old leader rejoins as a replica once started;
- redis: `docker kill` of the Redis master: Sentinel promotes a replica, tasks keep flowing, none lost;
- web: `docker kill` of one web/app host: the site keeps answering from the other; it rejoins when started;
- deploy: playbooks/deploy.yml rolls out the next release (pushed by tests/rehearsal/prepare.yml), then rolls the
  example's release back: no failed request, no task lost, every host answers with the release deployed;
- restore: playbooks/backup.yml (a logical backup of the application's database, on the Patroni leader) and
  playbooks/restore.yml of that backup into a copy, verified against its manifest, while the load runs;
- pitr: playbooks/pitr_restore.yml of the Patroni cluster to a time taken during the load: every row committed
  before that time is back, every row committed after it is gone, every member streams again.
The kill drills keep their host down until the example's Alertmanager has notified the on-call webhook
(tests/rehearsal/alert_receiver.py, alerts.example.com) that InstanceDown fires for it, and wait after the
recovery until it is resolved. After each drill playbooks/status.yml prints the operator's screen.
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
        # 3 s to connect (a dead host fails fast, the client tries the other), then 10 s for the answer.
        sock = socket.create_connection((address, 443), timeout=3)
        sock.settimeout(10)
        conn.sock = self.context.wrap_socket(sock, server_hostname=self.site)
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

    def ids(self) -> set[str]:
        """Every row of app_task_runs on the leader, as task:id (an id alone comes back after a restore)."""
        return set(self.psql("SELECT task_id || ':' || id FROM app_task_runs").split())

    def healthy(self) -> bool:
        """A leader, and every other member streaming from it."""
        members = self.cluster().get("members", [])
        return (len(members) == len(self.db) and any(m.get("role") == "leader" for m in members)
                and all(m.get("state") == "streaming" for m in members if m.get("role") != "leader"))

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


class Playbooks:
    """The collection's playbooks, run as scripts/rehearsal runs them (-vvv into the logs directory)."""

    def __init__(self, inventories: list[str], vault_file: str, logs: str) -> None:
        self.base = ["ansible-playbook", "-vvv", "--vault-password-file", vault_file]
        for inventory in inventories:
            self.base += ["-i", inventory]
        self.logs = logs

    def run(self, log: str, playbook: str, extra: dict | None = None, env: dict | None = None) -> str:
        argv = [*self.base, playbook] + (["-e", json.dumps(extra)] if extra else [])
        path = os.path.join(self.logs, log)
        with open(path, "w", encoding="utf-8") as out:
            rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800,
                                env=dict(os.environ, **(env or {}))).returncode
        if rc != 0:
            raise DrillError(f"{playbook} failed (exit {rc}; log: {path})")
        with open(path, encoding="utf-8") as out:
            return out.read()

    def status(self, after: str) -> None:
        """playbooks/status.yml; its screen printed."""
        # Results as JSON (ansible.cfg says yaml, which may fold a long line of the screen).
        text = self.run(f"status-after-{after}.log", "playbooks/status.yml",
                        env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
        print(f"-- status after the {after} drill --", *screen_lines(text), sep="\n", flush=True)


def screen_lines(log: str) -> list[str]:
    """The lines of status.yml's screen in a playbook log (the `Show the status` task's msg, results as JSON)."""
    inside = False
    for line in log.splitlines():
        stripped = line.strip()
        if line.startswith("TASK [") and "Show the status" in line:
            inside = True
        elif inside and stripped.startswith('"msg": '):
            msg = json.loads("{" + stripped.rstrip(",") + "}")["msg"]
            return msg.splitlines() if isinstance(msg, str) else [str(item) for item in msg]
    return []


def alert_events(jsonl: str) -> list[tuple[float, str, str, str]]:
    """(received, status, alertname, every label value joined) per alert of every recorded notification."""
    events = []
    for line in jsonl.splitlines():
        record = json.loads(line)
        for alert in record["payload"].get("alerts", []):
            labels = alert.get("labels", {})
            events.append((record["received"], alert.get("status", ""), labels.get("alertname", ""),
                           " ".join(str(v) for v in labels.values())))
    return events


class Alerts:
    """What the example's Alertmanager sent to the on-call webhook (tests/rehearsal/alert_receiver.py)."""

    def __init__(self, host: str = "rehearsal-services", path: str = "/var/lib/rehearsal-alerts/alerts.jsonl") -> None:
        self.host, self.path = host, path

    def events(self) -> list[tuple[float, str, str, str]]:
        return alert_events(sh("docker", "exec", self.host, "cat", self.path, check=False))

    def wait(self, alertname: str, host: str, status: str, since: float, timeout: float = 300) -> float:
        """Seconds from `since` until a notification says `alertname` is `status` for `host`."""
        terms = {host, host.split(".", maxsplit=1)[0]}

        def seen() -> bool:
            return any(when >= since and st == status and name == alertname and any(t in labels for t in terms)
                       for when, st, name, labels in self.events())
        wait_for(f"alert {alertname} {status} for {host} at the on-call webhook", seen, timeout)
        return round(time.time() - since, 1)


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


def drill_patroni(stack: Stack, load_args: dict, alerts: Alerts) -> str:
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
    fired = alerts.wait("InstanceDown", old, "firing", killed)
    started = time.time()
    sh("docker", "start", old)
    rejoined = wait_for(f"patroni: {old} back as a replica", lambda: any(
        m["name"] == old and m.get("role") in ("replica", "sync_standby") and m.get("state") in ("streaming", "running")
        for m in stack.cluster().get("members", [])), 240)
    resolved = alerts.wait("InstanceDown", old, "resolved", started)
    line = (f"patroni leader kill ({old} -> {new}): new leader after {promoted:.1f} s, requests {len(load.results)}, "
            f"failed {len(load.failed())}, last failure {recovery(load, killed)} s after the kill, "
            f"rows before the kill {before_count} {'all kept (count + checksum)' if kept else 'CHANGED'}, "
            f"tasks {enqueued} enqueued, {lost} lost; {old} rejoined as a replica {rejoined:.0f} s after its start; "
            f"InstanceDown at the webhook {fired:.0f} s after the kill, resolved {resolved:.0f} s after the start")
    if not kept or lost:
        raise DrillError(line)
    return line


def drill_redis(stack: Stack, load_args: dict, alerts: Alerts) -> str:
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
    fired = alerts.wait("InstanceDown", old, "firing", killed)
    started = time.time()
    sh("docker", "start", old)
    new = stack.redis_master()
    def replica_again() -> bool:
        info = sh("docker", "exec", "-e", "REDISCLI_AUTH", old, "redis-cli", "info", "replication", check=False,
                  env=stack.redis_env)
        return "role:slave" in info and "master_link_status:up" in info

    rejoined = wait_for(f"redis: {old} back as a replica", replica_again, 180)
    resolved = alerts.wait("InstanceDown", old, "resolved", started)
    line = (f"redis master kill ({old} -> {new}): promoted after {promoted:.1f} s, requests {len(load.results)}, "
            f"failed {len(load.failed())}, last failure {recovery(load, killed)} s after the kill, tasks {enqueued} "
            f"enqueued, {lost} lost; {old} rejoined as a replica {rejoined:.0f} s after its start; "
            f"InstanceDown at the webhook {fired:.0f} s after the kill, resolved {resolved:.0f} s after the start")
    if lost:
        raise DrillError(line)
    return line


def drill_web(stack: Stack, load_args: dict, web: list[str], alerts: Alerts) -> str:
    victim = web[-1]
    with Load(**load_args) as load:
        time.sleep(5)
        killed = time.time()
        sh("docker", "kill", victim)
        fired = alerts.wait("InstanceDown", victim, "firing", killed)
        started = time.time()
        sh("docker", "start", victim)
        back = wait_for(f"web: {victim} answers again", lambda: _answers(load, ip_of(victim)), 240)
        time.sleep(3)
    resolved = alerts.wait("InstanceDown", victim, "resolved", started)
    failed = [r for r in load.failed() if r[0] >= killed]
    lost, enqueued = lost_tasks(stack, load)
    pending = max(0, stack.pending_tasks())
    line = (f"web host kill ({victim}): requests {len(load.results)}, failed {len(failed)} while it was down "
            f"(the other host answered), tasks {enqueued} enqueued, {lost} lost, {pending} held unacknowledged "
            f"(delivered again after the broker's visibility timeout); {victim} answered again "
            f"{back:.0f} s after its start; InstanceDown at the webhook {fired:.0f} s after the kill, resolved "
            f"{resolved:.0f} s after the start")
    if failed or lost:
        raise DrillError(line + f"; failed samples: {failed[:3]}")
    return line


def releases_served(load: Load, addresses: list[str]) -> set[str]:
    """The release each web host answers with now."""
    served = set()
    for address in addresses:
        status, body = load._one(address, "GET", "/version/")
        served.add(body.get("release", "?") if status == 200 and isinstance(body, dict) else f"HTTP {status}")
    return served


def drill_deploy(stack: Stack, load_args: dict, books: Playbooks, release: str, next_release: str) -> str:
    parts = []
    for log, target in (("drill-deploy.log", next_release), ("drill-rollback.log", release)):
        with Load(**load_args) as load:
            time.sleep(5)
            started = time.monotonic()
            books.run(log, "playbooks/deploy.yml", {"app_release": target})
            took = time.monotonic() - started
            time.sleep(3)
            served = releases_served(load, load_args["addresses"])
        lost, enqueued = lost_tasks(stack, load)
        answers = [r for r in load.results if 200 <= r[2] < 300 and r[1] == "GET"]
        new_first = min((r[0] for r in answers if r[3] == target), default=None)
        old_last = max((r[0] for r in answers if r[3] != target), default=None)
        mixed = round(max(0.0, old_last - new_first), 1) if new_first and old_last else 0.0
        parts.append(f"{'deploy' if target == next_release else 'rollback'} to {target} in {took:.0f} s: "
                     f"requests {len(load.results)}, failed {len(load.failed())}, both releases answered for "
                     f"{mixed} s, tasks {enqueued} enqueued, {lost} lost, hosts now answer {sorted(served)}")
        if load.failed() or lost or served != {target}:
            raise DrillError("rolling deploy: " + "; ".join(parts) + f"; failed samples: {load.failed()[:3]}")
    return "rolling deploy under load: " + "; ".join(parts)


def drill_restore(stack: Stack, load_args: dict, books: Playbooks) -> str:
    leader = stack.leader()
    copy = "app_rehearsal_copy"
    with Load(**load_args) as load:
        time.sleep(5)
        started = time.monotonic()
        books.run("drill-backup.log", "playbooks/backup.yml",
                  {"backup_run_hosts": leader, "backup_run_only": ["postgresql:app"], "backup_run_rotate": False})
        backed_up = time.monotonic() - started
        started = time.monotonic()
        books.run("drill-restore.log", "playbooks/restore.yml",
                  {"restore_host": leader, "restore_database": "app", "restore_target": copy})
        restored = time.monotonic() - started
    copied = sh("docker", "exec", leader, "runuser", "-u", "postgres", "--", "psql", "-XAt", "-d", copy, "-c",
                "SELECT count(*) FROM app_task_runs")
    sh("docker", "exec", leader, "runuser", "-u", "postgres", "--", "psql", "-XAt", "-c",
       f"DROP DATABASE {copy} WITH (FORCE)")
    line = (f"logical backup + restore.yml on {leader} under load: backup {backed_up:.0f} s, restore into {copy} "
            f"(verified against its manifest) {restored:.0f} s with {copied} rows of app_task_runs, requests "
            f"{len(load.results)}, failed {len(load.failed())}")
    if load.failed() or not copied.isdigit() or int(copied) == 0:
        raise DrillError(line)
    return line


def drill_pitr(stack: Stack, load_args: dict, books: Playbooks) -> str:
    with Load(**load_args) as load:
        time.sleep(10)
        before = stack.ids()
        target = stack.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
        time.sleep(1.5)
        upto = stack.ids()
        time.sleep(15)
    stack.wait_tasks()
    final = stack.ids()
    after_target = final - upto
    if not after_target or not before:
        raise DrillError(f"pitr: the load wrote no rows around the target ({len(before)} before, {len(after_target)} "
                         "after): nothing to prove")
    # The WAL that holds the target must be in the archive before the restore (the playbook replays from there).
    switched = stack.psql("SELECT now() FROM (SELECT pg_switch_wal()) s")
    wait_for("pitr: the WAL past the target archived", lambda: stack.psql(
        f"SELECT last_archived_time >= '{switched}'::timestamptz FROM pg_stat_archiver") == "t", 120)
    started = time.monotonic()
    books.run("drill-pitr.log", "playbooks/pitr_restore.yml",
              {"pitr_restore_type": "time", "pitr_restore_target": f"{target}+00", "pitr_restore_confirm": True})
    took = time.monotonic() - started
    healthy = wait_for("pitr: every member streaming again", stack.healthy, 300)
    restored = stack.ids()
    missing, kept_after = before - restored, restored & after_target
    with Load(**load_args) as load:
        time.sleep(10)
    line = (f"pitr_restore.yml of the Patroni cluster to {target} UTC (taken during the load): {took:.0f} s, every "
            f"member streaming {healthy:.0f} s later; rows committed before the target {len(before)}, missing "
            f"{len(missing)}; rows committed after it {len(after_target)}, still present {len(kept_after)}; "
            f"requests after the restore {len(load.results)}, failed {len(load.failed())}")
    if missing or kept_after or load.failed():
        raise DrillError(line)
    return line


def _answers(load: Load, address: str) -> bool:
    try:
        status, _ = load._one(address, "GET", "/version/")
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


DRILLS = "deploy,restore,pitr,patroni,redis,web"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", required=True, help="the web hosts (comma-separated container names)")
    parser.add_argument("--db", required=True, help="the database hosts (Patroni, Redis + Sentinel)")
    parser.add_argument("--site", required=True, help="the site's name (TLS SNI and Host)")
    parser.add_argument("--ca", required=True, help="the CA that signed the site's certificate (PEM)")
    parser.add_argument("--master-name", default="opsforge", help="Sentinel's master name")
    parser.add_argument("--release", required=True, help="the example's release (app_release)")
    parser.add_argument("--next-release", required=True, help="the release the deploy drill rolls out")
    parser.add_argument("--inventory", action="append", required=True, help="an inventory (given in order)")
    parser.add_argument("--vault-password-file", required=True)
    parser.add_argument("--logs", required=True, help="directory of the playbooks' -vvv logs")
    parser.add_argument("--drills", default=DRILLS, help=f"comma-separated, in order (default {DRILLS})")
    args = parser.parse_args()
    web, db = args.web.split(","), args.db.split(",")
    stack = Stack(db, os.environ.get("REHEARSAL_REDIS_PASSWORD", ""), os.environ.get("REHEARSAL_SENTINEL_PASSWORD", ""),
                  args.master_name)
    books = Playbooks(args.inventory, args.vault_password_file, args.logs)
    alerts = Alerts()
    load_args = {"addresses": [ip_of(h) for h in web], "site": args.site, "ca": args.ca}
    drills = {"deploy": lambda: drill_deploy(stack, load_args, books, args.release, args.next_release),
              "restore": lambda: drill_restore(stack, load_args, books),
              "pitr": lambda: drill_pitr(stack, load_args, books),
              "patroni": lambda: drill_patroni(stack, load_args, alerts),
              "redis": lambda: drill_redis(stack, load_args, alerts),
              "web": lambda: drill_web(stack, load_args, web, alerts)}
    unknown = [name for name in args.drills.split(",") if name not in drills]
    if unknown:
        parser.error(f"unknown drill(s) {unknown}; expected some of {DRILLS}")
    failures = []
    for name in args.drills.split(","):
        started = time.monotonic()
        try:
            print(f"REHEARSAL-NUMBER {drills[name]()} [{time.monotonic() - started:.0f} s]", flush=True)
        except DrillError as exc:
            print(f"REHEARSAL-NUMBER FAILED {name}: {exc}", flush=True)
            failures.append(name)
        try:
            books.status(name)
        except DrillError as exc:
            print(f"REHEARSAL-NUMBER FAILED status after {name}: {exc}", flush=True)
            failures.append(f"status after {name}")
    if failures:
        print(f"drills that did not meet their goal: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
