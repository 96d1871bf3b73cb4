"""The network probes against real local servers (see conftest.py): HTTP(S), TLS, TCP, PostgreSQL, Redis."""

from __future__ import annotations

import time

import pytest
from ansible_collections.opsforge.stack.plugins.module_utils import smoke_probes
from ansible_collections.opsforge.stack.plugins.module_utils.smoke import validate_checks
from conftest import PG_PASSWORD, REDIS_ACL_PASSWORD, REDIS_ACL_USER, REDIS_PASSWORD


def run_one(check: dict, check_mode: bool = False, deadline: float = 20.0):
    check = {"name": "it", "retries": 0, **check}
    report = smoke_probes.run(validate_checks([check]), deadline=deadline, check_mode=check_mode)
    return report.results[0]


def passed(check: dict, **kwargs):
    result = run_one(check, **kwargs)
    assert result.status == "passed", result.reason
    return result


def failed(check: dict, **kwargs):
    result = run_one(check, **kwargs)
    assert result.status == "failed", result.details
    assert result.reason.startswith("expected ")
    return result


# ---------------------------------------------------------------------------------------------------------
# HTTP


def test_http_ok(web):
    result = passed({"type": "http", "url": web.http + "/ok", "body_contains": ["smoke ok"],
                     "headers_present": ["x-smoke", "Content-Type"]})
    assert result.details["status"] == 200
    assert result.attempts == 1
    assert result.latency_ms < 1000


def test_http_status_mismatch_says_expected_and_found(web):
    result = failed({"type": "http", "url": web.http + "/status/502", "status": [200, 204]})
    assert result.reason == "expected status 200 or 204, found status 502"
    assert result.details["body_start"] == "bad gateway from the test server"


def test_http_accepts_listed_status(web):
    passed({"type": "http", "url": web.http + "/status/503", "status": [503]})


def test_http_body_and_headers(web):
    result = failed({"type": "http", "url": web.http + "/ok", "body_contains": ["smoke ok", "goodbye"]})
    assert "'goodbye'" in result.expected
    result = failed({"type": "http", "url": web.http + "/ok", "headers_present": ["Strict-Transport-Security"]})
    assert result.found == "Strict-Transport-Security missing"


@pytest.mark.parametrize(("path", "equals"), [("status", "ok"), ("db.up", True), ("db.replicas", 2),
                                              ("db.replicas", "2"), ("db.up", None), ("length(keys(db))", 2)])
def test_http_json_path_passes(web, path, equals):
    result = passed({"type": "http", "url": web.http + "/json", "json_path": path, "json_equals": equals})
    assert "json_value" in result.details


@pytest.mark.parametrize(("path", "equals", "found"), [("status", "down", "'ok'"), ("missing", None, "None"),
                                                       ("empty", None, "[]"), ("db.up", False, "True")])
def test_http_json_path_fails(web, path, equals, found):
    result = failed({"type": "http", "url": web.http + "/json", "json_path": path, "json_equals": equals})
    assert result.found == found


def test_http_json_path_on_a_non_json_body(web):
    result = failed({"type": "http", "url": web.http + "/ok", "json_path": "status"})
    assert result.expected == "a JSON body"


def test_https_with_the_test_ca(web, pki):
    passed({"type": "http", "url": web.https + "/ok", "ca_path": str(pki.ca)})


def test_https_untrusted_without_the_ca(web):
    result = failed({"type": "http", "url": web.https + "/ok"})
    assert "certificate not trusted" in result.found


def test_https_without_verification(web):
    passed({"type": "http", "url": web.https + "/ok", "validate_certs": False})


def test_https_connect_to_keeps_host_sni_and_name(web, pki):
    # www.example.test does not resolve: connect_to sends the request to 127.0.0.1 with the URL's name
    url = "https://www.example.test:%d/host" % web.https_port
    passed({"type": "http", "url": url, "connect_to": "127.0.0.1", "ca_path": str(pki.ca),
            "body_contains": ["www.example.test:%d" % web.https_port]})
    result = failed({"type": "http", "url": url, "ca_path": str(pki.ca)})
    assert "name does not resolve" in result.found


def test_http_redirects(web):
    result = passed({"type": "http", "url": web.http + "/redirect", "status": [302]})
    assert result.details["redirects"] == []
    result = passed({"type": "http", "url": web.http + "/redirect", "follow_redirects": True,
                     "body_contains": ["smoke ok"]})
    assert result.details["url"].endswith("/ok")
    assert result.details["redirects"] == [web.http + "/redirect"]
    result = failed({"type": "http", "url": web.http + "/loop", "follow_redirects": True})
    assert result.expected == "at most 10 redirects"


