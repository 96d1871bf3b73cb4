"""The ALTER SYSTEM plan of the postgresql role (plugins/filter/postgresql_settings.py).

The rows below have the shape of the role's query (roles/postgresql/tasks/server.yml): pg_settings' name, setting,
unit, vartype and pending_restart, and the value postgresql.auto.conf holds (auto_setting, None without one), with
the values PostgreSQL 17 reports on a fresh cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / ".collections") not in sys.path:
    sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.opsforge.stack.plugins.filter.postgresql_settings import (
    FilterModule,
    normalize,
    postgresql_alter_plan,
    postgresql_databases_to_apply,
    same_value,
)


def row(name, setting, unit=None, vartype="integer", auto=None, pending=False):
    return {"name": name, "setting": setting, "unit": unit, "vartype": vartype,
            "pending_restart": pending, "auto_setting": auto}


# A fresh cluster's answer: defaults running, nothing in postgresql.auto.conf.
FRESH = [
    row("max_connections", "100"),
    row("work_mem", "4096", "kB"),
    row("shared_buffers", "16384", "8kB"),
    row("max_wal_size", "1024", "MB"),
    row("checkpoint_timeout", "300", "s"),
    row("log_min_duration_statement", "-1", "ms"),
    row("vacuum_cost_delay", "0", "ms", vartype="real"),
    row("checkpoint_completion_target", "0.9", vartype="real"),
    row("jit", "on", vartype="bool"),
    row("wal_compression", "off", vartype="enum"),
    row("listen_addresses", "localhost", vartype="string"),
]


def keys(plan):
    return [p["key"] for p in plan]


def test_registered_as_a_filter():
    assert FilterModule().filters()["postgresql_alter_plan"] is postgresql_alter_plan


def test_defaults_already_running_are_not_sent():
    """The issue: values equal to PostgreSQL's defaults never reach postgresql.auto.conf, and must not be re-sent."""
    wanted = {"max_connections": "100", "work_mem": "4096kB", "checkpoint_completion_target": "0.9",
              "jit": "on", "checkpoint_timeout": "5min", "max_wal_size": "1GB", "shared_buffers": "128MB"}
    assert postgresql_alter_plan(wanted, FRESH) == []


def test_different_values_are_sent_in_wanted_order_as_text():
    wanted = {"work_mem": "8MB", "max_connections": 200, "shared_buffers": "128MB", "max_wal_size": "4GB"}
    assert postgresql_alter_plan(wanted, FRESH) == [
        {"key": "work_mem", "value": "8MB"},
        {"key": "max_connections", "value": "200"},
        {"key": "max_wal_size", "value": "4GB"},
    ]


@pytest.mark.parametrize(("setting", "unit", "wanted"), [
    ("4096", "kB", "4MB"),
    ("4096", "kB", "4096kB"),
    ("4096", "kB", "4096"),
    ("4096", "kB", "4194304B"),
    ("1048576", "kB", "1GB"),
    ("1073741824", "kB", "1TB"),
    ("16384", "8kB", "128MB"),
    ("16384", "8kB", "131072kB"),
    ("16384", "8kB", "16384"),
    ("1024", "MB", "1GB"),
    ("1536", "kB", "1.5MB"),
    ("300", "s", "5min"),
    ("300", "s", "300000ms"),
    ("300", "s", "300"),
    ("3600", "s", "1h"),
    ("86400", "s", "1d"),
    ("60000", "ms", "1min"),
    ("1", "ms", "1000us"),
    ("-1", "ms", "-1"),
])
def test_units_are_normalised(setting, unit, wanted):
    r = row("x", setting, unit)
    assert same_value(wanted, setting, r)
    assert postgresql_alter_plan({"x": wanted}, [r]) == []


@pytest.mark.parametrize(("setting", "unit", "wanted"), [
    ("4096", "kB", "5MB"),
    ("4096", "kB", "4097"),
    ("16384", "8kB", "129MB"),
    ("300", "s", "6min"),
    ("300", "s", "300ms"),
])
def test_different_amounts_differ(setting, unit, wanted):
    r = row("x", setting, unit)
    assert not same_value(wanted, setting, r)
    assert keys(postgresql_alter_plan({"x": wanted}, [r])) == ["x"]


def test_integers_round_to_their_unit_like_postgresql():
    r = row("work_mem", "4096", "kB")
    assert normalize("4194303B", r) == 4096  # 4095.999 kB
    assert normalize("4MB", r) == 4096
    assert normalize("2.5", row("max_connections", "100")) == 2  # rint(): half to even


def test_real_settings_compare_as_numbers():
    r = row("vacuum_cost_delay", "2", "ms", vartype="real")
    assert same_value("2ms", "2", r)
    assert same_value("0.002s", "2", r)
    assert same_value("2000us", "2", r)
    assert not same_value("2.5ms", "2", r)
    c = row("checkpoint_completion_target", "0.9", vartype="real")
    assert same_value("0.90", "0.9", c)
    assert not same_value("0.5", "0.9", c)


def test_a_unit_of_the_wrong_family_or_unknown_is_sent():
    assert keys(postgresql_alter_plan({"work_mem": "4s"}, FRESH)) == ["work_mem"]
    assert keys(postgresql_alter_plan({"work_mem": "4mb"}, FRESH)) == ["work_mem"]  # units are case-sensitive
    assert keys(postgresql_alter_plan({"max_connections": "100kB"}, FRESH)) == ["max_connections"]
    assert keys(postgresql_alter_plan({"max_connections": "lots"}, FRESH)) == ["max_connections"]


