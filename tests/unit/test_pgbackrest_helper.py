"""Pure logic of roles/pgbackrest/files/opsforge-pgbackrest: which WAL segments a restore drill needs.

The drill refuses a repository with a hole in the WAL between the backup and the newest archived segment
(PostgreSQL would stop at the hole and promote silently with less data). Recovery reads each segment from the
newest timeline of the history that has begun by then, so the check follows the timeline history.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[2] / "roles" / "pgbackrest" / "files" / "opsforge-pgbackrest"
_loader = importlib.machinery.SourceFileLoader("opsforge_pgbackrest", str(HELPER))
_spec = importlib.util.spec_from_loader("opsforge_pgbackrest", _loader)
helper = importlib.util.module_from_spec(_spec)
_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ inside the role
_loader.exec_module(helper)
sys.dont_write_bytecode = _bytecode
REAL_IS_PRIMARY = helper.is_primary  # the fixture replaces is_primary; the down-server test needs the real one

SEG = 16 * 2**20
# timeline 1 until 0/5000000 (segment 5), timeline 2 until 0/9800000 (segment 9), then timeline 3
HISTORY = "1\t0/5000000\tno recovery target specified\n\n2\t0/9800000\tbefore 2026-11-25 03:00:00+00\n"
FULL = {(1, n) for n in range(2, 7)} | {(2, n) for n in range(5, 11)} | {(3, n) for n in range(9, 14)}


def test_segment_number():
    assert helper.segment_number("000000010000000000000005", SEG) == 5
    assert helper.segment_number("0000000200000001000000FF", SEG) == 0x1FF
    assert helper.segment_number("000000010000000100000001", 64 * 2**20) == 64 + 1


def test_timeline_begins_follows_history():
    assert helper.timeline_begins(HISTORY, 3, SEG) == {1: 0, 2: 5, 3: 9}
    assert helper.timeline_begins("", 1, SEG) == {1: 0}


@pytest.mark.parametrize(
    ("removed", "missing"),
    [
        (set(), []),
        ({(3, 11)}, ["00000003000000000000000B"]),
        ({(2, 7), (3, 11)}, ["000000020000000000000007", "00000003000000000000000B"]),
        ({(1, 7)}, []),  # an abandoned segment of timeline 1 after the switch is not needed
        ({(1, 6)}, []),  # segment 6 is read from timeline 2
        ({(1, 4)}, ["000000010000000000000004"]),
    ],
)
def test_missing_segments(removed, missing):
    begins = helper.timeline_begins(HISTORY, 3, SEG)
    archived = FULL - removed
    assert (
        helper.missing_segments(archived, "000000010000000000000002", "00000003000000000000000D", begins, SEG)
        == missing
    )


# --- backups and metrics with two repositories --------------------------------------------------------------------


class _Done:
    def __init__(self, returncode=0, stdout=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, ""


def _backup(repo, kind, stop):
    return {
        "type": kind,
        "label": f"{kind}-{repo}-{stop}",
        "database": {"id": 1, "repo-key": repo},
        "timestamp": {"start": stop - 5, "stop": stop},
        "info": {"size": 100, "repository": {"delta": 10}},
    }


def _no_server(*_args, **_kwargs):
    raise RuntimeError("no PostgreSQL in a unit test")


@pytest.fixture
def two_repos(tmp_path, monkeypatch):
    """The helper with two repositories; pgbackrest answers from `calls`: repo2's backups fail when asked to."""
    conf = {
        "stanza": "main",
        "repos": 2,
        "pg_port": 5432,
        "canary_enabled": False,
        "metrics_enabled": True,
        "textfile_dir": str(tmp_path / "textfile"),
    }
    calls, fail, locked = [], set(), {}
    info = [
        {"status": {"code": 0}, "backup": [_backup(1, "full", 100), _backup(2, "full", 110), _backup(1, "incr", 120)]}
    ]

    def pgbackrest(_conf, *args, timeout=None):
        calls.append(args)
        if args[-1] == "backup":
            if locked.get(args[0], 0) > 0:  # another backup holds this repository's lock for that many calls
                locked[args[0]] -= 1
                return _Done(helper.LOCK_ERROR)
            return _Done(1 if args[0] in fail else 0)
        return _Done(0, helper.json.dumps(info))

    monkeypatch.setattr(helper, "STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(helper, "pgbackrest", pgbackrest)
    monkeypatch.setattr(helper, "is_primary", lambda _conf: True)
    monkeypatch.setattr(helper, "psql", _no_server)
    monkeypatch.setattr(helper.time, "sleep", lambda _seconds: None)
    conf["locked"] = locked
    return conf, calls, fail, tmp_path


def _args(kind, repo=None):
    return helper.argparse.Namespace(type=kind, repo=repo)


def test_backup_goes_to_each_repository_and_on_after_a_failure(two_repos):
    conf, calls, fail, tmp_path = two_repos
    fail.add("--repo=1")
    assert helper.cmd_backup(conf, _args("diff")) == 1
    assert [c for c in calls if c[-1] == "backup"] == [
        ("--repo=1", "--type=diff", "backup"),
        ("--repo=2", "--type=diff", "backup"),
    ]
    prom = (tmp_path / "textfile" / "pgbackrest.prom").read_text()
    assert 'pgbackrest_backup_last_run_success{stanza="main",type="diff",repo="1"} 0' in prom
    assert 'pgbackrest_backup_last_run_success{stanza="main",type="diff",repo="2"} 1' in prom


def test_backup_to_one_repository_keeps_the_others_results(two_repos):
    conf, calls, _fail, tmp_path = two_repos
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "backup.json").write_text('{"full": {"rc": 0, "started": 1, "finished": 2}}')  # older form
    assert helper.cmd_backup(conf, _args("full", repo=2)) == 0
    assert [c for c in calls if c[-1] == "backup"] == [("--repo=2", "--type=full", "backup")]
    prom = (tmp_path / "textfile" / "pgbackrest.prom").read_text()
    assert 'pgbackrest_backup_last_run_success{stanza="main",type="full",repo="1"} 1' in prom
    assert 'pgbackrest_backup_last_run_success{stanza="main",type="full",repo="2"} 1' in prom


