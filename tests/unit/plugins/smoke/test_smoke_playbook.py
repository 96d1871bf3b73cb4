"""playbooks/smoke.yml derives the checks from the roles' variables and reports them with set_stats.

Runs the real playbook with ansible-playbook against one host on a local connection whose inventory
configures the nginx, postgresql and redis roles' variables to point at this suite's real local servers.
The systemd play is skipped (tag `systemd`): the controller is not a systemd host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PG_PASSWORD, REDIS_PASSWORD

ROOT = Path(__file__).resolve().parents[4]


def _inventory(tmp_path: Path, web, pki, postgres, redis, tcp_port, **overrides) -> Path:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "nginx_sites": [
            {"name": "tls-site", "server_names": ["www.example.test"], "redirect_http": False},
            {"name": "plain-site", "server_names": ["localhost"], "tls": False},
        ],
        "smoke_https_port": web.https_port,
        "smoke_http_port": int(web.http.rsplit(":", 1)[1]),
        "smoke_http_path": "/ok",
        "smoke_ca_path": str(pki.ca),
        "smoke_retries": 0,
        "postgresql_port": postgres.port,
        "postgresql_users": [{"name": "nopass"}, {"name": "postgres", "password": PG_PASSWORD}],
        "postgresql_databases": [{"name": "postgres", "owner": "postgres"}],
        "redis_port": redis.port,
        "redis_password": REDIS_PASSWORD,
        "smoke_extra_checks": [{"name": "raw listener", "type": "tcp", "host": "127.0.0.1", "port": tcp_port}],
        **overrides,
    }
    inventory = {"all": {"children": {group: {"hosts": {"smokehost": host if group == "web" else None}}
                                      for group in ("web", "postgres", "redis")}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _play(inventory: Path) -> tuple[int, dict]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_SHOW_CUSTOM_STATS="true", JUNIT_OUTPUT_DIR=str(inventory.parent / "junit"), ANSIBLE_NOCOLOR="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
                           "--skip-tags", "systemd", str(ROOT / "playbooks" / "smoke.yml")],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    start = done.stdout.find("{")
    assert start >= 0, done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout[start:])


@pytest.fixture
def inventory_args(tmp_path, web, pki, postgres, redis, tcp_port):
    return tmp_path, web, pki, postgres, redis, tcp_port


def test_checks_derived_from_role_variables_pass(inventory_args):
    rc, output = _play(_inventory(*inventory_args))
    report = output["global_custom_stats"]["smoke_results"]["smokehost"]
    assert rc == 0, report
    names = [c["name"] for c in report["checks"]]
    redis_port = inventory_args[4].port
    assert names == ["site tls-site over https", "site tls-site certificate", "site plain-site over http",
                     "postgresql postgres@postgres", "redis port %d" % redis_port, "raw listener"]
    assert report["passed"] is True
    assert {c["status"] for c in report["checks"]} == {"passed"}
    assert PG_PASSWORD not in json.dumps(output)
    assert REDIS_PASSWORD not in json.dumps(output)


def test_a_failing_service_fails_the_play_and_is_still_reported(inventory_args):
    rc, output = _play(_inventory(*inventory_args, redis_password="wrong", nginx_sites=[]))
    report = output["global_custom_stats"]["smoke_results"]["smokehost"]
    assert rc != 0
    assert report["passed"] is False
    assert report["failed_checks"] == ["redis port %d" % inventory_args[4].port]
    assert "expected AUTH to succeed" in report["message"]


def test_hosts_without_role_variables_get_no_checks(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"postgres": {"hosts": {"bare": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    rc, output = _play(inventory)
    assert rc == 0
    assert "smoke_results" not in output.get("global_custom_stats", {})
