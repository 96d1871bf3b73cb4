"""The smoke_test module's main(), run the way Ansible's own module tests do (patched args, exit/fail raised).

Also runs the EXAMPLES' checks through the validator, so the documentation cannot go stale.
"""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.opsforge.stack.plugins.module_utils import smoke_probes
from ansible_collections.opsforge.stack.plugins.module_utils.smoke import validate_checks
from ansible_collections.opsforge.stack.plugins.modules import smoke_test
from conftest import PG_PASSWORD, REDIS_PASSWORD


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


@pytest.fixture(autouse=True)
def _module_exits(monkeypatch):
    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        raise AnsibleExitJson(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["failed"] = True
        kwargs["msg"] = msg
        raise AnsibleFailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def run_module(args: dict, check_mode: bool = False):
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    with patch_module_args(args):
        smoke_test.main()


def exits(args: dict, **kwargs) -> dict:
    with pytest.raises(AnsibleExitJson) as info:
        run_module(args, **kwargs)
    return info.value.args[0]


def fails(args: dict, **kwargs) -> dict:
    with pytest.raises(AnsibleFailJson) as info:
        run_module(args, **kwargs)
    return info.value.args[0]


def test_passing_checks(web, tcp_port):
    result = exits({"checks": [
        {"name": "site", "type": "http", "url": web.http + "/ok", "body_contains": ["smoke ok"]},
        {"name": "port", "type": "tcp", "host": "127.0.0.1", "port": tcp_port},
    ]})
    assert result["changed"] is False
    assert [c["status"] for c in result["checks"]] == ["passed", "passed"]
    assert result["summary"] == {"passed": 2, "failed": 0, "skipped": 0, "total": 2}
    assert result["failed_checks"] == []
    assert result["msg"].startswith("2 of 2 smoke checks passed")
    json.dumps(result)  # everything returned is JSON


def test_failure_names_the_checks_with_expected_and_found(web, closed_port):
    result = fails({"checks": [
        {"name": "site", "type": "http", "url": web.http + "/status/502", "retries": 0},
        {"name": "db port", "type": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 0},
        {"name": "optional", "type": "tcp", "host": "127.0.0.1", "port": closed_port, "retries": 0,
         "required": False},
        {"name": "fine", "type": "http", "url": web.http + "/ok"},
    ]})
    assert result["failed_checks"] == ["site", "db port"]
    lines = result["msg"].splitlines()
    assert lines[0] == "2 required smoke check(s) failed: site, db port."
    assert lines[1] == "- site (http, 1 attempt(s)): expected status 200, found status 502"
    assert lines[2].startswith("- db port (tcp, 1 attempt(s)): expected port %d open on 127.0.0.1, found connection "
                               "refused" % closed_port)
    assert "Fix the service" in lines[-1]
    assert [c["status"] for c in result["checks"]] == ["failed", "failed", "failed", "passed"]


def test_only_optional_failures_pass_with_a_warning(closed_port, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    result = exits({"checks": [{"name": "metrics", "type": "tcp", "host": "127.0.0.1", "port": closed_port,
                                "retries": 0, "required": False}]})
    assert result["summary"]["failed"] == 1
    assert result["failed_checks"] == []
    assert warnings and "optional smoke check 'metrics' failed: expected port" in warnings[0]


def test_check_mode_reads_but_skips_writes(web):
    result = exits({"checks": [
        {"name": "read", "type": "http", "url": web.http + "/ok"},
        {"name": "write", "type": "http", "url": web.http + "/post", "method": "POST", "status": [201]},
    ]}, check_mode=True)
    read, write = result["checks"]
    assert read["status"] == "passed"
    assert write["status"] == "skipped"
    assert write["reason"].startswith("check mode:")


@pytest.mark.parametrize(("check", "fragment"), [
    ({"name": "api", "type": "soap"}, "check 'api': unknown check type 'soap'"),
    ({"name": "api", "type": "http", "url": "htp://x"}, "check 'api': invalid URL"),
    ({"name": "api", "type": "http"}, "check 'api': missing required field 'url'"),
    ({"type": "tcp", "host": "h", "port": 1}, "checks[0] (type tcp): missing required field 'name'"),
    ({"name": "api", "type": "http", "url": "http://x/", "json_path": "a[?"}, "check 'api': json_path 'a[?' is not"),
])
def test_bad_input_fails_before_any_check_runs(check, fragment, monkeypatch):
    monkeypatch.setattr(smoke_probes, "PROBES", {})  # any attempt to run a check would crash
    result = fails({"checks": [check]})
    assert result["msg"].startswith("Invalid smoke checks, nothing was run: ")
    assert fragment in result["msg"]
    assert "checks" not in result


def test_unsupported_field_is_refused_by_ansible():
    result = fails({"checks": [{"name": "a", "type": "tcp", "host": "h", "port": 1, "prot": 2}]})
    assert "prot" in result["msg"]


def test_missing_psycopg2_uses_missing_required_lib(monkeypatch):
    monkeypatch.setattr(smoke_probes, "HAS_PSYCOPG2", False)
    monkeypatch.setattr(smoke_probes, "PSYCOPG2_IMPORT_ERROR", ImportError("No module named 'psycopg2'"))
    result = fails({"checks": [{"name": "db", "type": "postgres"}]})
    assert "Failed to import the required Python library (psycopg2)" in result["msg"]
    assert "This is required for the checks db." in result["msg"]
    assert "No module named 'psycopg2'" in result["exception"]


def test_deadline_must_be_positive():
    result = fails({"checks": [{"name": "a", "type": "tcp", "host": "h", "port": 1}], "deadline": 0})
    assert result["msg"] == "deadline must be more than 0 seconds, got 0.0"


def test_passwords_never_come_back(postgres, redis):
    result = exits({"checks": [
        {"name": "db", "type": "postgres", "host": "127.0.0.1", "port": postgres.port, "password": PG_PASSWORD,
         "sslmode": "disable", "expect_role": "primary"},
        {"name": "cache", "type": "redis", "host": "127.0.0.1", "port": redis.port, "password": REDIS_PASSWORD},
    ]})
    text = json.dumps(result)
    assert PG_PASSWORD not in text
    assert REDIS_PASSWORD not in text
    assert result["checks"][0]["details"]["role"] == "primary"
    assert result["checks"][1]["details"]["role"] == "master"


def test_argument_spec_marks_passwords_no_log():
    options = smoke_test._argument_spec()["checks"]["options"]
    assert options["password"]["no_log"] is True
    assert options["status"] == {"type": "list", "elements": "int"}
    assert options["retries"]["default"] == 2
    assert "default" not in options["port"], "type-specific defaults are applied by validate_checks"


def test_documented_options_match_the_argument_spec():
    documented = yaml.safe_load(smoke_test.DOCUMENTATION)["options"]["checks"]["suboptions"]
    assert set(documented) == set(smoke_test._argument_spec()["checks"]["options"])


def test_examples_are_valid_checks():
    tasks = yaml.safe_load(smoke_test.EXAMPLES)
    runs = [t["opsforge.stack.smoke_test"] for t in tasks if "opsforge.stack.smoke_test" in t]
    assert len(runs) == 2
    for args in runs:
        assert validate_checks(args["checks"])
