"""The nginx_site_endpoints filter: one reading of the endpoints of nginx_sites, and its consumers.

The pure function is tested directly (defaults equal to the nginx role's argument spec, upstreams, ports,
bad input); the prometheus role's probe URLs are rendered by a real ansible-playbook run, so the role's use
of the filter is tested too: a site that leaves ``tls`` at the nginx role's default (true) is probed over
https (the role read a ``letsencrypt`` key nginx_sites does not have and probed such a site over http).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / ".collections") not in sys.path:
    sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.opsforge.stack.plugins.filter.nginx_sites import (
    FilterModule,
    nginx_site_endpoints,
)

SITE_OPTIONS = yaml.safe_load((ROOT / "roles/nginx/meta/argument_specs.yml").read_text())[
    "argument_specs"]["main"]["options"]["nginx_sites"]["options"]


def _one(site, **kwargs):
    [endpoint] = nginx_site_endpoints([site], **kwargs)
    return endpoint


def test_a_site_that_leaves_tls_at_the_default_is_https():
    e = _one({"name": "app", "server_names": ["www.example.com", "example.com"]})
    assert e["tls"] is True
    assert e["scheme"] == "https"
    assert e["port"] == 443
    assert e["ports"] == [80, 443]
    assert e["url"] == "https://www.example.com/"
    assert e["http_url"] == "http://www.example.com/"
    assert e["redirect_http"] is True
    assert e["acme"] is True
    assert e["server_name"] == "www.example.com"
    assert e["server_names"] == ["www.example.com", "example.com"]
    assert e["health_path"] == "/"
    assert e["upstream"] is None


def test_a_plain_http_site():
    e = _one({"name": "plain", "server_names": ["intranet.example"], "tls": False, "redirect_http": True})
    assert (e["scheme"], e["port"], e["ports"], e["url"]) == ("http", 80, [80], "http://intranet.example/")
    assert e["redirect_http"] is False  # nothing to redirect to
    assert e["acme"] is False


@pytest.mark.parametrize(("site", "acme"), [
    ({"acme": False}, False),
    ({"certificate": "/etc/ssl/own.pem"}, False),  # the user brings the certificate
    ({"redirect_http": False}, True),
])
def test_acme_follows_the_letsencrypt_roles_reading(site, acme):
    assert _one({"name": "s", "server_names": ["a.example"], **site})["acme"] is acme


def test_the_letsencrypt_key_of_old_inventories_means_nothing():
    # nginx_sites has no `letsencrypt` key: only `tls` decides the scheme.
    assert _one({"name": "s", "server_names": ["a.example"], "letsencrypt": False})["scheme"] == "https"


def test_ports_and_health_path_build_the_urls():
    e = _one({"name": "s", "server_names": ["a.example"]}, http_port=8080, https_port=8443, health_path="healthz")
    assert (e["url"], e["http_url"], e["port"], e["ports"]) == (
        "https://a.example:8443/healthz", "http://a.example:8080/healthz", 8443, [8080, 8443])


def test_upstream_servers_and_group():
    site = {"name": "app", "server_names": ["a.example"],
            "upstream": {"servers": [{"address": "127.0.0.1:8000"}], "group": "app", "port": 8000}}
    groups = {"app": ["app1", "app2"]}
    hostvars = {"app1": {"ansible_host": "10.0.0.11"}, "app2": {}}
    e = _one(site, groups=groups, hostvars=hostvars)
    assert e["upstream"] == {"group": "app", "port": 8000, "hosts": ["app1", "app2"],
                             "servers": ["127.0.0.1:8000", "10.0.0.11:8000", "app2:8000"]}
    # Without the inventory only the written servers are known.
    assert _one(site)["upstream"] == {"group": "app", "port": 8000, "hosts": [], "servers": ["127.0.0.1:8000"]}


def test_a_root_site_has_no_upstream():
    assert _one({"name": "s", "server_names": ["a.example"], "root": "/srv/www"})["upstream"] is None


def test_every_site_in_order():
    names = [e["name"] for e in nginx_site_endpoints([
        {"name": "b", "server_names": ["b.example"]}, {"name": "a", "server_names": ["a.example"], "tls": False}])]
    assert names == ["b", "a"]
    assert nginx_site_endpoints(None) == []


@pytest.mark.parametrize(("sites", "kwargs", "message"), [
    ({"name": "x"}, {}, r"nginx_sites: expected a list"),
    (["x"], {}, r"nginx_sites\[0\]: expected a dict"),
    ([{"server_names": ["a.example"]}], {}, r"nginx_sites\[0\]\.name"),
    ([{"name": "s"}], {}, r"nginx_sites\[0\] \(s\)\.server_names"),
    ([{"name": "s", "server_names": []}], {}, r"server_names"),
    ([{"name": "s", "server_names": "a.example"}], {}, r"server_names"),
    ([{"name": "s", "server_names": ["a.example"], "tls": "maybe"}], {}, r"nginx_sites\[0\] \(s\)\.tls"),
    ([{"name": "s", "server_names": ["a.example"], "upstream": {"group": "app"}}], {"groups": {"app": ["h"]}},
     r"upstream\.port"),
    ([{"name": "s", "server_names": ["a.example"]}], {"https_port": "x"}, r"https_port"),
])
def test_bad_input_names_the_variable(sites, kwargs, message):
    with pytest.raises(ValueError, match=message):
        nginx_site_endpoints(sites, **kwargs)


def test_string_booleans_as_yaml_and_ansible_read_them():
    assert _one({"name": "s", "server_names": ["a.example"], "tls": "no"})["scheme"] == "http"
    assert _one({"name": "s", "server_names": ["a.example"], "tls": "yes"})["scheme"] == "https"


def test_defaults_equal_the_nginx_roles_argument_spec():
    e = _one({"name": "s", "server_names": ["a.example"]})
    assert SITE_OPTIONS["tls"]["default"] is e["tls"]
    assert SITE_OPTIONS["redirect_http"]["default"] is e["redirect_http"]
    assert SITE_OPTIONS["acme"]["default"] is e["acme"]


def test_registered_under_its_name():
    assert FilterModule().filters()["nginx_site_endpoints"] is nginx_site_endpoints


# The prometheus role, rendered by ansible-playbook: which URLs does the blackbox exporter probe?
def _probe_urls(tmp_path: Path, web_sites: list, **monitoring_vars) -> list:
    inventory = {"all": {"children": {
        "web": {"hosts": {"web1": {"ansible_connection": "local", "nginx_sites": web_sites}}},
        "monitoring": {"hosts": {"mon1": {"ansible_connection": "local",
                                          "ansible_python_interpreter": sys.executable}}},
    }}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "extra.json").write_text(json.dumps(monitoring_vars))  # -e: above the role's files
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "The prometheus role's probe URLs", "hosts": "monitoring", "gather_facts": False,
        "vars_files": [str(ROOT / "roles/prometheus/defaults/main.yml"), str(ROOT / "roles/prometheus/vars/main.yml")],
        "tasks": [{"name": "Probe URLs", "ansible.builtin.debug": {"var": "__prometheus_probe_urls"}}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                           "-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'extra.json'}",
                           str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=120)
    start = done.stdout.find("{")
    assert start >= 0, done.stdout + done.stderr
    result = json.loads(done.stdout[start:])["plays"][0]["tasks"][0]["hosts"]["mon1"]
    assert done.returncode == 0, result
    return result["__prometheus_probe_urls"]


def test_the_prometheus_role_probes_a_default_tls_site_over_https(tmp_path):
    urls = _probe_urls(tmp_path, [
        {"name": "app", "server_names": ["www.example.test"]},
        {"name": "plain", "server_names": ["plain.example.test"], "tls": False},
    ], prometheus_blackbox_extra_targets=["https://status.example.test/"])
    assert urls == ["https://www.example.test/", "http://plain.example.test/", "https://status.example.test/"]
