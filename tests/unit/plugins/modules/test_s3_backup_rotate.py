"""The module as Ansible runs it: ``ansible localhost -m opsforge.stack.s3_backup_rotate`` against the
moto server of conftest.py, in check mode with diff, for real, and with a setting that must fail."""

from __future__ import annotations

import datetime as dt
import json
import os
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
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON from ansible: {proc.stdout}\n{proc.stderr}")
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture
def bucket(s3):
    client, name = s3
    start = dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC)
    for day in range(300):
        stamp = (start + dt.timedelta(days=day)).strftime("%Y%m%dT%H%M%SZ")
        client.put_object(Bucket=name, Key=f"pg/db1/app/{stamp}.dump", Body=b"x")
    client.put_object(Bucket=name, Key="pg/notes.txt", Body=b"x")
    return client, name


def _args(endpoint, name, **extra):
    return dict(bucket=name, prefix="pg", endpoint_url=endpoint, region="us-east-1", access_key="test",
                secret_key="test", addressing_style="path", **extra)


def test_check_mode_with_diff_then_for_real(moto_endpoint, bucket):
    client, name = bucket
    planned = run_module(_args(moto_endpoint, name), "--check", "--diff")
    assert planned["changed"] is True
    assert planned["kept_count"] == 11 and planned["deleted_count"] == 289 and planned["unparsed"] == ["pg/notes.txt"]
    assert planned["requests"] == {"list": 1, "delete": 0, "minimum": 2, "http": 1}
    assert planned["diff"]["after"].count("\n") == 11 and planned["diff"]["before"].count("\n") == 300
    assert client.list_objects_v2(Bucket=name)["KeyCount"] == 301, "check mode deleted something"

    done = run_module(_args(moto_endpoint, name))
    assert done["changed"] is True and sorted(done["deleted"]) == sorted(planned["deleted"])
    assert done["requests"] == {"list": 1, "delete": 1, "minimum": 2, "http": 2}
    assert client.list_objects_v2(Bucket=name)["KeyCount"] == 12

    again = run_module(_args(moto_endpoint, name, return_keys=False))
    assert again["changed"] is False and again["kept"] == [] and again["kept_count"] == 11


def test_bad_settings_fail_with_a_clear_message(moto_endpoint, bucket):
    _client, name = bucket
    bad = run_module(_args(moto_endpoint, name, key_pattern="(?P<db>.*)"))
    assert bad["failed"] and "named group (?P<ts>" in bad["msg"]
    missing = run_module(_args(moto_endpoint, "no-such-bucket-x"))
    assert missing["failed"] and "NoSuchBucket" in missing["msg"] and "refusing to rotate" in missing["msg"]
    assert '"test"' not in json.dumps(missing.get("invocation", {})), "a secret leaked into the result"
