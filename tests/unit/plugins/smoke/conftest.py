"""Real local servers for the smoke_test unit tests, all on loopback and free ports.

- ``pki``: a test CA and server certificates made with ``cryptography`` (SANs: localhost, 127.0.0.1,
  www.example.test), one of them valid only 5 days more;
- ``web``: a threaded ``http.server`` on plain HTTP and on HTTPS with routes for every HTTP case
  (``/ok``, ``/json``, ``/slow``, ``/status/<code>``, ``/redirect``, ``/flaky/<key>``, ``/post``);
- ``tcp_port``: a raw listening socket; ``closed_port``: a port nothing listens on;
- ``postgres``: a throw-away PostgreSQL (``initdb`` from /usr/lib/postgresql/*/bin into a temporary
  directory, scram passwords) and a streaming replica made with ``pg_basebackup -R``;
- ``redis``: a throw-away ``redis-server`` with ``requirepass`` and an ACL user, plus a replica.

scripts/test-suite installs Debian's ``postgresql`` and ``redis-server`` on the controller when missing.
Without them the tests that need them are skipped on a workstation and FAIL in CI (``CI=true``).
"""

from __future__ import annotations

import datetime
import glob
import ipaddress
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

PG_PASSWORD = "pg-secret"  # throw-away servers on loopback only
REDIS_PASSWORD = "redis-secret"
REDIS_ACL_USER, REDIS_ACL_PASSWORD = "smoke", "smoke-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _need_binary(what: str, path: str | None) -> str:
    if path:
        return path
    message = f"{what} is not installed: scripts/test-suite installs it (apt-get install postgresql redis-server)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
    return ""  # unreachable


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"{what} did not start on 127.0.0.1:{port}: {out[-2000:]}")
            time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---------------------------------------------------------------------------------------------------------
# Certificates