def test_http_post_runs_but_is_skipped_in_check_mode(web):
    passed({"type": "http", "url": web.http + "/post", "method": "POST", "body": "x", "status": [201],
            "body_contains": ["created x"]})
    result = run_one({"type": "http", "url": web.http + "/post", "method": "POST", "status": [201]}, check_mode=True)
    assert result.status == "skipped"
    assert "check mode" in result.reason


def test_http_head_in_check_mode(web):
    passed({"type": "http", "url": web.http + "/ok", "method": "HEAD"}, check_mode=True)


def test_http_timeout_on_a_slow_endpoint(web):
    result = failed({"type": "http", "url": web.http + "/slow?s=2", "timeout": 0.3})
    assert result.found == "no answer (timed out)"
    assert result.latency_ms < 1500


def test_http_max_latency(web):
    result = failed({"type": "http", "url": web.http + "/slow?s=0.3", "max_latency_ms": 100})
    assert result.expected == "an answer within 100.0 ms"


def test_http_retries_until_a_starting_service_answers(web):
    result = passed({"type": "http", "url": web.http + "/flaky/starting?fail=2", "retries": 3, "delay": 0.05})
    assert result.attempts == 3


def test_http_retries_exhausted(web):
    result = failed({"type": "http", "url": web.http + "/flaky/never?fail=99", "retries": 2, "delay": 0.05})
    assert result.attempts == 3
    assert result.reason == "expected status 200, found status 503"


def test_http_connection_refused(closed_port):
    result = failed({"type": "http", "url": "http://127.0.0.1:%d/" % closed_port})
    assert result.found == "connection refused (nothing listens on that port)"


# ---------------------------------------------------------------------------------------------------------
# TLS


