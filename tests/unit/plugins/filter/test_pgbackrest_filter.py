"""The pgbackrest_patroni_config filter: the commands Patroni runs, its defaults, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.opsforge.stack.plugins.filter.pgbackrest import FilterModule, pgbackrest_patroni_config

ROOT = Path(__file__).resolve().parents[4]


def test_defaults_give_the_commands_patroni_runs():
    c = pgbackrest_patroni_config()
    assert c["dcs"]["parameters"] == {
        "archive_mode": "on",
        "archive_command": "pgbackrest --stanza=main archive-push %p",
        "archive_timeout": "60s",
    }
    assert c["dcs"]["recovery_conf"] == {"restore_command": 'pgbackrest --stanza=main archive-get %f "%p"'}
    assert c["local"]["create_replica_methods"] == ["pgbackrest", "basebackup"]
    assert c["local"]["pgbackrest"] == {
        "command": "/usr/bin/pgbackrest --stanza=main --delta restore", "keep_data": True, "no_params": True,
    }
    assert c["local"]["basebackup"] == {"checkpoint": "fast"}


def test_stanza_timeout_and_methods_are_used():
    c = pgbackrest_patroni_config("prod", archive_timeout="30", create_replica_methods=["basebackup"])
    assert c["dcs"]["parameters"]["archive_command"] == "pgbackrest --stanza=prod archive-push %p"
    assert c["dcs"]["parameters"]["archive_timeout"] == "30s"
    assert c["local"] == {"create_replica_methods": ["basebackup"], "basebackup": {"checkpoint": "fast"}}


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"stanza": "a b"}, "pgbackrest_stanza"),
        ({"stanza": ""}, "pgbackrest_stanza"),
        ({"archive_timeout": 0}, "pgbackrest_archive_timeout"),
        ({"archive_timeout": "soon"}, "pgbackrest_archive_timeout"),
        ({"create_replica_methods": []}, "pgbackrest_patroni_create_replica_methods"),
        ({"create_replica_methods": ["wal-g"]}, "pgbackrest_patroni_create_replica_methods"),
    ],
)
def test_bad_input_names_the_variable(kwargs, variable):
    with pytest.raises(ValueError, match=variable):
        pgbackrest_patroni_config(**kwargs)


def test_defaults_equal_the_pgbackrest_roles_defaults():
    defaults = yaml.safe_load((ROOT / "roles/pgbackrest/defaults/main.yml").read_text())
    c = pgbackrest_patroni_config()
    assert defaults["pgbackrest_stanza"] == "main"
    assert c["dcs"]["parameters"]["archive_timeout"] == f"{defaults['pgbackrest_archive_timeout']}s"
    assert c["local"]["create_replica_methods"] == defaults["pgbackrest_patroni_create_replica_methods"]


def test_registered_under_its_name():
    assert FilterModule().filters()["pgbackrest_patroni_config"] is pgbackrest_patroni_config