@pytest.mark.parametrize("value", ["on", "ON", "true", "True", "yes", "1", True, " on "])
def test_booleans_true(value):
    r = row("jit", "on", vartype="bool")
    assert postgresql_alter_plan({"jit": value}, [r]) == []
    assert keys(postgresql_alter_plan({"jit": value}, [row("jit", "off", vartype="bool")])) == ["jit"]


@pytest.mark.parametrize("value", ["off", "Off", "false", "FALSE", "no", "0", False])
def test_booleans_false(value):
    assert postgresql_alter_plan({"jit": value}, [row("jit", "off", vartype="bool")]) == []
    assert keys(postgresql_alter_plan({"jit": value}, [row("jit", "on", vartype="bool")])) == ["jit"]


def test_python_booleans_are_sent_as_on_off():
    assert postgresql_alter_plan({"jit": False}, FRESH) == [{"key": "jit", "value": "off"}]


def test_enums_ignore_case_strings_do_not():
    assert postgresql_alter_plan({"wal_compression": "OFF"}, FRESH) == []
    assert keys(postgresql_alter_plan({"wal_compression": "lz4"}, FRESH)) == ["wal_compression"]
    assert postgresql_alter_plan({"listen_addresses": "localhost"}, FRESH) == []
    assert postgresql_alter_plan({"listen_addresses": "'localhost'"}, FRESH) == []
    assert keys(postgresql_alter_plan({"listen_addresses": "LOCALHOST"}, FRESH)) == ["listen_addresses"]


def test_auto_conf_value_wins_over_the_running_one():
    r = row("work_mem", "8192", "kB", auto="8MB")
    assert postgresql_alter_plan({"work_mem": "8192kB"}, [r]) == []
    assert keys(postgresql_alter_plan({"work_mem": "16MB"}, [r])) == ["work_mem"]
    # Back to the default: the running value is equal, but postgresql.auto.conf still says 8MB.
    assert keys(postgresql_alter_plan({"work_mem": "4MB"}, [row("work_mem", "4096", "kB", auto="8MB")])) == ["work_mem"]


def test_restart_pending_value_in_auto_conf():
    """shared_buffers written by ALTER SYSTEM, waiting for a restart: the running value is still the old one."""
    pending = row("shared_buffers", "16384", "8kB", auto="512MB", pending=True)
    assert postgresql_alter_plan({"shared_buffers": "512MB"}, [pending]) == []
    assert postgresql_alter_plan({"shared_buffers": "524288kB"}, [pending]) == []
    assert postgresql_alter_plan({"shared_buffers": "256MB"}, [pending]) == [
        {"key": "shared_buffers", "value": "256MB"}]
    # Equal to the running value but not to the pending one: sent, or the restart would bring 512MB.
    assert keys(postgresql_alter_plan({"shared_buffers": "128MB"}, [pending])) == ["shared_buffers"]


def test_restart_pending_from_another_file_is_sent():
    """A restart pending with nothing in postgresql.auto.conf: the running value says nothing about the next one."""
    pending = row("max_connections", "100", pending=True)
    assert keys(postgresql_alter_plan({"max_connections": "100"}, [pending])) == ["max_connections"]
    assert postgresql_alter_plan({"max_connections": "100"}, [row("max_connections", "100", pending="f")]) == []
    assert keys(postgresql_alter_plan({"max_connections": "100"}, [row("max_connections", "100", pending="t")])) == [
        "max_connections"]


def test_unknown_settings_and_no_answer_are_sent():
    assert keys(postgresql_alter_plan({"pg_stat_statements.max": "5000"}, FRESH)) == ["pg_stat_statements.max"]
    assert keys(postgresql_alter_plan({"work_mem": "4MB", "jit": "on"}, [])) == ["work_mem", "jit"]
    assert keys(postgresql_alter_plan({"work_mem": "4MB"}, None)) == ["work_mem"]


def test_names_ignore_case():
    assert postgresql_alter_plan({"Work_Mem": "4MB"}, FRESH) == []


def test_rejects_a_non_dict():
    with pytest.raises(TypeError):
        postgresql_alter_plan([("work_mem", "4MB")], FRESH)


# --- databases (objects.yml): what postgresql_db would change ------------------------------------------------------

def db(name, **kw):
    return {"name": name, "state": "present", "owner": "postgres", "encoding": "UTF8", "lc_collate": "",
            "lc_ctype": "", "extensions": [], **kw}


PG_DATABASE = [
    {"name": "app", "owner": "app", "encoding": "UTF8", "datcollate": "C.UTF-8", "datctype": "C.UTF-8"},
    {"name": "old", "owner": "postgres", "encoding": "UTF8", "datcollate": "C.UTF-8", "datctype": "C.UTF-8"},
]


def test_databases_in_place_are_left_out():
    wanted = [db("app", owner="app"), db("app", owner="app", encoding="utf8", lc_collate="C.UTF-8", lc_ctype="C.UTF-8")]
    assert postgresql_databases_to_apply(wanted, PG_DATABASE) == []


def test_databases_to_create_change_or_drop():
    wanted = [db("new"), db("app", owner="other"), db("app", owner="app", encoding="LATIN1"),
              db("app", owner="app", lc_collate="de_DE.UTF-8"), db("app", owner="app", lc_ctype="de_DE.UTF-8"),
              db("old", state="absent"), db("gone", state="absent")]
    assert postgresql_databases_to_apply(wanted, PG_DATABASE) == wanted[:6]


def test_databases_not_read_are_all_applied():
    wanted = [db("app", owner="app")]
    assert postgresql_databases_to_apply(wanted, None) == wanted
    assert postgresql_databases_to_apply(wanted, []) == wanted
