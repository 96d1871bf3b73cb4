# Copyright: opsforge.stack contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Smoke checks: the pure logic of the ``smoke_test`` module.

Everything here imports and runs without Ansible (plain Python >= 3.9): the check schema, validation of
the user's list of checks, retries with backoff under a global deadline, concurrent execution and the
aggregation of results into one report. The network probes (HTTP, TLS, TCP, PostgreSQL, Redis) live in
``smoke_probes.py`` and are passed to :func:`run_checks` as a mapping ``type -> probe``, so the runner
can be exercised with any callable.

A probe is ``probe(spec, timeout) -> dict`` (the details of a passed check) and raises
:class:`CheckFailed` with what was expected and what was found when the service does not answer as
expected.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

try:
    import jmespath

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError as exc:  # only needed by http checks that use json_path
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = exc


class SmokeError(Exception):
    """Base class of every error raised by the smoke checks."""


class SmokeValidationError(SmokeError):
    """The list of checks is invalid; ``errors`` holds one message per problem, each naming its check."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


class MissingLibraryError(SmokeError):
    """A check needs a Python library that is not installed on the host running the checks."""

    def __init__(self, library, checks, error=None):
        self.library = library
        self.checks = list(checks)
        self.error = error
        super().__init__(
            "the Python library %s is needed by the checks %s" % (library, ", ".join(self.checks))
        )


class CheckFailed(SmokeError):
    """A service did not answer as expected: ``expected`` versus ``found``, plus ``details``."""

    def __init__(self, expected, found, details=None, hint=None):
        self.expected = expected
        self.found = found
        self.details = dict(details or {})
        self.hint = hint
        super().__init__("expected %s, found %s" % (expected, found))

    @property
    def reason(self):
        text = "expected %s, found %s" % (self.expected, self.found)
        return "%s (%s)" % (text, self.hint) if self.hint else text


# ---------------------------------------------------------------------------------------------------------
# Schema: one source of truth for validation here and for the module's argument_spec.
# kind: str, int, float, bool, dict, raw, list_str, list_int. REQUIRED marks a field the type needs.
REQUIRED = object()

COMMON_FIELDS = {
    "name": ("str", REQUIRED),
    "type": ("str", REQUIRED),
    "required": ("bool", True),
    "retries": ("int", 2),
    "delay": ("float", 1.0),
    "backoff": ("float", 2.0),
    "timeout": ("float", 5.0),
    "max_latency_ms": ("float", None),
}

TYPE_FIELDS = {
    "http": {
        "url": ("str", REQUIRED),
        "method": ("str", "GET"),
        "status": ("list_int", [200]),
        "headers": ("dict", {}),
        "body": ("str", None),
        "body_contains": ("list_str", []),
        "json_path": ("str", None),
        "json_equals": ("raw", None),
        "headers_present": ("list_str", []),
        "validate_certs": ("bool", True),
        "ca_path": ("str", None),
        "follow_redirects": ("bool", False),
        "connect_to": ("str", None),
    },
    "tls": {
        "host": ("str", REQUIRED),
        "port": ("int", 443),
        "server_name": ("str", None),
        "validate_certs": ("bool", True),
        "ca_path": ("str", None),
        "min_days_valid": ("int", 14),
        "min_protocol": ("str", "TLSv1.2"),
    },
    "tcp": {
        "host": ("str", REQUIRED),
        "port": ("int", REQUIRED),
    },
    "postgres": {
        "host": ("str", "localhost"),
        "port": ("int", 5432),
        "user": ("str", "postgres"),
        "password": ("str", None),
        "database": ("str", "postgres"),
        "sslmode": ("str", "prefer"),
        "query": ("str", "SELECT 1"),
        "expect": ("raw", None),
        "expect_role": ("str", None),
    },
    "redis": {
        "host": ("str", "localhost"),
        "port": ("int", 6379),
        "username": ("str", None),
        "password": ("str", None),
        "tls": ("bool", False),
        "validate_certs": ("bool", True),
        "ca_path": ("str", None),
        "expect_role": ("str", None),
    },
}

CHECK_TYPES = tuple(TYPE_FIELDS)
SECRET_FIELDS = frozenset(["password"])
SAFE_METHODS = frozenset(["GET", "HEAD", "OPTIONS"])
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
POSTGRES_ROLES = ("primary", "replica")
REDIS_ROLES = ("master", "replica")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
STATUSES = ("passed", "failed", "skipped")


def all_fields():
    """Every field of any check type, with its kind: ``{name: kind}`` (for the module's argument_spec)."""
    fields = {name: kind for name, (kind, _default) in COMMON_FIELDS.items()}
    for spec in TYPE_FIELDS.values():
        for name, (kind, _default) in spec.items():
            fields.setdefault(name, kind)
    return fields


class CheckSpec:
    """One validated check: common settings as attributes, the type's fields in ``params``."""

    def __init__(self, name, type, params, required=True, retries=2, delay=1.0, backoff=2.0,  # noqa: PLR0917
                 timeout=5.0, max_latency_ms=None, compiled_json_path=None):
        self.name = name
        self.type = type
        self.params = params
        self.required = required
        self.retries = retries
        self.delay = delay
        self.backoff = backoff
        self.timeout = timeout
        self.max_latency_ms = max_latency_ms
        self.compiled_json_path = compiled_json_path

    def __repr__(self):
        return "CheckSpec(%r, %r)" % (self.name, self.type)


class CheckResult:
    """The outcome of one check, as the module returns it."""

    def __init__(self, name, type, required, status, latency_ms=None, attempts=0,  # noqa: PLR0917
                 reason="", expected=None, found=None, details=None):
        self.name = name
        self.type = type
        self.required = required
        self.status = status
        self.latency_ms = latency_ms
        self.attempts = attempts
        self.reason = reason
        self.expected = expected
        self.found = found
        self.details = details or {}

    def as_dict(self):
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "reason": self.reason,
            "expected": self.expected,
            "found": self.found,
            "details": self.details,
        }


