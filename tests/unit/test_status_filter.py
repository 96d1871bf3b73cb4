"""The status screen's pure logic (plugins/filter/status.py): raw host reports in, summary and text out.

The reports below have the shapes the status role keeps (Patroni's /cluster JSON, the psql JSON row, redis-cli's
non-tty lines, last-run.json, x509_certificate_info loop results, Prometheus's /api/v1/alerts); a host without a
report did not answer and must show as down, never raise.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / ".collections") not in sys.path:
    sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.opsforge.stack.plugins.filter.status import (
    FilterModule,
    human_age,
    status_screen,
    status_summary,
)

NOW = 1_798_000_000.0  # 2026-12-23T...Z
DB = ["db1.example.com", "db2.example.com", "db3.example.com"]
WEB = ["web1.example.com", "web2.example.com"]
GROUPS = {"postgres": DB, "redis": DB, "backup": DB[:1], "web": WEB, "app": WEB, "monitoring": ["mon1.example.com"]}


def _iso(offset):
    return dt.datetime.fromtimestamp(NOW + offset, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cluster(leader="db1.example.com", lag=0):
    return {"members": [
        {"name": h, "role": "leader" if h == leader else "replica",
         "state": "running" if h == leader else "streaming", "timeline": 3, **({} if h == leader else {"lag": lag})}
        for h in DB]}


def _sentinel(master="10.0.2.1"):
    return {
        "sentinel_enabled": True,
        "sentinel_master": f"name\nopsforge\nip\n{master}\nport\n6379\nflags\nmaster\nnum-other-sentinels\n2\n",
        "sentinel_replicas": "name\n10.0.2.2:6379\nip\n10.0.2.2\nport\n6379\nflags\nslave\n"
                             "name\n10.0.2.3:6379\nip\n10.0.2.3\nport\n6379\nflags\nslave\n",
    }


def _redis(host, master="10.0.2.1"):
    address = "10.0.2." + host[2]
    info = ("# Replication\nrole:master\nconnected_slaves:2\n" if address == master else
            f"# Replication\nrole:slave\nmaster_host:{master}\nmaster_port:6379\nmaster_link_status:up\n")
    return {"addresses": f"{address} 172.17.0.5", "info": info, **_sentinel(master)}


def _healthy():
    reports = {}
    for host in DB:
        sql = {"recovery": host != "db1.example.com", "timeline": 3, "archive_mode": "on",
               "archiver": {"last_archived_time": _iso(-30), "age_seconds": 30, "failed_count": 0}}
        reports[host] = {
            "postgres": {"mode": "patroni", "patroni": _cluster(), "sql": json.dumps(sql), "pgbackrest_enabled": True,
                         "pgbackrest": json.dumps([{"name": "main", "status": {"code": 0, "message": "ok"},
                                                    "backup": [{"label": "F", "type": "full", "error": False,
                                                                "timestamp": {"start": NOW - 7300, "stop": NOW - 7200}},
                                                               {"label": "D", "type": "diff", "error": True,
                                                                "timestamp": {"start": NOW - 60,
                                                                              "stop": NOW - 50}}]}])},
            "redis": _redis(host),
        }
    reports["db1.example.com"]["backup"] = {
        "last_run": json.dumps({"finished": _iso(-3600), "ok": True, "results": [], "failures": []}),
        "success_metrics": "".join(
            f'opsforge_backup_last_success_timestamp_seconds{{name="{target}"}} {NOW - age:.0f}\n'
            for target, age in (("postgresql:app", 3600), ("redis", 3500))),
    }
    for host in WEB:
        reports[host] = {
            "web": {"certs": [{"item": {"content": "x", "item": {"name": "app"}}, "not_after": "20270301000000Z",
                               "issuer": {"organizationName": "Let's Encrypt"}}]},
            "app": {"current": "/srv/app/releases/2026.12.1", "running": 3},
        }
    reports["mon1.example.com"] = {"monitoring": {"alerts": {"status": "success", "data": {"alerts": []}}}}
    return reports


def _summary(reports, **kwargs):
    return status_summary(reports, GROUPS, now=NOW, **kwargs)


def test_a_healthy_stack_has_no_problem_and_names_who_leads():
    summary = _summary(_healthy())
    assert summary["problems"] == [] and summary["ok"]
    assert summary["postgres"]["leader"] == "db1.example.com"
    assert summary["postgres"]["archive"][0]["age_seconds"] == 30
    assert summary["postgres"]["pgbackrest"]["type"] == "full"  # the failed diff is not a success
    assert summary["postgres"]["pgbackrest"]["age_seconds"] == 7200
    assert summary["redis"]["master"] == "10.0.2.1:6379" and summary["redis"]["master_host"] == "db1.example.com"
    assert set(summary["redis"]["replicas"]) == {"10.0.2.2:6379", "10.0.2.3:6379"}
    assert summary["backup"][0]["last_success"] == _iso(-3600)  # the stalest target
    assert summary["app"][0]["release"] == "2026.12.1"
    json.dumps(summary)  # set_stats needs plain data


def test_the_screen_is_compact_and_readable():
    text = status_screen(_summary(_healthy()))
    lines = text.splitlines()
    assert lines[0].endswith("all good")
    assert "postgres (patroni): leader db1" in text
    assert "redis: master 10.0.2.1:6379 (db1) per Sentinel" in text
    assert any(line.split()[:3] == ["db2", "replica", "streaming"] and "lag 0B" in line for line in lines)
    assert "pgBackRest: last full backup" in text and "2h00m ago" in text
    assert "expires 2027-03-01T00:00:00Z" in text and "issuer Let's Encrypt" in text
    assert "alerts (mon1): 0 firing, 0 pending" in text
    assert "problems:" not in text
    assert max(len(line) for line in lines) < 160


def test_hosts_without_a_report_are_shown_down_not_raised():
    reports = _healthy()
    del reports["db1.example.com"], reports["web2.example.com"]
    for host in DB[1:]:  # the survivors elected db2 and Sentinel promoted it
        reports[host]["postgres"]["patroni"] = {"members": [
            {"name": "db2.example.com", "role": "leader", "state": "running", "timeline": 4},
            {"name": "db3.example.com", "role": "replica", "state": "streaming", "timeline": 4, "lag": 0}]}
        reports[host]["redis"] = _redis(host, master="10.0.2.2")
    summary = _summary(reports)
    assert summary["unreachable"] == ["db1.example.com", "web2.example.com"]
    assert summary["postgres"]["leader"] == "db2.example.com"
    assert summary["redis"]["master_host"] == "db2.example.com"
    problems = "\n".join(summary["problems"])
    assert "db1.example.com" in problems and "web: web2.example.com did not answer" in problems
    text = status_screen(summary)
    assert "unreachable: db1, web2" in text
    assert "no answer (host down)" in text


def test_nothing_answers_at_all():
    summary = _summary({})
    assert not summary["ok"]
    assert "postgres: no leader" in summary["problems"]
    assert summary["postgres"]["leader"] is None
    assert "leader NONE" in status_screen(summary)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: r["db2.example.com"]["postgres"].update(patroni=_cluster(lag=64 * 1024 * 1024)) or [
        h["postgres"].update(patroni=_cluster(lag=64 * 1024 * 1024)) for h in r.values() if "postgres" in h],
     "postgres: db2.example.com lags 64.0MB"),
    (lambda r: r["db1.example.com"]["postgres"].update(sql=json.dumps(
        {"recovery": False, "archiver": {"last_archived_time": _iso(-3600), "age_seconds": 3600, "failed_count": 2}})),
     "postgres: last WAL archived 1h00m ago on db1.example.com"),
    (lambda r: r["db3.example.com"].update(redis=_redis("db3.example.com", master="10.0.2.3")),
     "redis: the Sentinels disagree on the master (10.0.2.1:6379, 10.0.2.3:6379)"),
    (lambda r: r["db1.example.com"]["backup"].update(last_run=json.dumps(
        {"finished": _iso(-60), "ok": False, "failures": [{"target": "redis", "error": "S3 timeout"}]})),
     "backup: db1.example.com last run failed (redis: S3 timeout)"),
    (lambda r: r["web1.example.com"]["web"]["certs"][0].update(not_after=_iso(5 * 86400)),
     "web: web1.example.com app: certificate expires in 5 days"),
    (lambda r: r["web1.example.com"]["web"].update(certs=[{"item": {"item": {"name": "app"}, "msg": "File not found"},
                                                           "skipped": True}]),
     "web: web1.example.com app: no certificate file (File not found)"),
    (lambda r: r["web2.example.com"]["app"].update(current="/srv/app/releases/2026.12.2"),
     "app: hosts run different releases (2026.12.1, 2026.12.2)"),
    (lambda r: r["web2.example.com"]["app"].update(running=0), "app: web2.example.com NOT RUNNING"),
    (lambda r: r["mon1.example.com"]["monitoring"].update(alerts={"data": {"alerts": [
        {"state": "firing", "labels": {"alertname": "InstanceDown", "severity": "critical", "instance": "db1:9100"},
         "activeAt": _iso(-120)},
        {"state": "pending", "labels": {"alertname": "RedisDown"}}]}}),
     "alert: InstanceDown db1:9100"),
    (lambda r: r["mon1.example.com"]["monitoring"].update(alerts=None, error="Connection refused"),
     "monitoring: Prometheus on mon1.example.com down (Connection refused)"),
])
def test_each_problem_is_named(change, expected):
    reports = _healthy()
    change(reports)
    summary = _summary(reports)
    assert expected in summary["problems"], summary["problems"]
    assert expected.split(":")[0] in status_screen(summary)


def test_firing_alerts_are_listed_on_the_screen():
    reports = _healthy()
    reports["mon1.example.com"]["monitoring"]["alerts"] = {"data": {"alerts": [
        {"state": "firing", "labels": {"alertname": "InstanceDown", "severity": "critical", "instance": "db1:9100"},
         "activeAt": "2026-12-23T08:00:00.123456789Z"}]}}
    text = status_screen(_summary(reports))
    assert "alerts (mon1): 1 firing, 0 pending" in text
    assert any(line.split()[:3] == ["critical", "InstanceDown", "db1:9100"] for line in text.splitlines())


def test_streaming_replication_mode_reads_pg_stat_replication():
    reports = {
        "db1.example.com": {"postgres": {"mode": "replication", "addresses": "10.0.2.1", "sql": json.dumps({
            "recovery": False, "timeline": 1, "archiver": {"age_seconds": 12, "last_archived_time": _iso(-12)},
            "replication": [{"application_name": "db2_example_com", "client_addr": "10.0.2.2", "state": "streaming",
                             "lag_bytes": 2048}]})}},
        "db2.example.com": {"postgres": {"mode": "replication", "addresses": "10.0.2.2", "sql": json.dumps({
            "recovery": True, "timeline": 1, "replay_delay_seconds": 3})}},
        "db3.example.com": {"postgres": {"mode": "replication", "sql": "",
                                         "sql_error": "psql: error: connection refused"}},
    }
    summary = status_summary(reports, {"postgres": DB}, components={"postgres": "postgres"}, now=NOW)
    members = {m["name"]: m for m in summary["postgres"]["members"]}
    assert summary["postgres"]["leader"] == "db1.example.com"
    assert members["db2.example.com"]["lag_bytes"] == 2048 and members["db2.example.com"]["state"] == "streaming"
    assert members["db3.example.com"]["state"] == "down (psql: error: connection refused)"
    assert "lag 2.0kB replayed 3s ago" in status_screen(summary)


def test_targets_and_components_choose_what_is_shown():
    summary = status_summary(_healthy(), {"db": DB, "web": WEB}, components={"redis": "db"},
                             targets=DB[:2], now=NOW)
    assert set(summary) >= {"redis"} and "web" not in summary and "postgres" not in summary
    assert [m["name"] for m in summary["redis"]["members"]] == DB[:2]


@pytest.mark.parametrize(("groups", "components", "message"), [
    ("web", None, "expected the inventory's groups"),
    ({}, {"databases": "postgres"}, "unknown components ['databases']"),
])
def test_bad_input(groups, components, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        status_summary({}, groups, components=components)


@pytest.mark.parametrize(("seconds", "text"), [(None, "never"), (5, "5s"), (125, "2m"), (3 * 3600 + 300, "3h05m"),
                                               (2 * 86400 + 4 * 3600, "2d04h")])
def test_human_age(seconds, text):
    assert human_age(seconds) == text


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"status_summary", "status_screen"}


def test_reports_read_from_the_hosts_variables():
    hostvars = {h: {"status_report": r, "other": 1} for h, r in _healthy().items()}
    hostvars["web2.example.com"] = {"other": 1}  # never reached: no status_report
    summary = status_summary(hostvars, GROUPS, report_key="status_report", now=NOW)
    assert summary["unreachable"] == ["web2.example.com"]
    assert summary["postgres"]["leader"] == "db1.example.com"
