"""The example inventories (inventories/example) stay true to the roles and to their README.

- every variable their group_vars set is part of some role's interface (meta/argument_specs.yml) and has
  the type that role declares; the exceptions are named: vault_* secrets, ansible_* connection settings and
  variables the playbooks read themselves (e.g. opsforge_environment);
- each environment's vault.yml decrypts with the documented TEST password and defines every vault_* secret
  its group_vars refer to;
- the environments differ as README.md and inventories/example/README.md say (topology, HA, ACME directory,
  backup schedule), read through ansible-inventory exactly as a run would see them;
- every group a playbook targets when run without -e (play `hosts:`, the defaults of `{{ var | default('group') }}`
  patterns, `groups[var | default('group')]`) has hosts in every environment, and the example sites' upstreams
  derive from the application group the way playbooks/deploy.yml drains them;
- the AWS dynamic inventory builds the same groups as the static ones.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.vault import VaultLib, VaultSecret

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "inventories" / "example"
ENVIRONMENTS = ["dev", "staging", "production"]
PASSWORD_FILE = EXAMPLES / "vault-password-example.txt"
STACK_GROUPS = {"web", "app", "docker", "postgres", "redis", "backup", "monitoring"}
# Groups an environment leaves empty on purpose (their plays match no host there): dev has no monitoring host.
EMPTY_ON_PURPOSE = {"dev": {"monitoring"}}
# Default patterns that exist to match nothing until a variable is given (restore.yml needs -e restore_host).
PLACEHOLDER_PATTERNS = {"restore_host_is_required"}
LE_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LE_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def _role_options() -> dict[str, tuple[str, dict]]:
    options = {}
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        spec = yaml.safe_load(spec_file.read_text())
        for name, option in spec["argument_specs"]["main"].get("options", {}).items():
            options[name] = (spec_file.parts[-3], option)
    return options


def _playbook_variables() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "playbooks").glob("*.yml"))
    return set(re.findall(r"\b([a-z][a-z0-9_]+)\b", text))


def _plain_group_vars(env: str) -> list[tuple[Path, dict]]:
    files = []
    for path in sorted((EXAMPLES / env / "group_vars").rglob("*.yml")):
        if path.read_text().startswith("$ANSIBLE_VAULT"):
            continue
        files.append((path, yaml.safe_load(path.read_text()) or {}))
    return files


def _decrypt(path: Path) -> dict:
    secret = VaultSecret(PASSWORD_FILE.read_text().strip().encode())
    return yaml.safe_load(VaultLib([("default", secret)]).decrypt(path.read_text()))


def _templated(value) -> bool:
    return "{{" in json.dumps(value)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_group_var_is_a_role_variable(env):
    options = _role_options()
    playbook_vars = _playbook_variables()
    problems = []
    for path, data in _plain_group_vars(env):
        for name, value in data.items():
            where = f"{path.relative_to(ROOT)}: {name}"
            if name.startswith(("vault_", "ansible_")):
                continue
            if name not in options:
                if name not in playbook_vars:
                    problems.append(f"{where} is no role's variable (meta/argument_specs.yml) nor a playbook's")
                continue
            role, option = options[name]
            if _templated(value):
                continue  # a secret reference: its type shows only once templated
            result = ArgumentSpecValidator({name: option}).validate({name: value})
            if result.error_messages:
                problems.append(f"{where} does not fit role {role}'s spec: {result.error_messages}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_vault_decrypts_with_the_test_password_and_has_every_secret(env):
    vault = EXAMPLES / env / "group_vars" / "all" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256"), f"{vault} must be encrypted"
    secrets = _decrypt(vault)
    assert secrets and all(name.startswith("vault_") for name in secrets)
    referenced = set()
    for _, data in _plain_group_vars(env):
        referenced |= set(re.findall(r"\bvault_[a-z0-9_]+", json.dumps(data)))
    missing = referenced - set(secrets)
    assert not missing, f"{env}: vault.yml lacks {sorted(missing)}"
    assert all(env in str(value) for value in secrets.values()), "each environment has its own secrets"


def test_the_password_file_says_it_is_a_test_password():
    assert "TEST" in PASSWORD_FILE.read_text()
    assert "TEST password" in (EXAMPLES / "README.md").read_text()


def _inventory(env: str) -> dict:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(EXAMPLES / env / "hosts.yml"),
         "--vault-password-file", str(PASSWORD_FILE), "--list"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def _hosts(inv: dict, group: str) -> list[str]:
    return inv.get(group, {}).get("hosts", [])


def _all_hosts(inv: dict, group: str) -> set[str]:
    """A group's hosts, its children's included (as a play targeting the group would run on them)."""
    hosts = set(_hosts(inv, group))
    for child in inv.get(group, {}).get("children", []):
        hosts |= _all_hosts(inv, child)
    return hosts


def _default_target_groups() -> dict[str, set[str]]:
    """Group -> playbooks that target it when run without -e."""
    targets: dict[str, set[str]] = {}
    paths = sorted((ROOT / "playbooks").glob("*.yml"))
    for path in paths:
        patterns, texts = [], [path.read_text()]
        for play in yaml.safe_load(path.read_text()) or []:
            texts += [(path.parent / f).read_text() for f in play.get("vars_files", []) if (path.parent / f).exists()]
            hosts = play.get("hosts")
            if hosts is None:
                continue  # import_playbook
            hosts = str(hosts)
            if "{{" in hosts:
                match = re.fullmatch(r"\{\{\s*\w+\s*\|\s*default\('([^']+)'\)\s*\}\}(.*)", hosts)
                if not match:
                    continue  # computed during the run (e.g. deploy.yml's failed hosts)
                hosts = match.group(1) + match.group(2)
            patterns.append(hosts)
        for text in texts:  # groups[deploy_web_group | default('web')] in the playbook or its vars_files
            patterns += re.findall(r"groups\[\s*\w+\s*\|\s*default\('([\w-]+)'\)\s*\]", text)
        for pattern in patterns:
            for part in re.split(r"[,:]", pattern):
                group = re.sub(r"\[[^]]*\]$", "", part.strip().lstrip("!&"))
                if group and group not in ("all", "localhost") and group not in PLACEHOLDER_PATTERNS:
                    targets.setdefault(group, set()).add(path.name)
    return targets


@pytest.fixture(scope="module")
def inventories():
    return {env: _inventory(env) for env in ENVIRONMENTS}


def test_topologies(inventories):
    dev, staging, production = (inventories[e] for e in ENVIRONMENTS)
    dev_hosts = set(dev["_meta"]["hostvars"])
    assert len(dev_hosts) == 1, "dev: one host runs every group"
    assert all(_all_hosts(dev, g) == dev_hosts for g in STACK_GROUPS - EMPTY_ON_PURPOSE["dev"])
    assert len(_hosts(staging, "web")) == 1 and len(_hosts(staging, "postgres")) == 1
    assert _all_hosts(staging, "app") == set(_hosts(staging, "web")), "staging: the web host runs the application"
    assert len(_hosts(production, "web")) >= 2
    assert _all_hosts(production, "app") == set(_hosts(production, "web")), "production: the web hosts run the app"
    assert len(_hosts(production, "postgres")) == 3 and len(_hosts(production, "redis")) == 3
    for inv in inventories.values():
        assert _all_hosts(inv, "app") <= _all_hosts(inv, "docker"), "Docker (site.yml) on every application host"


def test_the_default_target_groups_are_found():
    targets = _default_target_groups()
    assert {"app", "web", "backup", "postgres", "redis", "docker", "monitoring"} <= set(targets)
    assert "deploy.yml" in targets["app"] and "deploy.yml" in targets["web"] and "backup.yml" in targets["backup"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_group_a_playbook_targets_has_hosts(env, inventories):
    """playbooks/deploy.yml (AWX "opsforge app deploy") and the others run against these inventories unchanged."""
    inv = inventories[env]
    empty = {group: sorted(playbooks) for group, playbooks in _default_target_groups().items()
             if not _all_hosts(inv, group) and group not in EMPTY_ON_PURPOSE.get(env, set())}
    assert not empty, f"{env}: groups without hosts that playbooks target by default: {empty}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_site_upstreams_derive_from_the_application_group(env, inventories):
    """nginx derives one backend per app host (its ansible_host, else its name) on upstream.port; deploy.yml
    drains exactly those names, so the app must listen there, not on loopback only."""
    inv = inventories[env]
    for web in _hosts(inv, "web"):
        hostvars = inv["_meta"]["hostvars"][web]
        for site in hostvars.get("nginx_sites", []):
            upstream = site.get("upstream")
            if not upstream:
                continue
            assert upstream.get("group") == "app" and not upstream.get("servers"), f"{env}: {site['name']}: {upstream}"
            assert _all_hosts(inv, upstream["group"]), f"{env}: {site['name']}: upstream group without hosts"
            for app in _all_hosts(inv, "app"):
                bind = inv["_meta"]["hostvars"][app].get("app_web_bind", "127.0.0.1:8000")
                address, port = bind.rsplit(":", 1)
                assert int(port) == upstream["port"], f"{env}: {app} publishes {bind}, upstream port {upstream['port']}"
                assert not address.startswith("127."), f"{env}: {app} publishes on loopback, nginx cannot reach it"


def test_ha_acme_and_backups_differ_as_documented(inventories):
    seen = {}
    for env, inv in inventories.items():
        db = inv["_meta"]["hostvars"][_hosts(inv, "postgres")[0]]
        web = inv["_meta"]["hostvars"][_hosts(inv, "web")[0]]
        seen[env] = (
            db["postgresql_ha_mode"], db["redis_sentinel_enabled"], web["letsencrypt_acme_directory"],
            bool(db["pgbackrest_schedule_diff"]), bool(db["pgbackrest_schedule_incr"]),
        )
        assert db["opsforge_environment"] == env
        assert db["vault_redis_password"].endswith(env), "the vault is decrypted and read"
    assert seen["dev"] == ("none", False, LE_STAGING, False, False)
    assert seen["staging"] == ("none", False, LE_STAGING, True, False)
    assert seen["production"] == ("patroni", True, LE_PRODUCTION, True, True)


def test_ssh_is_narrowed_outside_dev(inventories):
    nets = {e: inv["_meta"]["hostvars"][_hosts(inv, "web")[0]]["common_firewall_admin_networks"]
            for e, inv in inventories.items()}
    assert "0.0.0.0/0" in nets["dev"]
    assert "0.0.0.0/0" not in nets["staging"] and "0.0.0.0/0" not in nets["production"]


def test_secret_store_lookups_are_shown():
    text = (EXAMPLES / "production" / "group_vars" / "all" / "main.yml").read_text()
    assert "amazon.aws.secretsmanager_secret" in text and "community.hashi_vault.vault_kv2_get" in text


def test_aws_inventory_builds_the_static_groups():
    config = yaml.safe_load((EXAMPLES / "aws_ec2.yml").read_text())
    assert config["plugin"] == "amazon.aws.aws_ec2"
    static_groups = set()
    for env in ENVIRONMENTS:
        static_groups |= set(yaml.safe_load((EXAMPLES / env / "hosts.yml").read_text())["all"]["children"])
    assert set(config["groups"]) == static_groups == STACK_GROUPS
    for group, condition in config["groups"].items():
        assert f"'{group}'" in condition and "opsforge_groups" in condition


def test_aws_inventory_against_a_moto_ec2(tmp_path):
    """The aws_ec2 example, unchanged but for the endpoint, against moto's EC2: tags become the groups."""
    if os.environ.get("CI") == "true":  # in CI a missing boto3 or moto is a failure, not a skip
        import boto3  # noqa: PLC0415
        import moto.server as moto_server  # noqa: PLC0415
    else:
        boto3 = pytest.importorskip("boto3")
        moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        ec2 = boto3.client("ec2", region_name="eu-central-1", endpoint_url=endpoint, **creds)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

        def launch(tags):
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])

        launch({"Name": "db1", "opsforge_groups": "postgres,redis,backup", "opsforge_environment": "production"})
        launch({"Name": "web1", "opsforge_groups": "web", "opsforge_environment": "production"})
        launch({"Name": "stray"})  # not part of the stack: filtered out
        config = yaml.safe_load((EXAMPLES / "aws_ec2.yml").read_text())
        config.update(endpoint_url=endpoint, access_key="testing", secret_key="testing")
        path = tmp_path / "test.aws_ec2.yml"
        path.write_text(yaml.safe_dump(config))
        out = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(path), "--list"],
            cwd=tmp_path, check=True, capture_output=True, text=True,
            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
                 "AWS_EC2_METADATA_DISABLED": "true"},
        ).stdout
    finally:
        server.stop()
    inv = json.loads(out)
    assert set(inv["_meta"]["hostvars"]) == {"db1", "web1"}
    assert _hosts(inv, "postgres") == ["db1"] and _hosts(inv, "redis") == ["db1"] and _hosts(inv, "backup") == ["db1"]
    assert _hosts(inv, "web") == ["web1"]
    assert sorted(_hosts(inv, "env_production")) == ["db1", "web1"]
    db1 = inv["_meta"]["hostvars"]["db1"]
    unsafe = lambda v: v.get("__ansible_unsafe", v) if isinstance(v, dict) else v  # noqa: E731 values from AWS are marked unsafe
    assert unsafe(db1["ansible_host"]) == unsafe(db1["private_ip_address"])
    assert unsafe(db1["opsforge_environment"]) == "production"
