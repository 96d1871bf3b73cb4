"""Pure logic of the smoke checks: validation, retries with backoff, the deadline, concurrency, aggregation.

The runner takes its probes as a mapping, so these tests hand it small callables and a fake clock; the
real network probes are tested against real servers in test_smoke_probes.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from ansible_collections.opsforge.stack.plugins.module_utils import smoke
from ansible_collections.opsforge.stack.plugins.module_utils.smoke import (
    CheckFailed,
    SmokeValidationError,
    backoff_delays,
    run_check,
    run_checks,
    validate_checks,
)


def _errors(checks) -> list[str]:
    with pytest.raises(SmokeValidationError) as info:
        validate_checks(checks)
    return info.value.errors


# ---------------------------------------------------------------------------------------------------------
# Validation

BAD = [
    pytest.param({"name": "ftp-site", "type": "ftp"}, "unknown check type 'ftp'", id="unknown-type"),
    pytest.param({"name": "no-type"}, "unknown check type None", id="no-type"),
    pytest.param({"name": "u1", "type": "http", "url": "htp://x"}, "must start with http:// or https://", id="scheme"),
    pytest.param({"name": "u2", "type": "http", "url": "https:///path"}, "has no host name", id="no-host"),
    pytest.param({"name": "u3", "type": "http", "url": "http://x:99999/"}, "invalid port", id="bad-port"),
    pytest.param({"name": "u4", "type": "http", "url": "http://x y/"}, "white space", id="space"),
    pytest.param({"name": "u5", "type": "http"}, "missing required field 'url'", id="no-url"),
    pytest.param({"name": "t1", "type": "tcp", "host": "h"}, "missing required field 'port'", id="tcp-no-port"),
    pytest.param({"name": "t2", "type": "tls"}, "missing required field 'host'", id="tls-no-host"),
    pytest.param({"name": "j1", "type": "http", "url": "http://x/", "json_path": "a[["},
                 "not a valid jmespath expression", id="jmespath"),
    pytest.param({"name": "j2", "type": "http", "url": "http://x/", "json_equals": 1}, "json_equals needs json_path",
                 id="json-equals-alone"),
    pytest.param({"name": "m1", "type": "tcp", "host": "h", "port": 1, "url": "http://x/"},
                 "url do not apply to tcp checks", id="misplaced-field"),
    pytest.param({"name": "m2", "type": "tcp", "host": "h", "port": 1, "colour": "red"}, "unknown field(s) colour",
                 id="unknown-field"),
    pytest.param({"name": "r1", "type": "tcp", "host": "h", "port": 70000}, "port must be between 1 and 65535",
                 id="port-range"),
    pytest.param({"name": "r2", "type": "tcp", "host": "h", "port": 1, "retries": -1}, "retries must be 0 or more",
                 id="retries"),
    pytest.param({"name": "r3", "type": "tcp", "host": "h", "port": 1, "backoff": 0.5}, "backoff must be 1 or more",
                 id="backoff"),
    pytest.param({"name": "r4", "type": "tcp", "host": "h", "port": 1, "timeout": 0}, "timeout must be more than 0",
                 id="timeout"),
    pytest.param({"name": "r5", "type": "tcp", "host": "h", "port": "eighty"}, "port must be a number",
                 id="port-type"),
    pytest.param({"name": "p1", "type": "tls", "host": "h", "min_protocol": "SSLv3"}, "min_protocol must be one of",
                 id="min-protocol"),
    pytest.param({"name": "p2", "type": "postgres", "expect_role": "master"}, "must be primary or replica",
                 id="pg-role"),
    pytest.param({"name": "p3", "type": "redis", "expect_role": "primary"}, "must be master or replica",
                 id="redis-role"),
    pytest.param({"name": "p4", "type": "postgres", "sslmode": "sometimes"}, "sslmode must be one of", id="sslmode"),
    pytest.param({"name": "h1", "type": "http", "url": "http://x/", "status": [42]}, "status must list HTTP codes",
                 id="status-range"),
    pytest.param({"name": "h2", "type": "http", "url": "http://x/", "method": "GE T"}, "method must be an HTTP method",
                 id="method"),
]


@pytest.mark.parametrize(("check", "fragment"), BAD)
def test_invalid_check_fails_naming_it(check, fragment):
    errors = _errors([{"name": "fine", "type": "tcp", "host": "h", "port": 1}, check])
    assert len(errors) == 1, errors
    assert fragment in errors[0]
    assert repr(check["name"]) in errors[0], "the message names the check"


def test_missing_name_is_reported_by_position():
    errors = _errors([{"name": "a", "type": "tcp", "host": "h", "port": 1}, {"type": "tcp", "host": "h", "port": 2}])
    assert errors == ["checks[1] (type tcp): missing required field 'name'"]


def test_every_problem_is_reported_at_once():
    errors = _errors([
        {"name": "a", "type": "ftp"},
        {"name": "b", "type": "http", "url": "nope"},
        {"name": "b", "type": "tcp", "host": "h", "port": 1},
        "not a mapping",
    ])
    assert len(errors) == 4
    assert "names must be unique" in errors[2]
    assert "checks[3] must be a mapping" in errors[3]


@pytest.mark.parametrize("value", [None, [], "tcp"])
def test_checks_must_be_a_non_empty_list(value):
    assert _errors(value) == ["checks must be a non-empty list of checks"]


def test_defaults_per_type_and_none_means_absent():
    # Ansible passes every suboption, absent ones as None: None must mean "not given"
    http, tls, pg, redis = validate_checks([
        {"name": "h", "type": "http", "url": "https://x/", "port": None, "host": None},
        {"name": "t", "type": "tls", "host": "x"},
        {"name": "p", "type": "postgres"},
        {"name": "r", "type": "redis", "required": False},
    ])
    assert http.params["status"] == [200]
    assert http.params["method"] == "GET"
    assert http.params["validate_certs"] is True
    assert http.params["follow_redirects"] is False
    assert (http.retries, http.delay, http.backoff, http.timeout, http.required) == (2, 1.0, 2.0, 5.0, True)
    assert (tls.params["port"], tls.params["min_days_valid"], tls.params["min_protocol"]) == (443, 14, "TLSv1.2")
    assert (pg.params["host"], pg.params["port"], pg.params["user"], pg.params["query"]) == (
        "localhost", 5432, "postgres", "SELECT 1")
    assert (redis.params["port"], redis.required) == (6379, False)


def test_values_are_coerced_like_ansible_does():
    (spec,) = validate_checks([{"name": "h", "type": "http", "url": "http://x/", "status": "204", "method": "head",
                                "retries": "3", "required": "no", "body_contains": "ok"}])
    assert spec.params["status"] == [204]
    assert spec.params["method"] == "HEAD"
    assert spec.params["body_contains"] == ["ok"]
    assert (spec.retries, spec.required) == (3, False)


def test_json_path_is_compiled_once():
    (spec,) = validate_checks([{"name": "j", "type": "http", "url": "http://x/", "json_path": "db.up"}])
    assert spec.compiled_json_path.search({"db": {"up": True}}) is True


def test_missing_jmespath_is_reported_with_the_checks(monkeypatch):
    monkeypatch.setattr(smoke, "HAS_JMESPATH", False)
    with pytest.raises(smoke.MissingLibraryError) as info:
        validate_checks([{"name": "j", "type": "http", "url": "http://x/", "json_path": "a"},
                         {"name": "k", "type": "http", "url": "http://x/"}])
    assert info.value.library == "jmespath"
    assert info.value.checks == ["j"]


def test_all_fields_cover_every_type():
    fields = smoke.all_fields()
    for type_fields in smoke.TYPE_FIELDS.values():
        assert set(type_fields) <= set(fields)
    assert fields["status"] == "list_int"


# ---------------------------------------------------------------------------------------------------------
# Retries, backoff and the deadline (fake clock: no real waiting)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _spec(**kwargs):
    check = {"name": "c", "type": "tcp", "host": "h", "port": 1, **kwargs}
    return validate_checks([check])[0]


def _probe_failing(times: int, clock: FakeClock | None = None, cost: float = 0.0):
    calls = {"n": 0}

    def probe(spec, timeout):
        calls["n"] += 1
        if clock is not None:
            clock.now += cost
        if calls["n"] <= times:
            raise CheckFailed("port 1 open", "connection refused")
        return {"attempt": calls["n"]}

    return probe, calls


@pytest.mark.parametrize(("retries", "delay", "backoff", "expected"), [
    (0, 1.0, 2.0, []),
    (3, 1.0, 2.0, [1.0, 2.0, 4.0]),
    (4, 0.5, 1.0, [0.5, 0.5, 0.5, 0.5]),
    (2, 0.0, 3.0, [0.0, 0.0]),
])
def test_backoff_delays(retries, delay, backoff, expected):
    assert backoff_delays(retries, delay, backoff) == expected


def test_retries_until_the_service_answers():
    clock = FakeClock()
    probe, calls = _probe_failing(2)
    result = run_check(_spec(retries=3, delay=1, backoff=2), probe, clock() + 60, clock=clock, sleep=clock.sleep)
    assert (result.status, result.attempts, calls["n"]) == ("passed", 3, 3)
    assert clock.sleeps == [1.0, 2.0]
    assert result.details == {"attempt": 3}
    assert result.reason == ""


def test_gives_up_after_the_last_retry_with_expected_and_found():
    clock = FakeClock()
    probe, _calls = _probe_failing(99)
    result = run_check(_spec(retries=2, delay=0.5, backoff=3), probe, clock() + 60, clock=clock, sleep=clock.sleep)
    assert (result.status, result.attempts) == ("failed", 3)
    assert clock.sleeps == [0.5, 1.5]
    assert result.expected == "port 1 open"
    assert result.found == "connection refused"
    assert result.reason == "expected port 1 open, found connection refused"


def test_no_retry_that_would_pass_the_deadline():
    clock = FakeClock()
    probe, _calls = _probe_failing(99, clock, cost=1.0)
    result = run_check(_spec(retries=10, delay=1, backoff=2), probe, clock() + 6, clock=clock, sleep=clock.sleep)
    # attempt 1 (1 s) + pause 1 + attempt 2 (1 s) + pause 2 -> 5 s; the pause of 4 s would end after 6 s
    assert result.status == "failed"
    assert result.attempts == 3
    assert "global deadline" in result.reason


def test_timeout_of_an_attempt_is_capped_by_the_deadline():
    clock = FakeClock()
    seen = []

    def probe(spec, timeout):
        seen.append(timeout)
        return {}

    run_check(_spec(timeout=30), probe, clock() + 4, clock=clock, sleep=clock.sleep)
    assert seen == [4.0]


def test_deadline_already_passed():
    clock = FakeClock()
    probe, calls = _probe_failing(0)
    result = run_check(_spec(), probe, clock() - 1, clock=clock, sleep=clock.sleep)
    assert (result.status, result.attempts, calls["n"]) == ("failed", 0, 0)
    assert "deadline" in result.reason


def test_max_latency_fails_a_slow_but_right_answer():
    clock = FakeClock()
    probe, _ = _probe_failing(0, clock, cost=0.250)
    result = run_check(_spec(retries=0, max_latency_ms=100), probe, clock() + 60, clock=clock, sleep=clock.sleep)
    assert result.status == "failed"
    assert result.reason == "expected an answer within 100.0 ms, found 250.0 ms"
    assert result.latency_ms == 250.0


def test_an_unexpected_exception_is_a_failed_check_not_a_crash():
    def probe(spec, timeout):
        raise RuntimeError("boom")

    result = run_check(_spec(retries=0), probe, time.monotonic() + 5)
    assert result.status == "failed"
    assert "RuntimeError: boom" in result.found


def test_check_mode_skips_requests_that_may_change_data():
    (post, get) = validate_checks([{"name": "p", "type": "http", "url": "http://x/", "method": "POST"},
                                   {"name": "g", "type": "http", "url": "http://x/"}])
    assert smoke.skip_reason(post, check_mode=True).startswith("check mode: a POST request")
    assert smoke.skip_reason(post, check_mode=False) is None
    assert smoke.skip_reason(get, check_mode=True) is None
    result = run_check(post, lambda s, t: pytest.fail("must not run"), time.monotonic() + 5, check_mode=True)
    assert (result.status, result.attempts) == ("skipped", 0)


# ---------------------------------------------------------------------------------------------------------
# Concurrency and aggregation (real threads)


def _sleeping_probe(seconds: float):
    def probe(spec, timeout):
        time.sleep(min(seconds, timeout))
        if seconds > timeout:
            raise CheckFailed("an answer", "no answer (timed out)")
        return {"slept": seconds}

    return probe


def test_checks_run_concurrently():
    specs = validate_checks([{"name": f"c{i}", "type": "tcp", "host": "h", "port": 1} for i in range(10)])
    start = time.monotonic()
    report = run_checks(specs, {"tcp": _sleeping_probe(0.3)}, deadline=10)
    elapsed = time.monotonic() - start
    assert [r.status for r in report.results] == ["passed"] * 10
    assert elapsed < 1.5, f"10 checks of 0.3 s took {elapsed:.2f} s: not concurrent"


def test_max_workers_limits_concurrency():
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def probe(spec, timeout):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.05)
        with lock:
            active["now"] -= 1
        return {}

    specs = validate_checks([{"name": f"c{i}", "type": "tcp", "host": "h", "port": 1} for i in range(6)])
    report = run_checks(specs, {"tcp": probe}, deadline=10, max_workers=2)
    assert report.ok
    assert active["max"] == 2


def test_global_deadline_stops_the_run():
    specs = validate_checks([
        {"name": "fast", "type": "tcp", "host": "h", "port": 1},
        {"name": "stuck", "type": "http", "url": "http://x/", "timeout": 30},
    ])

    def stuck(spec, timeout):
        time.sleep(5)  # ignores its timeout, as a misbehaving probe would
        return {}

    start = time.monotonic()
    report = run_checks(specs, {"tcp": _sleeping_probe(0), "http": stuck}, deadline=0.5)
    assert time.monotonic() - start < 2.5
    fast, late = report.results
    assert fast.status == "passed"
    assert late.status == "failed"
    assert late.found == "still running"
    assert "global deadline of 0.5s" in late.reason


def test_report_aggregates_and_names_failing_checks():
    specs = validate_checks([
        {"name": "web", "type": "http", "url": "http://x/", "retries": 0},
        {"name": "db", "type": "tcp", "host": "h", "port": 1, "retries": 0},
        {"name": "metrics", "type": "tcp", "host": "h", "port": 2, "required": False, "retries": 0},
        {"name": "purge", "type": "http", "url": "http://x/", "method": "DELETE"},
    ])

    def tcp(spec, timeout):
        raise CheckFailed("port %s open on h" % spec.params["port"], "connection refused")

    report = run_checks(specs, {"http": lambda s, t: {"status": 200}, "tcp": tcp}, deadline=5, check_mode=True)
    assert [r.status for r in report.results] == ["passed", "failed", "failed", "skipped"]
    assert report.summary() == {"passed": 1, "failed": 2, "skipped": 1, "total": 4}
    assert [r.name for r in report.failed_required] == ["db"]
    assert [r.name for r in report.failed_optional] == ["metrics"]
    assert not report.ok
    message = report.message()
    assert message.startswith("1 required smoke check(s) failed: db.")
    assert "- db (tcp, 1 attempt(s)): expected port 1 open on h, found connection refused" in message
    assert "metrics" not in message.splitlines()[0]
    assert "Fix the service" in message
    as_dict = report.results[1].as_dict()
    assert set(as_dict) == {"name", "type", "required", "status", "latency_ms", "attempts", "reason", "expected",
                            "found", "details"}


def test_report_of_a_passing_run():
    specs = validate_checks([{"name": "a", "type": "tcp", "host": "h", "port": 1}])
    report = run_checks(specs, {"tcp": lambda s, t: {}}, deadline=5)
    assert report.ok
    assert report.message().startswith("1 of 1 smoke checks passed, 0 failed, 0 skipped in ")