def test_metrics_name_the_newest_backup_of_each_type_in_each_repository(two_repos):
    conf, _calls, _fail, tmp_path = two_repos
    helper.cmd_metrics(conf, None)
    prom = (tmp_path / "textfile" / "pgbackrest.prom").read_text()
    assert 'pgbackrest_last_backup_timestamp_seconds{stanza="main",type="full",repo="1"} 100' in prom
    assert 'pgbackrest_last_backup_timestamp_seconds{stanza="main",type="full",repo="2"} 110' in prom
    assert 'pgbackrest_last_backup_timestamp_seconds{stanza="main",type="incr",repo="1"} 120' in prom
    assert 'type="incr",repo="2"' not in prom
    assert 'pgbackrest_backups{stanza="main",repo="1"} 2' in prom
    assert 'pgbackrest_backups{stanza="main",repo="2"} 1' in prom


def test_backup_waits_while_another_holds_the_lock(two_repos):
    conf, calls, _fail, tmp_path = two_repos
    conf["locked"]["--repo=2"] = 3
    assert helper.cmd_backup(conf, _args("diff")) == 0
    assert [c[0] for c in calls if c[-1] == "backup"] == ["--repo=1"] + ["--repo=2"] * 4
    prom = (tmp_path / "textfile" / "pgbackrest.prom").read_text()
    assert 'pgbackrest_backup_last_run_success{stanza="main",type="diff",repo="2"} 1' in prom


def test_backup_fails_when_postgresql_does_not_answer(two_repos, monkeypatch, capsys):
    conf, calls, _fail, tmp_path = two_repos
    monkeypatch.setattr(helper, "is_primary", REAL_IS_PRIMARY)  # psql raises: no server answers
    assert helper.cmd_backup(conf, _args("full")) == 2
    assert [c for c in calls if c[-1] == "backup"] == []
    err = capsys.readouterr().err
    assert "no backup taken: expected PostgreSQL to answer on port 5432" in err
    assert "no PostgreSQL in a unit test" in err
    assert not (tmp_path / "state" / "backup.json").exists()  # no failed run recorded: the primary's timer backs up


def test_backup_on_a_replica_is_a_quiet_no_op(two_repos, monkeypatch):
    conf, calls, _fail, _tmp_path = two_repos
    monkeypatch.setattr(helper, "is_primary", lambda _conf: False)
    assert helper.cmd_backup(conf, _args("full")) == 0
    assert calls == []


@pytest.mark.parametrize(
    ("base", "entries", "problem"),
    [
        ("/var/lib/pgbackrest-drill", None, None),  # new
        ("/var/lib/pgbackrest-drill", [], None),  # empty
        ("/var/lib/pgbackrest-drill", [".opsforge-pgbackrest-drill", "data", "other"], None),  # the drill's own
        ("/var/lib/pgbackrest-drill", ["postgres.log"], None),  # left by a drill before the marker
        ("/srv/important", ["invoices.db", "README"], "holds files the drill did not make (README, invoices.db)"),
        ("/var/lib", ["postgresql"], "must be an absolute directory of its own"),
        ("relative/dir", None, "must be an absolute directory of its own"),
        ("/var/lib/postgresql", None, "overlaps the data directory /var/lib/postgresql/17/main"),
        ("/var/lib/postgresql/17/main/drill", None, "overlaps the data directory"),
    ],
)
def test_drill_path_is_new_empty_or_its_own(base, entries, problem):
    found = helper.drill_path_problem(base, "/var/lib/postgresql/17/main", entries)
    assert (found is None) if problem is None else (problem in found), found


def test_drill_checks_free_space_before_restoring():
    backup = {"label": "20261205-010000F", "info": {"size": 10 * 2**30}}
    assert helper.drill_space_problem(20 * 2**30, backup) is None
    problem = helper.drill_space_problem(5 * 2**30, backup)
    assert problem.startswith("not enough free space for the drill: the backup 20261205-010000F restores to 10240 MiB")
    assert "5120 MiB free" in problem


@pytest.mark.parametrize(("answer", "printed"), [("t", "primary"), ("f", "replica"), (None, "down")])
def test_role_names_primary_replica_or_down(monkeypatch, capsys, answer, printed):
    def psql(_sql, _port, **_kwargs):
        if answer is None:
            raise RuntimeError("connection refused")
        return answer

    monkeypatch.setattr(helper, "psql", psql)
    assert helper.cmd_role({"pg_port": 5432}, None) == 0
    assert capsys.readouterr().out.strip() == printed
