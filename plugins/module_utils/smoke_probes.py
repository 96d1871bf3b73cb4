# Copyright: opsforge.stack contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Network probes of the smoke checks: HTTP(S), TLS, TCP, PostgreSQL and Redis.

Only the standard library is used for HTTP, TLS, TCP and Redis (a minimal RESP client), so the checks run
on any host with a Python; PostgreSQL needs psycopg2 (imported here when available, reported by the module
with ``missing_required_lib`` otherwise). Each probe is ``probe(spec, timeout) -> details`` and raises
:class:`CheckFailed` saying what was expected and what was found.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import tempfile
import time
from urllib.parse import urljoin, urlsplit

from ansible_collections.opsforge.stack.plugins.module_utils.smoke import (
    TLS_VERSIONS,
    CheckFailed,
    MissingLibraryError,
    run_checks,
)

try:
    import psycopg2

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # only needed by postgres checks
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)


def required_libraries(specs):
    """Raise :class:`MissingLibraryError` when a check needs a library this host lacks."""
    postgres = [s.name for s in specs if s.type == "postgres"]
    if postgres and not HAS_PSYCOPG2:
        raise MissingLibraryError("psycopg2", postgres, PSYCOPG2_IMPORT_ERROR)


def _describe(exc):
    """A short, readable text for a network error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate not trusted: %s" % (exc.verify_message or exc.reason)
    if isinstance(exc, socket.timeout):
        return "no answer (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return "name does not resolve (%s)" % exc.strerror
    return "%s: %s" % (type(exc).__name__, exc)


def _tls_context(validate, ca_path):
    if not validate:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()


# ---------------------------------------------------------------------------------------------------------
# HTTP


class _HTTPConnection(http.client.HTTPConnection):
    """Connects to ``address`` (when given) instead of resolving the URL's host; Host stays the URL's."""

    def __init__(self, host, port, timeout, address):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address or self.host, self.port), self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    """As :class:`_HTTPConnection`, with TLS: SNI and the certificate's name are the URL's host."""

    def __init__(self, host, port, timeout, address, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self):
        sock = socket.create_connection((self._address or self.host, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _request(url, params, timeout, connect_to, context):
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if parts.scheme == "https":
        conn = _HTTPSConnection(parts.hostname, parts.port or 443, timeout, connect_to, context)
    else:
        conn = _HTTPConnection(parts.hostname, parts.port or 80, timeout, connect_to)
    try:
        body = params["body"].encode() if params["body"] is not None else None
        conn.request(params["method"], path, body=body, headers=params["headers"])
        response = conn.getresponse()
        data = response.read(MAX_BODY)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def probe_http(spec, timeout):
    p = spec.params
    context = None
    if p["url"].startswith("https"):
        context = _tls_context(p["validate_certs"], p["ca_path"])
    url = p["url"]
    first_host = urlsplit(url).hostname
    hops = []
    try:
        while True:
            connect_to = p["connect_to"] if urlsplit(url).hostname == first_host else None
            status, headers, data = _request(url, p, timeout, connect_to, context)
            if not (p["follow_redirects"] and status in REDIRECTS and "location" in headers):
                break
            if len(hops) >= MAX_REDIRECTS:
                raise CheckFailed("at most %d redirects" % MAX_REDIRECTS, "more, last to %s" % headers["location"],
                                  {"redirects": hops})
            hops.append(url)
            url = urljoin(url, headers["location"])
            if status == 303:
                p = dict(p, method="GET", body=None)
            if url.startswith("https") and context is None:
                context = _tls_context(p["validate_certs"], p["ca_path"])
    except (OSError, http.client.HTTPException) as exc:
        raise CheckFailed("an HTTP answer from %s" % url, _describe(exc)) from None
    details = {"url": url, "status": status, "redirects": hops, "body_bytes": len(data)}
    if status not in p["status"]:
        snippet = data[:200].decode("utf-8", "replace")
        raise CheckFailed("status %s" % " or ".join(str(s) for s in p["status"]), "status %s" % status,
                          dict(details, body_start=snippet))
    missing = [h for h in p["headers_present"] if h.lower() not in headers]
    if missing:
        raise CheckFailed("headers %s" % ", ".join(p["headers_present"]), "%s missing" % ", ".join(missing), details)
    text = data.decode("utf-8", "replace")
    absent = [s for s in p["body_contains"] if s not in text]
    if absent:
        raise CheckFailed("a body containing %s" % ", ".join(repr(s) for s in absent),
                          "a body of %d bytes without it (starts %r)" % (len(data), text[:120]), details)
    if spec.compiled_json_path is not None:
        try:
            document = json.loads(text)
        except ValueError:
            raise CheckFailed("a JSON body", "not JSON (starts %r)" % text[:120], details) from None
        value = spec.compiled_json_path.search(document)
        details["json_value"] = value
        if p["json_equals"] is not None:
            if value != p["json_equals"] and str(value) != str(p["json_equals"]):
                raise CheckFailed("%s == %r" % (p["json_path"], p["json_equals"]), repr(value), details)
        elif value in (None, False, "", [], {}):
            raise CheckFailed("%s to be a non-empty value" % p["json_path"], repr(value), details)
    return details


# ---------------------------------------------------------------------------------------------------------
# TLS


def _decode_der(der):
    """Decode a certificate in DER form into the dict of ``SSLSocket.getpeercert()`` (stdlib only)."""
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(ssl.DER_cert_to_PEM_cert(der))
        return ssl._ssl._test_decode_cert(path)
    finally:
        os.unlink(path)


def _names(cert):
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    if not names:
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names


def name_matches(cert, hostname):
    """Whether ``cert`` (a getpeercert() dict) is valid for ``hostname`` (wildcards in the first label only)."""
    hostname = hostname.lower().rstrip(".")
    for listed in _names(cert):
        name = listed.lower().rstrip(".")
        if name == hostname:
            return True
        if name.startswith("*.") and "." in hostname and hostname.split(".", 1)[1] == name[2:]:
            return True
    return False


def probe_tls(spec, timeout):
    p = spec.params
    server_name = p["server_name"] or p["host"]
    context = _tls_context(p["validate_certs"], p["ca_path"])
    try:
        with socket.create_connection((p["host"], p["port"]), timeout) as sock, \
                context.wrap_socket(sock, server_hostname=server_name) as tls:
            version = tls.version()
            cert = tls.getpeercert() if p["validate_certs"] else _decode_der(tls.getpeercert(binary_form=True))
    except ssl.SSLCertVerificationError as exc:
        raise CheckFailed("a certificate valid for %s that the CA trusts" % server_name, _describe(exc),
                          hint="renew or fix the certificate, or give ca_path") from None
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed("a TLS handshake with %s:%s" % (p["host"], p["port"]), _describe(exc)) from None
    not_after = cert.get("notAfter")
    days_left = round((ssl.cert_time_to_seconds(not_after) - time.time()) / 86400.0, 1)
    details = {"protocol": version, "not_after": not_after, "days_left": days_left,
               "names": _names(cert), "server_name": server_name}
    if not name_matches(cert, server_name):
        raise CheckFailed("a certificate valid for %s" % server_name, "one for %s" % ", ".join(details["names"]),
                          details)
    if days_left < p["min_days_valid"]:
        raise CheckFailed("a certificate valid for %d more days or longer" % p["min_days_valid"],
                          "%s days left (expires %s)" % (days_left, not_after), details, hint="renew it")
    if TLS_VERSIONS.index(version) < TLS_VERSIONS.index(p["min_protocol"]):
        raise CheckFailed("protocol %s or newer" % p["min_protocol"], version, details)
    return details


# ---------------------------------------------------------------------------------------------------------
# TCP


def probe_tcp(spec, timeout):
    p = spec.params
    try:
        with socket.create_connection((p["host"], p["port"]), timeout) as sock:
            peer = sock.getpeername()
    except OSError as exc:
        raise CheckFailed("port %s open on %s" % (p["port"], p["host"]), _describe(exc)) from None
    return {"address": "%s:%s" % (peer[0], peer[1])}


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL


def probe_postgres(spec, timeout):
    p = spec.params
    where = "%s@%s:%s/%s" % (p["user"], p["host"], p["port"], p["database"])
    try:
        conn = psycopg2.connect(host=p["host"], port=p["port"], user=p["user"], password=p["password"],
                                dbname=p["database"], sslmode=p["sslmode"],
                                connect_timeout=max(2, int(timeout + 0.999)),
                                options="-c statement_timeout=%d" % max(1, int(timeout * 1000)))
    except psycopg2.Error as exc:
        found = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckFailed("a PostgreSQL connection as %s" % where, found) from None
    try:
        conn.set_session(readonly=True)  # the smoke test only reads, whatever the query says
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), current_setting('server_version')")
            in_recovery, version = cur.fetchone()
            role = "replica" if in_recovery else "primary"
            details = {"role": role, "server_version": version, "database": p["database"]}
            try:
                cur.execute(p["query"])
                row = cur.fetchone() if cur.description else None
            except psycopg2.Error as exc:
                raise CheckFailed("query %r to run" % p["query"], " ".join(str(exc).split()), details) from None
        value = row[0] if row else None
        details["value"] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    finally:
        conn.close()
    if p["expect"] is not None and value != p["expect"] and str(value) != str(p["expect"]):
        raise CheckFailed("query %r to return %r" % (p["query"], p["expect"]), repr(value), details)
    if p["expect_role"] and p["expect_role"] != role:
        raise CheckFailed("a %s server" % p["expect_role"], "a %s" % role, details)
    return details


# ---------------------------------------------------------------------------------------------------------
# Redis: a minimal RESP2 client (AUTH, PING, ROLE, INFO), standard library only.


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``) from the server."""


