#!/usr/bin/python3
# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""opsforge-backup: the scheduled backup job of the opsforge.stack `backup` role.

    opsforge-backup run [--only postgresql:DB|postgresql:_globals|redis] [--no-rotate]
    opsforge-backup restore --kind postgresql --database DB [--target DB2] [--timestamp TS] [--no-safety]
    opsforge-backup restore --kind redis [--timestamp TS] [--no-safety]
    opsforge-backup list [--kind postgresql --database DB]

Backups stream to S3 (multipart, no full-size temporary file): PostgreSQL in pg_dump's custom format
(compressed by pg_dump), `pg_dumpall --globals-only` and the Redis RDB snapshot gzip-compressed. Each
one goes straight to its final key `<prefix>/<host>/<db>/<UTC timestamp>.<ext>`, but the upload is only
completed once the dump tool has exited 0: when the tool fails, the reader raises at the end of the
stream and the multipart upload is aborted (a single-part object is never sent), so a failed dump never
becomes an object. The manifest `<ts>.manifest.json` (SHA-256, size, row counts, versions) follows.
After each successful backup the group is rotated by the grandfather-father-son policy of gfs.py, the
same file the s3_backup_rotate module imports. A failed backup deletes nothing, logs `BACKUP FAILED`,
calls the notification URL if one is set, and the job exits 1. One flock per database prevents overlaps.

