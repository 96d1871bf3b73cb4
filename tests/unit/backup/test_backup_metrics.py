"""The backup job's textfile metrics (roles/backup/files/opsforge_backup.py) against a temporary directory.

The names and the `name` label are the contract of the prometheus role's BackupTooOld / BackupFailed rules
(roles/prometheus/templates/opsforge.rules.yml.j2): this file reads the rule expressions and checks that every
opsforge_backup_* name they use is one the job writes.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import stat
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
JOB = ROOT / "roles/backup/files/opsforge_backup.py"
_spec = importlib.util.spec_from_file_location("opsforge_backup_metrics", JOB)
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)

NAMES = {"opsforge_backup_" + suffix for suffix, _ in job.METRICS_HELP}
# Prometheus text format (what node exporter's textfile collector accepts), one gauge sample per line here.
HELP = re.compile(r"^# HELP (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$")
TYPE = re.compile(r"^# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")
SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)\} (?P<value>-?[0-9]+(?:\.[0-9]+)?)$')


def parse(text):
    """Check the Prometheus text format strictly enough for these files; return {name: (labels, value)}."""
    assert text.endswith("\n")
    samples, typed, helped = {}, set(), set()
    for line in text.splitlines():
        if match := HELP.match(line):
            helped.add(match["name"])
        elif match := TYPE.match(line):
            assert match["name"] not in samples, "TYPE after the samples of " + match["name"]
            typed.add(match["name"])
        elif line.startswith("#"):
            assert not line.startswith(("# HELP", "# TYPE")), line
        else:
            match = SAMPLE.match(line)
            assert match, "not a sample line: %r" % line
            assert match["name"] not in samples, "duplicate series " + match["name"]
            assert match["name"] in typed and match["name"] in helped, "no HELP/TYPE before " + match["name"]
            samples[match["name"]] = (match["labels"], float(match["value"]))
    return samples


def cfg_for(directory):
    return {"host": "db1", "textfile_dir": str(directory)}


def test_success_writes_every_metric(tmp_path):
    path = job.write_metrics(cfg_for(tmp_path), "postgresql:app", True, 12.3456, 123456789, now=1_790_000_000.7)
    assert path == str(tmp_path / "opsforge_backup_postgresql_app.prom")
    samples = parse(Path(path).read_text())
    assert set(samples) == NAMES
    assert all(labels == 'name="postgresql:app"' for labels, _ in samples.values())
    assert samples["opsforge_backup_last_success_timestamp_seconds"][1] == 1_790_000_000
    assert samples["opsforge_backup_last_run_timestamp_seconds"][1] == 1_790_000_000
    assert samples["opsforge_backup_last_duration_seconds"][1] == 12.346
    assert samples["opsforge_backup_last_size_bytes"][1] == 123456789
    assert samples["opsforge_backup_last_exit_status"][1] == 0
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [Path(path).name]  # no temporary file left behind


def test_failure_keeps_the_previous_success_and_sets_status_1(tmp_path):
    cfg = cfg_for(tmp_path)
    job.write_metrics(cfg, "redis", True, 3, 4096, now=1_790_000_000)
    path = Path(job.write_metrics(cfg, "redis", False, 0.25, 999, now=1_790_086_400))
    samples = parse(path.read_text())
    assert samples["opsforge_backup_last_success_timestamp_seconds"] == ('name="redis"', 1_790_000_000)
    assert samples["opsforge_backup_last_run_timestamp_seconds"][1] == 1_790_086_400
    assert samples["opsforge_backup_last_exit_status"][1] == 1
    assert samples["opsforge_backup_last_size_bytes"][1] == 0
    assert samples["opsforge_backup_last_duration_seconds"][1] == 0.25
    # a second failure still keeps it; the next success replaces it
    job.write_metrics(cfg, "redis", False, 1, 0, now=1_790_090_000)
    assert parse(path.read_text())["opsforge_backup_last_success_timestamp_seconds"][1] == 1_790_000_000
    job.write_metrics(cfg, "redis", True, 1, 10, now=1_790_100_000)
    samples = parse(path.read_text())
    assert samples["opsforge_backup_last_success_timestamp_seconds"][1] == 1_790_100_000
    assert samples["opsforge_backup_last_exit_status"][1] == 0


def test_a_target_that_never_succeeded_has_no_success_time(tmp_path):
    samples = parse(Path(job.write_metrics(cfg_for(tmp_path), "postgresql:_globals", False, 1, 0)).read_text())
    assert "opsforge_backup_last_success_timestamp_seconds" not in samples
    assert samples["opsforge_backup_last_exit_status"] == ('name="postgresql:_globals"', 1)


def test_odd_database_names_stay_apart_and_are_escaped(tmp_path):
    cfg = cfg_for(tmp_path)
    first = Path(job.write_metrics(cfg, 'postgresql:we"ird\\db', True, 1, 1))
    second = Path(job.write_metrics(cfg, "postgresql:we_ird_db", True, 1, 1))
    assert first != second and re.fullmatch(r"opsforge_backup_postgresql_we_ird_db-[0-9a-f]{8}\.prom", first.name)
    assert parse(first.read_text())["opsforge_backup_last_exit_status"][0] == r'name="postgresql:we\"ird\\db"'


def test_no_directory_skips_quietly_with_one_log_line(tmp_path, caplog):
    cfg = cfg_for(tmp_path / "missing")
    with caplog.at_level(logging.INFO, logger="opsforge-backup"):
        assert job.write_metrics(cfg, "redis", True, 1, 1) is None
        assert job.write_metrics(cfg, "postgresql:app", False, 1, 0) is None
    assert len(caplog.records) == 1 and "no textfile directory" in caplog.records[0].getMessage()
    assert not (tmp_path / "missing").exists()
    assert job.write_metrics({"textfile_dir": ""}, "redis", True, 1, 1) is None


def test_no_secrets_in_the_file(tmp_path):
    cfg = dict(cfg_for(tmp_path), s3={"secret_key": "testing-secret"}, redis={"password": "redis-test-secret"})
    text = Path(job.write_metrics(cfg, "redis", True, 1, 1)).read_text()
    assert "secret" not in text


def test_run_reports_every_target_success_or_failure(tmp_path, monkeypatch):
    """cmd_run writes one file per target after its run, and removes files of targets no longer configured."""
    cfg = {
        "host": "db1", "textfile_dir": str(tmp_path), "lock_dir": str(tmp_path / "locks"), "status_file": "",
        "s3": {"bucket": "b", "prefix": "backups", "safety_prefix": "backups-safety"},
        "postgresql": {"enabled": True, "databases": ["app", "shop"], "globals": False},
        "redis": {"enabled": False}, "retention": {"enabled": False},
    }
    (tmp_path / "opsforge_backup_postgresql_gone.prom").write_text(job.render_metrics("postgresql:gone", {}))
    (tmp_path / "opsforge_backup_wal.prom").write_text('opsforge_backup_last_exit_status{name="wal"} 0\n')

    def fake_backup(_cfg, name):
        if name == "postgresql:shop":
            raise job.BackupError("pg_dump exited 1")
        return {"key": "backups/db1/app/x.dump", "manifest": "m", "size": 2048, "sha256": "0" * 64}

    monkeypatch.setattr(job, "backup_target", fake_backup)
    assert job.cmd_run(cfg, types.SimpleNamespace(only=None, no_rotate=True)) == 1
    files = sorted(p.name for p in tmp_path.glob("*.prom"))
    assert files == ["opsforge_backup_postgresql_app.prom", "opsforge_backup_postgresql_shop.prom",
                     "opsforge_backup_wal.prom"]  # the helper's file is not the job's to remove
    app = parse((tmp_path / "opsforge_backup_postgresql_app.prom").read_text())
    shop = parse((tmp_path / "opsforge_backup_postgresql_shop.prom").read_text())
    assert app["opsforge_backup_last_exit_status"][1] == 0 and app["opsforge_backup_last_size_bytes"][1] == 2048
    assert shop["opsforge_backup_last_exit_status"][1] == 1
    assert "opsforge_backup_last_success_timestamp_seconds" not in shop
    # a run of one target touches only its file
    before = (tmp_path / "opsforge_backup_postgresql_app.prom").read_text()
    assert job.cmd_run(cfg, types.SimpleNamespace(only=["postgresql:shop"], no_rotate=True)) == 1
    assert (tmp_path / "opsforge_backup_postgresql_app.prom").read_text() == before


def test_a_metrics_error_does_not_change_the_backup_result(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(job, "write_metrics", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    job.report_metrics(cfg_for(tmp_path), "redis", True, 1, 1)
    assert "metrics of redis not written: disk full" in caplog.text


@pytest.mark.parametrize("alert", ["BackupTooOld", "BackupFailed"])
def test_the_alert_rules_read_what_the_job_writes(alert):
    rules = (ROOT / "roles/prometheus/templates/opsforge.rules.yml.j2").read_text()
    block = rules[rules.index("['%s'" % alert):]
    expr = block[: block.index("],")]
    used = set(re.findall(r"opsforge_backup_[a-z_]+", expr))
    assert used and used <= NAMES
    assert "$labels.name" in expr  # the summary names the target by the job's only label