def _resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_read(stream):
    line = stream.readline(65536)
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the server")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisReplyError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_resp_read(stream) for _index in range(size)]
    raise ConnectionError("not a Redis server (answered %r)" % line[:40])


def _redis_call(sock, stream, *args):
    sock.sendall(_resp_encode(*args))
    return _resp_read(stream)


def probe_redis(spec, timeout):
    p = spec.params
    where = "%s:%s" % (p["host"], p["port"])
    try:
        sock = socket.create_connection((p["host"], p["port"]), timeout)
        if p["tls"]:
            context = _tls_context(p["validate_certs"], p["ca_path"])
            sock = context.wrap_socket(sock, server_hostname=p["host"])
    except OSError as exc:
        raise CheckFailed("a Redis server on %s" % where, _describe(exc)) from None
    try:
        stream = sock.makefile("rb")
        try:
            if p["password"] is not None:
                auth = ("AUTH", p["username"], p["password"]) if p["username"] else ("AUTH", p["password"])
                try:
                    _redis_call(sock, stream, *auth)
                except RedisReplyError as exc:
                    raise CheckFailed("AUTH to succeed", "error %s" % exc, hint="check the password") from None
            try:
                pong = _redis_call(sock, stream, "PING")
            except RedisReplyError as exc:
                hint = "give password" if str(exc).startswith("NOAUTH") else None
                raise CheckFailed("PONG", "error %s" % exc, hint=hint) from None
            if pong != "PONG":
                raise CheckFailed("PONG", repr(pong))
            info = _redis_call(sock, stream, "INFO", "server") or ""
            version = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                            if line.startswith("redis_version:")), None)
            role_reply = _redis_call(sock, stream, "ROLE")
        finally:
            stream.close()
    except RedisReplyError as exc:
        raise CheckFailed("answers to INFO and ROLE", "error %s" % exc) from None
    except OSError as exc:
        raise CheckFailed("a Redis server on %s" % where, _describe(exc)) from None
    finally:
        sock.close()
    role = role_reply[0] if role_reply else None
    role = "replica" if role == "slave" else role
    details = {"role": role, "server_version": version}
    if p["expect_role"] and p["expect_role"] != role:
        raise CheckFailed("a %s" % p["expect_role"], "a %s" % role, details)
    return details


PROBES = {
    "http": probe_http,
    "tls": probe_tls,
    "tcp": probe_tcp,
    "postgres": probe_postgres,
    "redis": probe_redis,
}


def run(specs, deadline=60.0, check_mode=False, max_workers=None):
    """Run validated checks with the real probes (see :func:`smoke.run_checks`)."""
    required_libraries(specs)
    return run_checks(specs, PROBES, deadline=deadline, check_mode=check_mode, max_workers=max_workers)