Settings come from a JSON file (default /etc/opsforge-backup/config.json, mode 0600), written by
the role; secrets are never logged or put on a command line (PGPASSWORD / REDISCLI_AUTH in the
child's environment only).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gfs  # shipped next to this file by the role
import s3_rotation

LOG = logging.getLogger("opsforge-backup")
TS_FORMAT = gfs.DEFAULT_TIME_FORMAT
GROUP_PATTERN = r"^(?P<ts>\d{8}T\d{6}Z)(?:\.[^/]*)?$"  # within one <prefix>/<host>/<db>/ folder
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore step failed; the message says which and why."""


# --- streams -------------------------------------------------------------------------------------

class HashingReader:
    """File-like reader that hashes (SHA-256) and counts what passes through; optionally gzips it.

    boto3 asks for one whole part per read (multipart_chunk_mb). Uncompressed, that is one read of the
    pipe, returned as is; compressed output collects in a bytearray. Growing an immutable bytes buffer
    by += and slicing it for every part copied each byte about ten times at 16 MiB parts (3.5 s of CPU
    per GB, more than the SHA-256 itself).
    """

    def __init__(self, raw, compress=False, level=6, at_eof=None):
        self.raw = raw
        self._at_eof = at_eof  # called once at the end of the raw stream; raising there fails the upload
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.raw_size = 0
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31) if compress else None
        self._buffer = bytearray()
        self._eof = False

    def _read_raw(self, size):
        data = self.raw.read(size)
        if not data:
            self._eof = True
            if self._at_eof:
                self._at_eof()
        self.raw_size += len(data)
        return data

    def _fill(self, wanted):
        while len(self._buffer) < wanted and not self._eof:
            data = self._read_raw(CHUNK)
            self._buffer += self._zip.compress(data) if data else self._zip.flush()

    def read(self, size=-1):
        if size is None or size < 0:
            size = sys.maxsize
        if self._zip is None:
            out = b""
            if not self._eof and size:
                out = self._read_raw(size if size < sys.maxsize else -1)
                # a raw stream may answer short before its end: top it up so parts keep their size
                while out and len(out) < size < sys.maxsize and not self._eof:
                    more = self._read_raw(size - len(out))
                    out += more
        else:
            self._fill(size)
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
        self.sha256.update(out)
        self.size += len(out)
        return out


# --- configuration, S3 ---------------------------------------------------------------------------

def load_config(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def client_for(cfg):
    s3 = cfg["s3"]
    return s3_rotation.make_client(
        endpoint_url=s3.get("endpoint_url") or None, region=s3.get("region") or None,
        access_key=s3.get("access_key") or None, secret_key=s3.get("secret_key") or None,
        addressing_style=s3.get("addressing_style", "auto"), ca_bundle=s3.get("ca_bundle") or None,
    )


def sse_args(cfg):
    s3 = cfg["s3"]
    if not s3.get("sse"):
        return {}
    args = {"ServerSideEncryption": s3["sse"]}
    if s3["sse"] == "aws:kms" and s3.get("sse_kms_key_id"):
        args["SSEKMSKeyId"] = s3["sse_kms_key_id"]
    return args


def transfer_config(cfg):
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415 (boto3 is only needed here)

    chunk = int(cfg["s3"].get("multipart_chunk_mb", 16)) * 1024 * 1024
    return TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4,
                          use_threads=True)


def base_prefix(cfg, safety=False):
    return (cfg["s3"]["safety_prefix"] if safety else cfg["s3"]["prefix"]).strip("/")


def group_prefix(cfg, group, safety=False):
    return "%s/%s/%s/" % (base_prefix(cfg, safety), cfg["host"], group)


def now_utc():
    return datetime.datetime.now(datetime.UTC)


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def final_key(cfg, group, ext, stamp, safety=False):
    """<prefix>/<host>/<group>/<UTC timestamp>.<ext>"""
    return group_prefix(cfg, group, safety) + "%s.%s" % (stamp, ext)


def upload(cfg, client, stream, final, *, compress=False, metadata=None, at_eof=None):
    """Stream to the final key (multipart above one part). at_eof runs when the stream ends, before the
    upload is completed: an exception there aborts the upload, and nothing appears under `final`.

    The whole object's SHA-256 is known only at the end, so it goes to the manifest: user metadata is
    fixed when the upload starts, and changing it later means a server-side copy of the whole object
    (which cost more than the dump itself, see docs/backup.md). The object still carries a checksum:
    S3's own (s3.checksum_algorithm, SHA256 by default), which S3 verifies on every part and keeps
    with the object (HeadObject/GetObjectAttributes ChecksumSHA256, "COMPOSITE" for multipart)."""
    reader = HashingReader(stream, compress=compress, at_eof=at_eof)
    extra = dict(sse_args(cfg), Metadata={k: str(v) for k, v in (metadata or {}).items()})
    if cfg["s3"].get("checksum_algorithm"):
        extra["ChecksumAlgorithm"] = cfg["s3"]["checksum_algorithm"]
    client.upload_fileobj(reader, cfg["s3"]["bucket"], final, ExtraArgs=extra, Config=transfer_config(cfg))
    return reader


def put_manifest(cfg, client, final, manifest):
    key = final.rsplit(".", 1)[0]
    key = key[: -len(".sql")] if key.endswith(".sql") else key
    key = key[: -len(".rdb")] if key.endswith(".rdb") else key
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    client.put_object(Bucket=cfg["s3"]["bucket"], Key=key + ".manifest.json", Body=body,
                      ContentType="application/json", **sse_args(cfg))
    return key + ".manifest.json"


def rotate_group(cfg, client, group):
    r = cfg["retention"]
    policy = gfs.Policy(**{rule: int(r[rule]) for rule in gfs.RULES}, min_keep=int(r["min_keep"]))
    # A backup counts only with its manifest: one whose manifest upload failed takes no GFS slot (and is kept).
    result = s3_rotation.rotate(client, cfg["s3"]["bucket"], group_prefix(cfg, group), policy,
                                pattern=GROUP_PATTERN, complete_suffix=".manifest.json")
    LOG.info("rotated %s: kept %d, deleted %d, unparsed %d, incomplete (no manifest, left alone) %d, "
             "requests %d list + %d delete",
             group, result["kept_count"], result["deleted_count"], result["unparsed_count"],
             result["incomplete_count"], result["list_requests"], result["delete_requests"])
    return result


# --- locks, privileges ---------------------------------------------------------------------------

@contextlib.contextmanager
def lock(cfg, name):
    directory = cfg.get("lock_dir", "/run/lock/opsforge-backup")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = os.path.join(directory, name.replace("/", "_") + ".lock")
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BackupError("another backup of %s is running (lock %s held)" % (name, path)) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def as_user(username, func, *args):
    """Run func(*args) in a child process with the user's privileges; return its (JSON) result."""
    if not username or os.geteuid() != 0 or pwd.getpwuid(os.geteuid()).pw_name == username:
        return func(*args)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            user = pwd.getpwnam(username)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.environ.update(HOME=user.pw_dir, USER=username, LOGNAME=username)
            os.chdir(user.pw_dir)
            out = {"ok": True, "result": func(*args)}
        except BaseException as exc:  # everything goes back to the parent, which decides
            out = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        with os.fdopen(write_fd, "w") as pipe:
            json.dump(out, pipe)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    try:
        out = json.loads(data)
    except ValueError as exc:
        raise BackupError("the %s worker died without an answer" % username) from exc
    if not out["ok"]:
        raise BackupError(out["error"])
    return out["result"]


# --- PostgreSQL ----------------------------------------------------------------------------------

def pg_conn_args(pg, database):
    args = ["-d", database]
    if pg.get("source_host"):
        args += ["-h", pg["source_host"]]
    args += ["-p", str(pg.get("port", 5432))]
    if pg.get("user"):
        args += ["-U", pg["user"]]
    return args


def pg_env(pg):
    env = dict(os.environ)
    if pg.get("password"):
        env["PGPASSWORD"] = pg["password"]
    return env


def pg_connect(pg, database):
    import psycopg2  # noqa: PLC0415 (only PostgreSQL jobs need it)

    kwargs = {"dbname": database, "port": pg.get("port", 5432)}
    if pg.get("source_host"):
        kwargs["host"] = pg["source_host"]
    if pg.get("user"):
        kwargs["user"] = pg["user"]
    if pg.get("password"):
        kwargs["password"] = pg["password"]
    return psycopg2.connect(**kwargs)


def table_counts(cur):
    from psycopg2 import sql  # noqa: PLC0415

    cur.execute("""
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
        ORDER BY 1, 2""")
    counts = {}
    for schema, table in cur.fetchall():
        cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts["%s.%s" % (schema, table)] = cur.fetchone()[0]
    return counts


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30).stdout.strip()
    except OSError:
        return "unavailable"