def test_tls_ok(web, pki):
    result = passed({"type": "tls", "host": "127.0.0.1", "port": web.https_port, "server_name": "localhost",
                     "ca_path": str(pki.ca), "min_protocol": "TLSv1.2"})
    assert result.details["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert 85 < result.details["days_left"] < 91
    assert "www.example.test" in result.details["names"]


def test_tls_expiring_certificate(web, pki):
    check = {"type": "tls", "host": "localhost", "port": web.short_port, "ca_path": str(pki.ca)}
    result = failed(check)
    assert result.expected == "a certificate valid for 14 more days or longer"
    assert result.found.startswith(("4.", "5.0 days left"))
    passed({**check, "min_days_valid": 3})


def test_tls_wrong_name_verified(web, pki):
    result = failed({"type": "tls", "host": "127.0.0.1", "port": web.https_port, "server_name": "www.other.test",
                     "ca_path": str(pki.ca)})
    assert result.expected == "a certificate valid for www.other.test that the CA trusts"
    assert "certificate not trusted" in result.found


def test_tls_wrong_name_unverified(web):
    result = failed({"type": "tls", "host": "127.0.0.1", "port": web.https_port, "server_name": "www.other.test",
                     "validate_certs": False})
    assert result.expected == "a certificate valid for www.other.test"
    assert "www.example.test" in result.found


def test_tls_unverified_still_reads_the_certificate(web):
    result = passed({"type": "tls", "host": "127.0.0.1", "port": web.https_port, "server_name": "www.example.test",
                     "validate_certs": False})
    assert result.details["days_left"] > 80


def test_tls_minimum_protocol(web, pki):
    check = {"type": "tls", "host": "localhost", "port": web.tls12_port, "ca_path": str(pki.ca)}
    assert passed(check).details["protocol"] == "TLSv1.2"
    result = failed({**check, "min_protocol": "TLSv1.3"})
    assert (result.expected, result.found) == ("protocol TLSv1.3 or newer", "TLSv1.2")


def test_tls_on_a_plain_port(tcp_port, web):
    port = int(web.http.rsplit(":", 1)[1])
    result = failed({"type": "tls", "host": "127.0.0.1", "port": port, "timeout": 2})
    assert result.expected.startswith("a TLS handshake with 127.0.0.1:")


# ---------------------------------------------------------------------------------------------------------
# TCP


def test_tcp_open(tcp_port):
    result = passed({"type": "tcp", "host": "127.0.0.1", "port": tcp_port})
    assert result.details["address"] == "127.0.0.1:%d" % tcp_port


def test_tcp_closed(closed_port):
    result = failed({"type": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 1, "delay": 0.05})
    assert result.attempts == 2
    assert result.reason == "expected port %d open on 127.0.0.1, found connection refused (nothing listens on " \
                            "that port)" % closed_port


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL


def pg(postgres, port=None, **kwargs):
    return {"type": "postgres", "host": "127.0.0.1", "port": port or postgres.port, "password": PG_PASSWORD,
            "sslmode": "disable", **kwargs}


def test_postgres_primary(postgres):
    result = passed(pg(postgres, expect_role="primary", query="SELECT 40 + 2", expect=42))
    assert result.details["role"] == "primary"
    assert result.details["value"] == 42
    assert result.details["server_version"].split(".")[0] == postgres.version.split(".")[0]


def test_postgres_replica_is_reported(postgres):
    result = passed(pg(postgres, port=postgres.replica_port))
    assert result.details["role"] == "replica"
    result = failed(pg(postgres, port=postgres.replica_port, expect_role="primary"))
    assert (result.expected, result.found) == ("a primary server", "a replica")


def test_postgres_expected_value(postgres):
    passed(pg(postgres, query="SELECT current_database()", expect="postgres"))
    result = failed(pg(postgres, query="SELECT 1", expect=2))
    assert (result.expected, result.found) == ("query 'SELECT 1' to return 2", "1")


def test_postgres_wrong_password(postgres):
    result = failed({**pg(postgres), "password": "wrong"})
    assert result.expected == "a PostgreSQL connection as postgres@127.0.0.1:%d/postgres" % postgres.port
    assert "password authentication failed" in result.found


def test_postgres_bad_query(postgres):
    result = failed(pg(postgres, query="SELECT * FROM no_such_table"))
    assert 'relation "no_such_table" does not exist' in result.found


def test_postgres_only_reads(postgres):
    result = failed(pg(postgres, query="CREATE TABLE smoke_must_not_exist (id int)"))
    assert "read-only transaction" in result.found


def test_postgres_nothing_listening(closed_port, postgres):
    result = failed(pg(postgres, port=closed_port))
    assert "Connection refused" in result.found or "connection refused" in result.found


def test_postgres_missing_psycopg2_is_reported(monkeypatch):
    monkeypatch.setattr(smoke_probes, "HAS_PSYCOPG2", False)
    specs = validate_checks([{"name": "db", "type": "postgres"}, {"name": "web", "type": "tcp", "host": "h",
                                                                   "port": 1}])
    with pytest.raises(smoke_probes.MissingLibraryError) as info:
        smoke_probes.run(specs)
    assert (info.value.library, info.value.checks) == ("psycopg2", ["db"])


# ---------------------------------------------------------------------------------------------------------
# Redis


def rd(redis, port=None, **kwargs):
    return {"type": "redis", "host": "127.0.0.1", "port": port or redis.port, "password": REDIS_PASSWORD, **kwargs}


def test_redis_master(redis):
    result = passed(rd(redis, expect_role="master"))
    assert result.details["role"] == "master"
    assert result.details["server_version"]


def test_redis_replica(redis):
    result = passed(rd(redis, port=redis.replica_port, expect_role="replica"))
    assert result.details["role"] == "replica"
    result = failed(rd(redis, port=redis.replica_port, expect_role="master"))
    assert (result.expected, result.found) == ("a master", "a replica")


def test_redis_acl_user(redis):
    passed(rd(redis, username=REDIS_ACL_USER, password=REDIS_ACL_PASSWORD))


def test_redis_without_password(redis):
    result = failed({"type": "redis", "host": "127.0.0.1", "port": redis.port})
    assert result.found.startswith("error NOAUTH")
    assert result.reason.endswith("(give password)")


def test_redis_wrong_password(redis):
    result = failed(rd(redis, password="wrong"))
    assert result.expected == "AUTH to succeed"
    assert "WRONGPASS" in result.found or "invalid password" in result.found


def test_redis_not_a_redis_server(web):
    port = int(web.http.rsplit(":", 1)[1])
    result = failed({"type": "redis", "host": "127.0.0.1", "port": port, "timeout": 2})
    assert result.expected in ("PONG", "a Redis server on 127.0.0.1:%d" % port)


# ---------------------------------------------------------------------------------------------------------
# All of them at once


def test_every_type_concurrently(web, pki, tcp_port, postgres, redis):
    checks = [
        {"name": "site", "type": "http", "url": web.https + "/slow?s=0.5", "ca_path": str(pki.ca)},
        {"name": "cert", "type": "tls", "host": "localhost", "port": web.https_port, "ca_path": str(pki.ca)},
        {"name": "port", "type": "tcp", "host": "127.0.0.1", "port": tcp_port},
        {"name": "db", **pg(postgres, expect_role="primary")},
        {"name": "cache", **rd(redis, expect_role="master")},
        {"name": "slow", "type": "http", "url": web.http + "/slow?s=0.5"},
    ]
    start = time.monotonic()
    report = smoke_probes.run(validate_checks(checks), deadline=20)
    assert report.ok, report.message()
    assert time.monotonic() - start < 1.0 + 0.5 * 2