# ---------------------------------------------------------------------------------------------------------
# Validation


def _coerce(kind, value, field):
    """Convert ``value`` to ``kind`` (Ansible already did it in the module; plain callers may not)."""
    if kind == "raw":
        return value
    if kind == "str":
        if isinstance(value, (dict, list, bool)):
            raise ValueError("%s must be a string, got %s" % (field, type(value).__name__))
        return str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("yes", "true", "on", "1", "no", "false", "off", "0"):
            return value.lower() in ("yes", "true", "on", "1")
        raise ValueError("%s must be a boolean, got %r" % (field, value))
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise ValueError("%s must be a number, got %r" % (field, value))
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("%s must be a number, got %r" % (field, value)) from None
        if kind == "int":
            if number != int(number):
                raise ValueError("%s must be a whole number, got %r" % (field, value))
            return int(number)
        return number
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError("%s must be a mapping, got %s" % (field, type(value).__name__))
        return {str(k): str(v) for k, v in value.items()}
    if kind in ("list_str", "list_int"):
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_coerce(kind[5:], item, field) for item in items]
    raise ValueError("unknown kind %s" % kind)  # pragma: no cover


def _validate_url(url):
    """Return a problem with ``url`` as text, or None when it is a usable http(s) URL."""
    if any(ch.isspace() for ch in url):
        return "url %r contains white space" % url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "url %r must start with http:// or https://" % url
    if not parts.hostname:
        return "url %r has no host name" % url
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return "url %r has an invalid port" % url
    return None


def _check_ranges(name, ctype, common, params, errors):
    def need(cond, message):
        if not cond:
            errors.append("check %r: %s" % (name, message))

    need(common["retries"] >= 0, "retries must be 0 or more, got %s" % common["retries"])
    need(common["delay"] >= 0, "delay must be 0 or more seconds, got %s" % common["delay"])
    need(common["backoff"] >= 1, "backoff must be 1 or more (a multiplier of delay), got %s" % common["backoff"])
    need(common["timeout"] > 0, "timeout must be more than 0 seconds, got %s" % common["timeout"])
    if common["max_latency_ms"] is not None:
        need(common["max_latency_ms"] > 0, "max_latency_ms must be more than 0, got %s" % common["max_latency_ms"])
    if "port" in params and params["port"] is not None:
        need(0 < params["port"] < 65536, "port must be between 1 and 65535, got %s" % params["port"])
    if ctype == "http":
        problem = _validate_url(params["url"])
        need(problem is None, "invalid URL: %s" % problem)
        need(params["method"].isalpha(), "method must be an HTTP method such as GET, got %r" % params["method"])
        params["method"] = params["method"].upper()
        need(all(99 < s < 600 for s in params["status"]), "status must list HTTP codes (100-599), got %s"
             % params["status"])
        need(params["json_equals"] is None or params["json_path"] is not None,
             "json_equals needs json_path (the jmespath expression whose value is compared)")
    elif ctype == "tls":
        need(params["min_protocol"] in TLS_VERSIONS,
             "min_protocol must be one of %s, got %r" % (", ".join(TLS_VERSIONS), params["min_protocol"]))
        need(params["min_days_valid"] >= 0, "min_days_valid must be 0 or more, got %s" % params["min_days_valid"])
    elif ctype == "postgres":
        need(params["sslmode"] in SSLMODES,
             "sslmode must be one of %s, got %r" % (", ".join(SSLMODES), params["sslmode"]))
        need(params["expect_role"] in (None, *POSTGRES_ROLES),
             "expect_role of a postgres check must be primary or replica, got %r" % params["expect_role"])
    elif ctype == "redis":
        need(params["expect_role"] in (None, *REDIS_ROLES),
             "expect_role of a redis check must be master or replica, got %r" % params["expect_role"])