def _stream_command(cfg, cmd, env, final, *, compress, meta):
    """Run cmd and stream its stdout to `final`; the upload completes only when cmd exited 0.
    Returns (client, final key, reader)."""
    client = client_for(cfg)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def exited_ok():
        stderr = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise BackupError("%s exited %d: %s" % (cmd[0], proc.returncode, stderr[-2000:]))

    try:
        reader = upload(cfg, client, proc.stdout, final, compress=compress, metadata=meta, at_eof=exited_ok)
    except Exception as exc:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if isinstance(exc, BackupError):
            raise
        raise BackupError("upload of %s failed: %s" % (final, exc)) from exc
    return client, final, reader


def pg_backup_database(cfg, database, safety=False):
    """Runs with the PostgreSQL OS user's privileges (as_user)."""
    pg = cfg["postgresql"]
    started = now_utc()
    stamp = started.strftime(TS_FORMAT)
    conn = pg_connect(pg, database)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        cur = conn.cursor()
        cur.execute("SELECT pg_export_snapshot(), current_setting('server_version'), pg_is_in_recovery(), "
                    "pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
        snapshot, server_version, in_recovery, owner = cur.fetchone()
        cmd = ["pg_dump", "-Fc", "-Z", str(pg.get("compression", 6)), "--snapshot", snapshot,
               *pg_conn_args(pg, database)]
        meta = {"host": cfg["host"], "database": database, "started": iso(started)}
        # The rows are counted in the exporting transaction while pg_dump streams the same snapshot (one
        # more full scan: counted first, it added 10-15% to a 1 GB backup).
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as counter:
            counts = counter.submit(table_counts, conn.cursor()) if pg.get("row_counts", True) else None
            try:
                client, final, reader = _stream_command(cfg, cmd, pg_env(pg),
                                                        final_key(cfg, database, "dump", stamp, safety),
                                                        compress=False, meta=meta)
            except BaseException:
                if counts is not None and not counts.done():
                    conn.cancel()
                raise
            counts = counts.result() if counts is not None else {}
    finally:
        conn.close()
    manifest = {
        "kind": "postgresql", "format": "pg_dump custom", "host": cfg["host"], "database": database,
        "owner": owner, "key": final, "size": reader.size, "sha256": reader.sha256.hexdigest(),
        "started": iso(started), "finished": iso(now_utc()), "source": pg.get("source_host") or "local socket",
        "source_in_recovery": in_recovery, "row_counts": counts,
        "tools": {"pg_dump": tool_version(["pg_dump", "--version"]), "server": server_version,
                  "python": sys.version.split()[0]},
    }
    manifest["manifest"] = put_manifest(cfg, client, final, manifest)
    return manifest


def pg_backup_globals(cfg, safety=False):
    pg = cfg["postgresql"]
    started = now_utc()
    cmd = ["pg_dumpall", "--globals-only", *pg_conn_args(pg, "postgres")[2:]]
    meta = {"host": cfg["host"], "database": "_globals", "started": iso(started)}
    final = final_key(cfg, "_globals", "sql.gz", started.strftime(TS_FORMAT), safety)
    client, final, reader = _stream_command(cfg, cmd, pg_env(pg), final, compress=True, meta=meta)
    manifest = {
        "kind": "postgresql-globals", "format": "SQL, gzip", "host": cfg["host"], "database": "_globals",
        "key": final, "size": reader.size, "sha256": reader.sha256.hexdigest(), "raw_size": reader.raw_size,
        "started": iso(started), "finished": iso(now_utc()),
        "tools": {"pg_dumpall": tool_version(["pg_dumpall", "--version"])},
    }
    manifest["manifest"] = put_manifest(cfg, client, final, manifest)
    return manifest


# --- Redis ---------------------------------------------------------------------------------------

def redis_cli(rd, *args, check=True):
    env = dict(os.environ)
    if rd.get("password"):
        env["REDISCLI_AUTH"] = rd["password"]
    cmd = ["redis-cli", "--no-auth-warning", "-h", rd.get("host", "127.0.0.1"), "-p", str(rd.get("port", 6379)),
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=60)
    out = proc.stdout.strip()
    if check and (proc.returncode != 0 or out.startswith(("ERR", "NOAUTH", "WRONGPASS"))):
        raise BackupError("redis-cli %s failed: %s %s" % (args[0], out, proc.stderr.strip()))
    return out


def redis_info(rd, section):
    info = {}
    for line in redis_cli(rd, "INFO", section).splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key] = value.strip()
    return info