class Pki:
    """Paths of the test CA and of two server certificates (a good one and one expiring in 5 days)."""

    def __init__(self, directory: Path):
        now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (same code on Python 3.9)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsforge smoke test CA")])
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca = directory / "ca.pem"
        self.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

        def leaf(stem: str, days: int) -> tuple[Path, Path]:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.DNSName("www.example.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            return cert_path, key_path

        self.cert, self.key = leaf("server", 90)
        self.short_cert, self.short_key = leaf("short", 5)

    def server_context(self, short: bool = False, max_version=None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if short:
            context.load_cert_chain(self.short_cert, self.short_key)
        else:
            context.load_cert_chain(self.cert, self.key)
        if max_version is not None:
            context.maximum_version = max_version
        return context


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


# ---------------------------------------------------------------------------------------------------------
# HTTP(S)


class _Handler(BaseHTTPRequestHandler):
    flaky: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/ok":
            self._send(200, b"hello, smoke ok", {"X-Smoke": "1", "Content-Type": "text/plain"})
        elif path == "/json":
            self._send(200, json.dumps({"status": "ok", "db": {"up": True, "replicas": 2}, "empty": []}).encode(),
                       {"Content-Type": "application/json"})
        elif path == "/slow":
            time.sleep(float(query.partition("=")[2] or 1))
            self._send(200, b"slow ok")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"bad gateway from the test server")
        elif path == "/redirect":
            self._send(302, b"", {"Location": "/ok"})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path.startswith("/flaky/"):  # /flaky/<key>?fail=N: N answers 503 first, then 200
            key = path.rsplit("/", 1)[1]
            fail = int(query.partition("=")[2] or 2)
            with self.lock:
                seen = self.flaky.get(key, 0)
                self.flaky[key] = seen + 1
            self._send(503 if seen < fail else 200, b"starting" if seen < fail else b"ready")
        elif path == "/host":
            self._send(200, (self.headers.get("Host") or "").encode())
        else:
            self._send(404, b"not found")

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._send(201, b"created " + self.rfile.read(length))


class Web:
    def __init__(self, http_port: int, https_port: int, short_port: int, tls12_port: int):
        self.http = f"http://127.0.0.1:{http_port}"
        self.https = f"https://localhost:{https_port}"
        self.https_port = https_port
        self.short_port = short_port
        self.tls12_port = tls12_port


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hang up on purpose (timeouts, TLS tests)
        pass


def _serve(context: ssl.SSLContext | None) -> tuple[ThreadingHTTPServer, int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture(scope="session")
def web(pki) -> Web:
    servers = []
    ports = []
    for context in (None, pki.server_context(), pki.server_context(short=True),
                    pki.server_context(max_version=ssl.TLSVersion.TLSv1_2)):
        server, port = _serve(context)
        servers.append(server)
        ports.append(port)
    yield Web(*ports)
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def tcp_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port() -> int:
    return free_port()


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_bindir() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return os.path.dirname(candidates[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _pg_user() -> dict:
    """PostgreSQL refuses to run as root: run it as `postgres` (or `nobody`) when the tests run as root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid}
        except KeyError:
            continue
    pytest.fail("running as root and neither a postgres nor a nobody user exists to run PostgreSQL")
    return {}


class Postgres:
    def __init__(self, port: int, replica_port: int, version: str):
        self.port = port
        self.replica_port = replica_port
        self.version = version


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    try:
        import psycopg2  # noqa: F401, PLC0415 (only these tests need it)
    except ImportError:
        _need_binary("psycopg2 (psycopg2-binary in requirements.txt)", None)
    bindir = _need_binary("PostgreSQL (initdb)", _pg_bindir())
    as_user = _pg_user()
    # not under pytest's tmp_path: that one is private to root, and the server runs as another user
    base = Path(tempfile.mkdtemp(prefix="opsforge-smoke-pg-"))
    os.chmod(base, 0o755)
    primary, replica, sockets = base / "primary", base / "replica", base / "sockets"
    sockets.mkdir()
    pwfile = base / "pwfile"
    pwfile.write_text(PG_PASSWORD + "\n")
    if as_user:
        for path in (base, sockets, pwfile):
            os.chown(path, as_user["user"], as_user["group"])
    env = dict(os.environ, PGPASSWORD=PG_PASSWORD, LC_ALL="C")
    procs = []

    def run(*argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, **as_user)
        if done.returncode:
            pytest.fail(f"{' '.join(argv)} failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")

    def start(datadir: Path, port: int, what: str) -> None:
        proc = subprocess.Popen(
            [f"{bindir}/postgres", "-D", str(datadir), "-p", str(port), "-k", str(sockets),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_wal_senders=4",
             "-c", "wal_level=replica", "-c", "shared_buffers=16MB"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, **as_user)
        procs.append(proc)
        _wait_port(port, proc, what)

    port, replica_port = free_port(), free_port()
    try:
        run(f"{bindir}/initdb", "-D", str(primary), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}",
            "--no-sync", "-E", "UTF8")
        start(primary, port, "PostgreSQL primary")
        run(f"{bindir}/pg_basebackup", "-D", str(replica), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            "-R", "-X", "stream", "--no-sync")
        start(replica, replica_port, "PostgreSQL replica")
        version = subprocess.run([f"{bindir}/postgres", "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[-1]
        yield Postgres(port, replica_port, version)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Redis


class Redis:
    def __init__(self, port: int, replica_port: int):
        self.port = port
        self.replica_port = replica_port


@pytest.fixture(scope="session")
def redis(tmp_path_factory) -> Redis:
    binary = _need_binary("redis-server", shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None))
    base = tmp_path_factory.mktemp("redis")
    port, replica_port = free_port(), free_port()
    procs = []
    common = ["bind 127.0.0.1", "protected-mode yes", 'save ""', "appendonly no", "daemonize no",
              f"requirepass {REDIS_PASSWORD}", f"user {REDIS_ACL_USER} on >{REDIS_ACL_PASSWORD} ~* &* +@all"]
    try:
        for name, this_port, extra in (
            ("primary", port, []),
            ("replica", replica_port, [f"replicaof 127.0.0.1 {port}", f"masterauth {REDIS_PASSWORD}"]),
        ):
            directory = base / name
            directory.mkdir()
            config = directory / "redis.conf"
            config.write_text("\n".join([*common, f"port {this_port}", f"dir {directory}", *extra]) + "\n")
            proc = subprocess.Popen([binary, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs.append(proc)
            _wait_port(this_port, proc, f"redis-server ({name})")
        yield Redis(port, replica_port)
    finally:
        for proc in reversed(procs):
            _stop(proc)