def validate_checks(raw_checks):
    """Validate the user's list of checks and apply defaults; return a list of :class:`CheckSpec`.

    Raises :class:`SmokeValidationError` listing every problem, each naming its check (or its position
    when it has no name), before anything touches the network. Raises :class:`MissingLibraryError` when a
    check uses ``json_path`` and jmespath is not installed.
    """
    errors = []
    specs = []
    seen = set()
    needs_jmespath = []
    if not isinstance(raw_checks, (list, tuple)) or not raw_checks:
        raise SmokeValidationError(["checks must be a non-empty list of checks"])
    known = all_fields()
    for index, raw in enumerate(raw_checks):
        label = "checks[%d]" % index
        if not isinstance(raw, dict):
            errors.append("%s must be a mapping with at least name and type, got %r" % (label, raw))
            continue
        given = {k: v for k, v in raw.items() if v is not None}
        name = given.get("name")
        if name is None or str(name).strip() == "":
            errors.append("%s (type %s): missing required field 'name'" % (label, given.get("type", "?")))
            continue
        name = str(name)
        if name in seen:
            errors.append("check %r: the name is used by another check; names must be unique" % name)
        seen.add(name)
        ctype = given.get("type")
        if ctype not in TYPE_FIELDS:
            errors.append("check %r: unknown check type %r; use one of %s" % (name, ctype, ", ".join(CHECK_TYPES)))
            continue
        fields = TYPE_FIELDS[ctype]
        wrong = sorted(k for k in given if k not in COMMON_FIELDS and k not in fields)
        if wrong:
            unknown = [k for k in wrong if k not in known]
            misplaced = [k for k in wrong if k in known]
            if unknown:
                errors.append("check %r: unknown field(s) %s" % (name, ", ".join(unknown)))
            if misplaced:
                errors.append("check %r: field(s) %s do not apply to %s checks (they accept %s)"
                              % (name, ", ".join(misplaced), ctype, ", ".join(sorted(fields))))
            continue
        values = {}
        bad = False
        for field, (kind, default) in list(COMMON_FIELDS.items()) + list(fields.items()):
            if field in given:
                try:
                    values[field] = _coerce(kind, given[field], field)
                except ValueError as exc:
                    errors.append("check %r: %s" % (name, exc))
                    bad = True
            elif default is REQUIRED:
                errors.append("check %r: missing required field %r for a %s check" % (name, field, ctype))
                bad = True
            else:
                values[field] = list(default) if isinstance(default, list) else (
                    dict(default) if isinstance(default, dict) else default)
        if bad:
            continue
        common = {k: values.pop(k) for k in COMMON_FIELDS}
        before = len(errors)
        _check_ranges(name, ctype, common, values, errors)
        compiled = None
        if ctype == "http" and values["json_path"] is not None:
            if not HAS_JMESPATH:
                needs_jmespath.append(name)
            else:
                try:
                    compiled = jmespath.compile(values["json_path"])
                except jmespath.exceptions.JMESPathError as exc:
                    errors.append("check %r: json_path %r is not a valid jmespath expression: %s"
                                  % (name, values["json_path"], " ".join(str(exc).split())))
        if len(errors) > before:
            continue
        common.pop("name")
        common.pop("type")
        specs.append(CheckSpec(name, ctype, values, compiled_json_path=compiled, **common))
    if errors:
        raise SmokeValidationError(errors)
    if needs_jmespath:
        raise MissingLibraryError("jmespath", needs_jmespath, JMESPATH_IMPORT_ERROR)
    return specs


def skip_reason(spec, check_mode):
    """Why ``spec`` must not run (check mode never sends a request that may change something), or None."""
    if check_mode and spec.type == "http" and spec.params["method"] not in SAFE_METHODS:
        return "check mode: a %s request may change the server; only GET, HEAD and OPTIONS run" % spec.params["method"]
    return None


# ---------------------------------------------------------------------------------------------------------
# Running


def backoff_delays(retries, delay, backoff):
    """The pauses before each retry: ``delay``, ``delay*backoff``, ``delay*backoff**2``, ..."""
    return [delay * backoff**i for i in range(retries)]


def _ms(seconds):
    return round(seconds * 1000.0, 1)