def redis_keyspace(rd):
    spaces = {}
    for name, value in redis_info(rd, "keyspace").items():
        fields = dict(part.split("=") for part in value.split(","))
        spaces[name] = int(fields.get("keys", 0))
    return spaces


def redis_paths(rd):
    if rd.get("rdb_path"):
        return rd["rdb_path"]
    directory = redis_cli(rd, "CONFIG", "GET", "dir").splitlines()[-1]
    filename = redis_cli(rd, "CONFIG", "GET", "dbfilename").splitlines()[-1]
    return os.path.join(directory, filename)


def redis_bgsave(rd):
    before = int(redis_cli(rd, "LASTSAVE"))
    while int(time.time()) <= before:  # LASTSAVE counts seconds: make the next save distinguishable
        time.sleep(0.2)
    redis_cli(rd, "BGSAVE", "SCHEDULE")
    deadline = time.monotonic() + float(rd.get("timeout", 3600))
    while time.monotonic() < deadline:
        info = redis_info(rd, "persistence")
        if info.get("rdb_bgsave_in_progress") == "0" and int(redis_cli(rd, "LASTSAVE")) > before:
            if info.get("rdb_last_bgsave_status") != "ok":
                raise BackupError("Redis BGSAVE failed (status %s)" % info.get("rdb_last_bgsave_status"))
            return
        time.sleep(0.5)
    raise BackupError("Redis BGSAVE did not finish within %s s" % rd.get("timeout", 3600))


def redis_group(rd):
    return "redis-%s" % rd.get("port", 6379)


def redis_backup(cfg, safety=False):
    rd = cfg["redis"]
    started = now_utc()
    keyspace = redis_keyspace(rd)
    redis_bgsave(rd)
    path = redis_paths(rd)
    client = client_for(cfg)
    group = redis_group(rd)
    meta = {"host": cfg["host"], "database": group, "started": iso(started)}
    final = final_key(cfg, group, "rdb.gz", started.strftime(TS_FORMAT), safety)
    try:
        with open(path, "rb") as rdb:  # a later save renames a new file in: this handle keeps the snapshot
            reader = upload(cfg, client, rdb, final, compress=True, metadata=meta)
    except Exception as exc:
        raise BackupError("Redis snapshot upload failed: %s" % exc) from exc
    manifest = {
        "kind": "redis", "format": "RDB, gzip", "host": cfg["host"], "database": group, "key": final,
        "size": reader.size, "raw_size": reader.raw_size, "sha256": reader.sha256.hexdigest(),
        "started": iso(started), "finished": iso(now_utc()), "keyspace": keyspace,
        "tools": {"redis": redis_info(rd, "server").get("redis_version", "?"),
                  "redis-cli": tool_version(["redis-cli", "--version"])},
    }
    manifest["manifest"] = put_manifest(cfg, client, final, manifest)
    return manifest


# --- run -----------------------------------------------------------------------------------------

def targets(cfg, only=None):
    out = []
    pg = cfg.get("postgresql", {})
    if pg.get("enabled"):
        out += [("postgresql:%s" % db, db) for db in pg.get("databases", [])]
        if pg.get("globals", True):
            out.append(("postgresql:_globals", "_globals"))
    if cfg.get("redis", {}).get("enabled"):
        out.append(("redis", redis_group(cfg["redis"])))
    if only:
        out = [t for t in out if t[0] in only]
        missing = set(only) - {t[0] for t in out}
        if missing:
            raise BackupError("unknown target(s) %s; configured: %s" % (sorted(missing), [t[0] for t in targets(cfg)]))
    return out


def backup_target(cfg, name, safety=False):
    if name == "redis":
        return redis_backup(cfg, safety)
    database = name.split(":", 1)[1]
    os_user = cfg["postgresql"].get("os_user", "postgres")
    if database == "_globals":
        return as_user(os_user, pg_backup_globals, cfg, safety)
    return as_user(os_user, pg_backup_database, cfg, database, safety)


def notify(cfg, payload):
    url = cfg.get("notify_url")
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        LOG.error("notify_url must be an http(s) URL, found %s", url)
        return
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:  # noqa: S310 (http(s) checked above)
            LOG.info("notified %s: HTTP %s", url, answer.status)
    except Exception as exc:  # a broken hook must not hide the backup's own result
        LOG.error("notification to %s failed: %s", url, exc)


