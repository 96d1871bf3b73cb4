"""The rehearsal overlays (tests/rehearsal/<env>.yml) change only what cannot exist on this machine."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("overlay_check", ROOT / "tests/rehearsal/overlay_check.py")
overlay_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(overlay_check)


@pytest.mark.parametrize("env", ["dev", "staging", "production"])
def test_each_example_has_an_overlay_within_the_allowed_list(env):
    overlay = yaml.safe_load((ROOT / f"tests/rehearsal/{env}.yml").read_text())
    assert overlay_check.problems(overlay, overlay_check.allowed_names()) == []
    example_hosts = yaml.safe_load((ROOT / f"inventories/example/{env}/hosts.yml").read_text())
    names = set()

    def walk(group):
        names.update((group or {}).get("hosts") or {})
        for child in ((group or {}).get("children") or {}).values():
            walk(child)

    walk(example_hosts["all"])
    assert set(overlay["all"]["hosts"]) == names, "the overlay names exactly the example's hosts"


def test_a_variable_outside_the_list_is_named():
    overlay = {"all": {"hosts": {"web1": {"ansible_connection": "x", "redis_bind": ["0.0.0.0"]}},
                       "vars": {"postgresql_ha_mode": "none"}}}
    found = overlay_check.problems(overlay, overlay_check.allowed_names())
    assert any("web1: redis_bind is not allowed" in line for line in found)
    assert any("all.vars.postgresql_ha_mode is not allowed" in line for line in found)


def test_a_group_in_the_overlay_is_refused():
    found = overlay_check.problems({"all": {"children": {"web": {"hosts": {"x": {}}}}}}, {"ansible_connection"})
    assert found and "no groups" in found[0]
    assert overlay_check.problems({"web": {}}, set())


def test_the_command_line_fails_naming_the_variable(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts:\n    h1: {common_firewall_enabled: false}\n")
    assert overlay_check.main(["overlay_check.py", str(bad)]) == 1
    assert "h1: common_firewall_enabled is not allowed" in capsys.readouterr().err


_drills_spec = importlib.util.spec_from_file_location("drills", ROOT / "tests/rehearsal/drills.py")
drills = importlib.util.module_from_spec(_drills_spec)
_drills_spec.loader.exec_module(drills)


def test_the_status_screen_is_read_from_a_playbook_log():
    screen = 'opsforge status at 2026-12-05T06:30:00Z: all good\n\npostgres (patroni): leader db1 "quoted"'
    log = "\n".join([
        "TASK [opsforge.stack.status : Put every host's report together] ***",
        "ok: [localhost]",
        "TASK [opsforge.stack.status : Show the status] ***",
        "ok: [localhost] => {",
        '    "msg": ' + json.dumps(screen),
        "}",
        "TASK [Hand the status to AWX workflows] ***",
        '    "msg": "not this one"',
    ])
    assert drills.screen_lines(log) == ["opsforge status at 2026-12-05T06:30:00Z: all good", "",
                                        'postgres (patroni): leader db1 "quoted"']
    assert drills.screen_lines("TASK [other] ***\n") == []


def test_alert_events_name_each_alert_of_each_notification():
    jsonl = "\n".join([
        '{"received": 10.0, "path": "/opsforge", "payload": {"status": "firing", "alerts": ['
        '{"status": "firing", "labels": {"alertname": "InstanceDown", "instance": "db1.production.example.com"}},'
        '{"status": "firing", "labels": {"alertname": "SiteDown", "instance": "https://www.example.com/healthz/"}}]}}',
        '{"received": 20.0, "path": "/opsforge", "payload": {"status": "resolved", "alerts": ['
        '{"status": "resolved", "labels": {"alertname": "InstanceDown", "instance": "db1.production.example.com"}}]}}',
    ])
    events = drills.alert_events(jsonl)
    assert [(e[0], e[1], e[2]) for e in events] == [(10.0, "firing", "InstanceDown"), (10.0, "firing", "SiteDown"),
                                                    (20.0, "resolved", "InstanceDown")]
    assert "db1.production.example.com" in events[0][3]
    assert drills.alert_events("") == []