def run_check(spec, probe, deadline_at, check_mode=False, clock=time.monotonic, sleep=time.sleep):  # noqa: PLR0917
    """Run one check with retries and backoff until it passes, runs out of attempts or hits the deadline."""
    base = {"name": spec.name, "type": spec.type, "required": spec.required}
    why = skip_reason(spec, check_mode)
    if why:
        return CheckResult(status="skipped", reason=why, **base)
    delays = backoff_delays(spec.retries, spec.delay, spec.backoff)
    attempts = 0
    failure = None
    latency = None
    while True:
        remaining = deadline_at - clock()
        if remaining <= 0:
            if failure is None:
                failure = CheckFailed("the check to run", "the global deadline already reached",
                                      hint="raise deadline or lower the timeouts and retries")
            else:
                failure.hint = "gave up at the global deadline after %d attempt(s)" % attempts
            break
        attempts += 1
        start = clock()
        try:
            details = probe(spec, min(spec.timeout, remaining))
            latency = _ms(clock() - start)
            if spec.max_latency_ms is not None and latency > spec.max_latency_ms:
                raise CheckFailed("an answer within %s ms" % spec.max_latency_ms, "%s ms" % latency, details)
            return CheckResult(status="passed", latency_ms=latency, attempts=attempts, details=details or {}, **base)
        except CheckFailed as exc:
            latency = _ms(clock() - start)
            failure = exc
        except Exception as exc:  # any error of a probe is a failed check, never a crash
            latency = _ms(clock() - start)
            failure = CheckFailed("a working %s service" % spec.type, "%s: %s" % (type(exc).__name__, exc))
        if attempts > len(delays):
            break
        pause = delays[attempts - 1]
        if clock() + pause >= deadline_at:
            failure.hint = "gave up after %d attempt(s): the next retry would pass the global deadline" % attempts
            break
        sleep(pause)
    return CheckResult(status="failed", latency_ms=latency, attempts=attempts, reason=failure.reason,
                       expected=failure.expected, found=failure.found, details=failure.details, **base)


class Report:
    """Results of a run, in the order of the checks."""

    def __init__(self, results, elapsed_ms, deadline):
        self.results = results
        self.elapsed_ms = elapsed_ms
        self.deadline = deadline

    @property
    def failed_required(self):
        return [r for r in self.results if r.status == "failed" and r.required]

    @property
    def failed_optional(self):
        return [r for r in self.results if r.status == "failed" and not r.required]

    @property
    def ok(self):
        return not self.failed_required

    def summary(self):
        counts = {status: 0 for status in STATUSES}
        for result in self.results:
            counts[result.status] += 1
        counts["total"] = len(self.results)
        return counts

    def message(self):
        summary = self.summary()
        text = "%d of %d smoke checks passed, %d failed, %d skipped in %.0f ms" % (
            summary["passed"], summary["total"], summary["failed"], summary["skipped"], self.elapsed_ms)
        failed = self.failed_required
        if not failed:
            return text
        lines = ["%d required smoke check(s) failed: %s." % (len(failed), ", ".join(r.name for r in failed))]
        lines.extend("- %s (%s, %d attempt(s)): %s" % (r.name, r.type, r.attempts, r.reason) for r in failed)
        lines.append(text + ". Fix the service behind each failed check (or its expectation), then run again.")
        return "\n".join(lines)


def run_checks(specs, probes, deadline=60.0, check_mode=False, max_workers=None,  # noqa: PLR0917
               clock=time.monotonic, sleep=time.sleep):
    """Run every check concurrently (one thread each, at most ``max_workers`` at a time) under ``deadline``.

    ``probes`` maps a check type to its probe. A check still running when the deadline (plus one second of
    grace for closing sockets) has passed is reported as failed; its daemon thread is abandoned.
    """
    start = clock()
    deadline_at = start + deadline
    results = [None] * len(specs)
    gate = threading.BoundedSemaphore(max_workers or max(1, len(specs)))
    lock = threading.Lock()

    def work(index, spec):
        with gate:
            try:
                result = run_check(spec, probes[spec.type], deadline_at, check_mode, clock, sleep)
            except Exception as exc:  # never lose a result
                result = CheckResult(spec.name, spec.type, spec.required, "failed", reason="internal error: %s" % exc)
        with lock:
            results[index] = result

    threads = []
    for index, spec in enumerate(specs):
        thread = threading.Thread(target=work, args=(index, spec), name="smoke-%s" % spec.name, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline_at + 1.0 - clock()))
    with lock:
        final = []
        for spec, outcome in zip(specs, results):  # noqa: B905 (same length; strict= needs Python 3.10)
            result = outcome
            if result is None:
                result = CheckResult(spec.name, spec.type, spec.required, "failed",
                                     reason="expected an answer within the global deadline of %ss, found the "
                                            "check still running (raise deadline or lower the timeout)" % deadline,
                                     expected="an answer within %ss" % deadline, found="still running")
            final.append(result)
    return Report(final, _ms(clock() - start), deadline)