def write_status(cfg, status):
    path = cfg.get("status_file")
    if not path:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(status, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


# --- textfile metrics (node exporter) ------------------------------------------------------------

METRIC = "opsforge_backup"
METRIC_MARK = "# opsforge-backup target "  # first line of the files this job writes (and may remove)
METRICS_HELP = (
    ("last_success_timestamp_seconds", "End of the last successful run of this target (Unix time)."),
    ("last_run_timestamp_seconds", "End of the last run of this target (Unix time)."),
    ("last_duration_seconds", "Duration of the last run of this target."),
    ("last_size_bytes", "Bytes the last run uploaded (0 when it failed)."),
    ("last_exit_status", "Result of the last run of this target (0 = success, 1 = failure)."),
)


def metrics_file_name(target):
    """opsforge_backup_<target>.prom, the name opsforge-textfile-metrics would give (KIND=backup); a hash keeps
    database names apart that only differ in characters a file name should not hold."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", target.replace(":", "_", 1))
    if safe != target.replace(":", "_", 1):
        safe += "-" + hashlib.sha256(target.encode()).hexdigest()[:8]
    return "%s_%s.prom" % (METRIC, safe)


def label_value(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def previous_success(path):
    """The last success timestamp of an earlier file of this target, or None."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(METRIC + "_last_success_timestamp_seconds{"):
                    return float(line.rsplit(None, 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def render_metrics(target, values):
    label = '{name="%s"}' % label_value(target)
    lines = [METRIC_MARK + target.replace("\n", " ")]
    for suffix, text in METRICS_HELP:
        if values.get(suffix) is None:
            continue
        value = values[suffix]
        lines += ["# HELP %s_%s %s" % (METRIC, suffix, text), "# TYPE %s_%s gauge" % (METRIC, suffix),
                  "%s_%s%s %s" % (METRIC, suffix, label, ("%d" % value) if float(value).is_integer() else
                                  ("%.3f" % value))]
    return "\n".join(lines) + "\n"


def write_metrics(cfg, target, ok, duration, size, *, now=None):
    """Write <textfile_dir>/opsforge_backup_<target>.prom atomically (temp file in the same directory, rename,
    0644). The success time comes from this run, or from the previous file after a failure. No directory (node
    exporter not installed): one log line, nothing written. Returns the path written, or None."""
    directory = cfg.get("textfile_dir")
    if not directory:
        return None
    if not os.path.isdir(directory):
        if not cfg.get("_textfile_dir_missing_logged"):  # one line per run, not one per target
            LOG.info("no textfile directory %s (node exporter not installed?): no backup metrics written", directory)
            cfg["_textfile_dir_missing_logged"] = True
        return None
    path = os.path.join(directory, metrics_file_name(target))
    now = time.time() if now is None else now
    values = {
        "last_success_timestamp_seconds": int(now) if ok else previous_success(path),
        "last_run_timestamp_seconds": int(now),
        "last_duration_seconds": round(duration, 3),
        "last_size_bytes": int(size) if ok else 0,
        "last_exit_status": 0 if ok else 1,
    }
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render_metrics(target, values))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def remove_stale_metrics(cfg, configured):
    """Remove the files this job wrote for targets that are no longer configured (a dropped database would
    otherwise fire BackupTooOld forever). Files of anything else (opsforge-textfile-metrics) are left alone."""
    directory = cfg.get("textfile_dir")
    if not directory or not os.path.isdir(directory):
        return []
    removed = []
    for entry in sorted(os.listdir(directory)):
        if not (entry.startswith(METRIC + "_") and entry.endswith(".prom")):
            continue
        path = os.path.join(directory, entry)
        try:
            with open(path, encoding="utf-8") as handle:
                first = handle.readline().rstrip("\n")
        except OSError:
            continue
        if first.startswith(METRIC_MARK) and first[len(METRIC_MARK):] not in configured:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(entry)
                LOG.info("removed the metrics of %s: no longer a configured target", first[len(METRIC_MARK):])
    return removed


def report_metrics(cfg, target, ok, duration, size):
    """Metrics must never turn a backup's result into something else: an error here is logged only."""
    try:
        write_metrics(cfg, target, ok, duration, size)
    except Exception as exc:
        LOG.error("metrics of %s not written: %s", target, exc)


def cmd_run(cfg, args):
    only = set(args.only or [])
    results, failures = [], []
    if not only:
        with contextlib.suppress(Exception):
            remove_stale_metrics(cfg, {t[0] for t in targets(cfg)})
    for name, group in targets(cfg, only):
        t0 = time.monotonic()
        size = 0
        try:
            with lock(cfg, name):
                manifest = backup_target(cfg, name)
                LOG.info("backup ok: %s -> s3://%s/%s (%d bytes, sha256 %s, %.1f s)", name, cfg["s3"]["bucket"],
                         manifest["key"], manifest["size"], manifest["sha256"], time.monotonic() - t0)
                entry = {"target": name, "key": manifest["key"], "manifest": manifest["manifest"],
                         "size": manifest["size"], "seconds": round(time.monotonic() - t0, 2)}
                if cfg["retention"].get("enabled", True) and not args.no_rotate:
                    rotation = rotate_group(cfg, client_for(cfg), group)
                    entry["rotation"] = {k: rotation[k] for k in ("kept_count", "deleted_count", "unparsed_count",
                                                                   "list_requests", "delete_requests")}
                results.append(entry)
                size = manifest["size"]
        except Exception as exc:  # one failed target must not stop the others
            LOG.error("BACKUP FAILED: %s: %s (nothing was deleted)", name, exc)
            failures.append({"target": name, "error": str(exc)})
            report_metrics(cfg, name, False, time.monotonic() - t0, 0)
        else:
            report_metrics(cfg, name, True, time.monotonic() - t0, size)
    status = {"host": cfg["host"], "finished": iso(now_utc()), "ok": not failures, "results": results,
              "failures": failures}
    write_status(cfg, status)
    if failures:
        notify(cfg, dict(status, event="backup_failed"))
    print(json.dumps(status, indent=2, sort_keys=True))
    return 1 if failures else 0


def find_backup(cfg, client, group, timestamp=None):
    prefix = group_prefix(cfg, group)
    keys, _pages = s3_rotation.list_keys(client, cfg["s3"]["bucket"], prefix)
    manifests = sorted(k for k in keys if k.endswith(".manifest.json"))
    if timestamp:
        manifests = [k for k in manifests if k[len(prefix):].startswith(timestamp)]
    if not manifests:
        raise BackupError("no backup manifest under s3://%s/%s%s" % (
            cfg["s3"]["bucket"], prefix, " for " + timestamp if timestamp else ""))
    body = client.get_object(Bucket=cfg["s3"]["bucket"], Key=manifests[-1])["Body"].read()
    manifest = json.loads(body)
    manifest["manifest"] = manifests[-1]
    return manifest


def pg_database_exists(cfg, database):
    conn = pg_connect(cfg["postgresql"], "postgres")
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        return cur.fetchone() is not None
    finally:
        conn.close()


def local_cfg(cfg):
    """Restores (and their safety backups) go to the server on this host, as the PostgreSQL OS user."""
    return dict(cfg, postgresql=dict(cfg["postgresql"], source_host="", user="", password=""))


def staging_name(target, suffix="_opsforge_restoring"):
    """The database a restore fills before it is verified; PostgreSQL names have at most 63 bytes."""
    return target.encode()[: 63 - len(suffix)].decode(errors="ignore") + suffix


def restore_verdict(manifest, sha256, counts):
    """None when the restored copy matches its manifest, else what differs (checked before any swap)."""
    problems = []
    if sha256 != manifest["sha256"]:
        problems.append("checksum: manifest %s, read %s" % (manifest["sha256"], sha256))
    wanted = manifest.get("row_counts", {})
    if counts != wanted:
        diff = sorted(k for k in set(wanted) | set(counts) if wanted.get(k) != counts.get(k))
        problems.append("row counts differ for %s" % ", ".join(diff[:10]))
    return "; ".join(problems) or None


def pg_swap_in(conn, staging, target, retries=10):
    """Puts the verified copy in place in one transaction: target -> <old name>, staging -> target, then drops
    the old copy. Sessions on the target are ended first; if one reconnects in between, the transaction rolls
    back (the target keeps serving) and the swap is tried again."""
    from psycopg2 import errors, sql  # noqa: PLC0415

    old = staging_name(target, "_opsforge_replaced")
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    cur = conn.cursor()
    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(old)))
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,))
    exists = cur.fetchone() is not None
    for attempt in range(retries):
        try:
            cur.execute("BEGIN")
            if exists:
                cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (target,))
                cur.execute(rename.format(sql.Identifier(target), sql.Identifier(old)))
            cur.execute(rename.format(sql.Identifier(staging), sql.Identifier(target)))
            cur.execute("COMMIT")
            break
        except errors.ObjectInUse:
            cur.execute("ROLLBACK")
            time.sleep(0.2 * (attempt + 1))
    else:
        raise BackupError("could not swap %s in: sessions kept reconnecting to %s; the verified copy waits in %s "
                          "and %s still serves" % (staging, target, staging, target))
    if exists:
        cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(old)))


