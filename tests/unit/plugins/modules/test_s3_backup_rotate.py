"""The module as Ansible runs it: ``ansible localhost -m opsforge.stack.s3_backup_rotate`` against the
moto server of conftest.py, in check mode with diff, for real, and with a setting that must fail."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
ANSIBLE = Path(sys.executable).parent / "ansible"


def run_module(args: dict, *flags: str) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.json",
               ANSIBLE_FACT_CACHING="memory")
    proc = subprocess.run(
        [str(ANSIBLE), "localhost", "-c", "local", "-i", "localhost,", "-e",
         f"ansible_python_interpreter={sys.executable}", "-m", "opsforge.stack.s3_backup_rotate",
         "-a", json.dumps(args), *flags],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )
    start = re.search(r"^\{$", proc.stdout, flags=re.MULTILINE)  # the json callback's document (-vvv prints before it)
    try:
        out = json.loads(proc.stdout[start.start() if start else 0:])
    except json.JSONDecodeError:
        pytest.fail(f"no JSON from ansible: {proc.stdout}\n{proc.stderr}")
    result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_raw_output"] = proc.stdout + proc.stderr  # what a user sees, -vvv included when asked for
    return result


@pytest.fixture
def bucket(s3):
    client, name = s3
    start = dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC)
    for day in range(300):
        stamp = (start + dt.timedelta(days=day)).strftime("%Y%m%dT%H%M%SZ")
        client.put_object(Bucket=name, Key=f"pg/db1/app/{stamp}.dump", Body=b"x")
    client.put_object(Bucket=name, Key="pg/notes.txt", Body=b"x")
    return client, name


SECRET = "opsforge-unit-secret-7f3a"  # moto takes any secret; a distinctive one can be searched for


def _args(endpoint, name, **extra):
    return dict(bucket=name, prefix="pg", endpoint_url=endpoint, region="us-east-1", access_key="test",
                secret_key=SECRET, addressing_style="path", **extra)


def test_check_mode_with_diff_then_for_real(moto_endpoint, bucket):
    client, name = bucket
    planned = run_module(_args(moto_endpoint, name), "--check", "--diff")
    assert planned["changed"] is True
    assert planned["kept_count"] == 11 and planned["deleted_count"] == 289 and planned["unparsed"] == ["pg/notes.txt"]
    assert planned["requests"] == {"list": 1, "delete": 0, "minimum": 2, "http": 1}
    assert planned["diff"]["after"].count("\n") == 11 and planned["diff"]["before"].count("\n") == 300
    assert client.list_objects_v2(Bucket=name)["KeyCount"] == 301, "check mode deleted something"

    done = run_module(_args(moto_endpoint, name), "-vvv")
    assert done["changed"] is True and sorted(done["deleted"]) == sorted(planned["deleted"])
    # The module was given the secret and used it; nothing it returns or prints (-vvv) holds it.
    assert SECRET not in done["_raw_output"], "the secret key leaked into the output"
    assert done["requests"] == {"list": 1, "delete": 1, "minimum": 2, "http": 2}
    assert client.list_objects_v2(Bucket=name)["KeyCount"] == 12

    again = run_module(_args(moto_endpoint, name, return_keys=False))
    assert again["changed"] is False and again["kept"] == [] and again["kept_count"] == 11


def test_bad_settings_fail_with_a_clear_message(moto_endpoint, bucket):
    _client, name = bucket
    bad = run_module(_args(moto_endpoint, name, key_pattern="(?P<db>.*)"))
    assert bad["failed"] and "named group (?P<ts>" in bad["msg"]
    missing = run_module(_args(moto_endpoint, "no-such-bucket-x"), "-vvv")
    assert missing["failed"] and "NoSuchBucket" in missing["msg"] and "refusing to rotate" in missing["msg"]
    # The module ran with the secret (it reached the bucket); neither its result nor -vvv output shows it.
    assert "opsforge.stack.s3_backup_rotate" in missing["_raw_output"]
    assert SECRET not in missing["_raw_output"], "the secret key leaked into the output"


def test_credentials_are_no_log_parameters():
    """Ansible masks a parameter's value wherever it would print it only when the spec says no_log."""
    from ansible_collections.opsforge.stack.plugins.modules import s3_backup_rotate  # noqa: PLC0415

    spec = s3_backup_rotate._argument_spec()
    assert [name for name in ("access_key", "secret_key", "session_token") if name in spec and
            spec[name].get("no_log") is not True] == []
    assert spec["secret_key"]["no_log"] is True