def pg_restore_into(cfg, manifest, target):
    """Runs with the PostgreSQL OS user's privileges. The dump goes into a staging database; only once its checksum
    and row counts match the manifest does it replace the target (pg_swap_in). A failed or interrupted restore
    leaves the target as it was (a staging copy left by an interrupted run is dropped by the next one)."""
    pg = cfg["postgresql"]
    env = pg_env(pg)
    staging = staging_name(target)
    from psycopg2 import sql  # noqa: PLC0415

    conn = pg_connect(pg, "postgres")
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(staging)))
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(staging), sql.Identifier(manifest.get("owner") or "postgres")))
    finally:
        conn.close()
    client = client_for(cfg)
    body = client.get_object(Bucket=cfg["s3"]["bucket"], Key=manifest["key"])["Body"]
    proc = subprocess.Popen(["pg_restore", "--exit-on-error", *pg_conn_args(pg, staging)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    sha = hashlib.sha256()
    try:
        for chunk in iter(lambda: body.read(CHUNK), b""):
            sha.update(chunk)
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    stderr = proc.stderr.read().decode(errors="replace").strip()
    conn = pg_connect(pg, "postgres")
    conn.autocommit = True
    try:
        cur = conn.cursor()
        if proc.wait() != 0:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(staging)))
            raise BackupError("pg_restore into %s exited %d: %s; %s was not changed"
                              % (staging, proc.returncode, stderr[-2000:], target))
        staged = pg_connect(pg, staging)
        try:
            counts = table_counts(staged.cursor())
        finally:
            staged.close()
        problem = restore_verdict(manifest, sha.hexdigest(), counts)
        if problem:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(staging)))
            raise BackupError("the restored copy of %s does not match its manifest (%s); %s was not changed"
                              % (manifest["key"], problem, target))
        pg_swap_in(conn, staging, target)
    finally:
        conn.close()
    return {"sha256": sha.hexdigest(), "row_counts": counts}


def redis_restore_refusal(replication, client_list=""):
    """Why a Redis with this INFO replication and CLIENT LIST must not be restored into (None when it may).

    A replica would drop the restored data at its next full resynchronisation from its master. A master that
    Sentinel watches would be failed over while it is stopped for the restore, and come back as a replica of the
    new master, dropping the restored data too: Sentinel must be stopped for the restore (its connections are
    named sentinel-<id>-cmd and sentinel-<id>-pubsub)."""
    if replication.get("role") == "slave":
        return ("this Redis is a replica of %s:%s: restore its master instead (the replicas resynchronise from it); "
                "nothing was changed" % (replication.get("master_host", "?"), replication.get("master_port", "?")))
    sentinels = sorted({m.group(1) for m in re.finditer(r"\bname=sentinel-([0-9a-f]+)-(?:cmd|pubsub)\b", client_list)})
    if sentinels:
        return ("%d Sentinel(s) watch this master (connections from sentinel-%s): a failover while Redis is stopped "
                "for the restore would drop the restored data. Stop redis-sentinel on every Sentinel host, restore, "
                "then start them again; nothing was changed" % (len(sentinels), ", sentinel-".join(sentinels)))
    return None


def redis_restore_into(cfg, manifest):
    rd = cfg["redis"]
    path = redis_paths(rd)
    appendonly = redis_cli(rd, "CONFIG", "GET", "appendonly").splitlines()[-1] == "yes"
    aof_dir = aof_name = None
    if appendonly:
        aof_dir = os.path.join(os.path.dirname(path), redis_cli(rd, "CONFIG", "GET", "appenddirname").splitlines()[-1])
        aof_name = redis_cli(rd, "CONFIG", "GET", "appendfilename").splitlines()[-1]
    client = client_for(cfg)
    body = client.get_object(Bucket=cfg["s3"]["bucket"], Key=manifest["key"])["Body"]
    sha = hashlib.sha256()
    unzip = zlib.decompressobj(31)
    staged = path + ".restore"
    with open(staged, "wb") as out:
        for chunk in iter(lambda: body.read(CHUNK), b""):
            sha.update(chunk)
            out.write(unzip.decompress(chunk))
        out.write(unzip.flush())
    if sha.hexdigest() != manifest["sha256"]:
        os.unlink(staged)
        raise BackupError("checksum mismatch for %s: manifest %s, downloaded %s; nothing was changed"
                          % (manifest["key"], manifest["sha256"], sha.hexdigest()))
    stat = os.stat(os.path.dirname(path))
    os.chown(staged, stat.st_uid, stat.st_gid)
    os.chmod(staged, 0o660)
    service = rd.get("service", "redis-server")
    subprocess.run(["systemctl", "stop", service], check=True)
    moved_aof = None
    if aof_dir:
        # With AOF on, Redis loads the AOF, never dump.rdb: the snapshot becomes the base of a new
        # multi-part AOF (an RDB base is what aof-use-rdb-preamble writes too); the old AOF is kept aside.
        if os.path.isdir(aof_dir):
            moved_aof = "%s.pre-restore-%s" % (aof_dir, now_utc().strftime(TS_FORMAT))
            os.rename(aof_dir, moved_aof)
        os.mkdir(aof_dir, 0o750)
        os.chown(aof_dir, stat.st_uid, stat.st_gid)
        base = os.path.join(aof_dir, "%s.1.base.rdb" % aof_name)
        with open(staged, "rb") as src, open(base, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
        manifest_path = os.path.join(aof_dir, "%s.manifest" % aof_name)
        with open(manifest_path, "w", encoding="ascii") as aof_manifest:
            aof_manifest.write("file %s.1.base.rdb seq 1 type b\n" % aof_name)
        for item in (base, manifest_path):
            os.chown(item, stat.st_uid, stat.st_gid)
            os.chmod(item, 0o660)
    os.replace(staged, path)
    subprocess.run(["systemctl", "start", service], check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if redis_cli(rd, "PING", check=False) == "PONG" and redis_info(rd, "persistence").get("loading") == "0":
            break
        time.sleep(0.5)
    return {"sha256": sha.hexdigest(), "keyspace": redis_keyspace(rd), "previous_aof_moved_to": moved_aof}


def cmd_restore(cfg, args):
    client = client_for(cfg)
    result = {"kind": args.kind, "safety_backup": None}
    if args.kind == "postgresql":
        target = args.target or args.database
        manifest = find_backup(cfg, client, args.database, args.timestamp)
        lock_name = "postgresql:%s" % target
    else:
        rd = cfg["redis"]
        refusal = redis_restore_refusal(redis_info(rd, "replication"), redis_cli(rd, "CLIENT", "LIST"))
        if refusal:
            raise BackupError(refusal)
        manifest = find_backup(cfg, client, redis_group(rd), args.timestamp)
        target = redis_group(rd)
        lock_name = "redis"
    result.update(source=manifest["key"], manifest=manifest["manifest"], target=target)
    os_user = cfg.get("postgresql", {}).get("os_user", "postgres")
    with lock(cfg, lock_name):
        if not args.no_safety:
            if args.kind == "redis":
                safety = redis_backup(cfg, safety=True)
            elif as_user(os_user, pg_database_exists, local_cfg(cfg), target):
                safety = as_user(os_user, pg_backup_database, local_cfg(cfg), target, True)
            else:
                safety = None
                LOG.info("no safety backup: database %s does not exist yet", target)
            if safety:
                result["safety_backup"] = "s3://%s/%s" % (cfg["s3"]["bucket"], safety["key"])
                LOG.info("safety backup of the current %s: %s", target, result["safety_backup"])
        try:
            if args.kind == "postgresql":
                restored = as_user(os_user, pg_restore_into, local_cfg(cfg), manifest, target)
                result["row_counts_match"] = restored["row_counts"] == manifest.get("row_counts", {})
                result["row_counts"] = restored["row_counts"]
            else:
                restored = redis_restore_into(cfg, manifest)
                result["keyspace"] = restored["keyspace"]
                result["keyspace_match"] = restored["keyspace"] == manifest.get("keyspace", {})
                result["previous_aof_moved_to"] = restored["previous_aof_moved_to"]
        except BackupError as exc:
            # The report still names the safety backup taken before the failure.
            LOG.error("RESTORE FAILED: %s", exc)
            result.update(ok=False, error=str(exc))
            print(json.dumps(result, indent=2, sort_keys=True))
            return 1
    result["checksum_match"] = restored["sha256"] == manifest["sha256"]
    result["ok"] = result["checksum_match"] and result.get("row_counts_match", True)
    if not result["ok"]:
        LOG.error("RESTORE VERIFICATION FAILED: %s into %s", manifest["key"], target)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["ok"] else 1


def cmd_list(cfg, args):
    client = client_for(cfg)
    prefix = group_prefix(cfg, args.database) if args.database else base_prefix(cfg) + "/"
    keys, pages = s3_rotation.list_keys(client, cfg["s3"]["bucket"], prefix)
    print(json.dumps({"prefix": prefix, "pages": pages, "keys": keys}, indent=2))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="opsforge-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/opsforge-backup/config.json")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="back up every configured target, then rotate")
    run.add_argument("--only", action="append", help="postgresql:DB, postgresql:_globals or redis (repeatable)")
    run.add_argument("--no-rotate", action="store_true")
    restore = sub.add_parser("restore", help="safety backup, restore, verify against the manifest")
    restore.add_argument("--kind", choices=["postgresql", "redis"], required=True)
    restore.add_argument("--database", help="the database whose backup is restored (postgresql)")
    restore.add_argument("--target", help="database to restore into (default: --database)")
    restore.add_argument("--timestamp", help="a backup's UTC timestamp (prefix match); default: the latest")
    restore.add_argument("--no-safety", action="store_true", help="skip the safety backup of the current data")
    listing = sub.add_parser("list", help="list backup keys")
    listing.add_argument("--database")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s opsforge-backup[%(process)d] %(levelname)s %(message)s")
    cfg = load_config(args.config)
    cfg.setdefault("host", socket.gethostname())
    try:
        if args.command == "run":
            return cmd_run(cfg, args)
        if args.command == "restore":
            if args.kind == "postgresql" and not args.database:
                parser.error("--database is required with --kind postgresql")
            return cmd_restore(cfg, args)
        return cmd_list(cfg, args)
    except (BackupError, s3_rotation.S3RotationError, gfs.GfsError) as exc:
        LOG.error("%s FAILED: %s", args.command.upper(), exc)
        if args.command == "run":
            notify(cfg, {"host": cfg["host"], "event": "backup_failed", "error": str(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
