"""The example inventories (inventories/example) stay true to the roles and to their README.

- every variable their group_vars set is part of some role's interface (meta/argument_specs.yml) and has
  the type that role declares; the exceptions are named: vault_* secrets, ansible_* connection settings and
  variables the playbooks read themselves (e.g. opsforge_environment);
- each environment's vault.yml decrypts with the documented TEST password and defines every vault_* secret
  its group_vars refer to;
- the environments differ as README.md and inventories/example/README.md say (topology, HA, ACME directory,
  backup schedule), read through ansible-inventory exactly as a run would see them;
- the AWS dynamic inventory builds the same groups as the static ones.
"""

from __future__ import annotations

import json
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
STACK_GROUPS = {"web", "postgres", "redis", "backup", "monitoring"}
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


@pytest.fixture(scope="module")
def inventories():
    return {env: _inventory(env) for env in ENVIRONMENTS}


def test_topologies(inventories):
    dev, staging, production = (inventories[e] for e in ENVIRONMENTS)
    dev_hosts = set(dev["_meta"]["hostvars"])
    assert len(dev_hosts) == 1, "dev: one host runs every group"
    assert all(_hosts(dev, g) == sorted(dev_hosts) for g in ("web", "postgres", "redis", "backup"))
    assert len(_hosts(staging, "web")) == 1 and len(_hosts(staging, "postgres")) == 1
    assert len(_hosts(production, "web")) >= 2
    assert len(_hosts(production, "postgres")) == 3 and len(_hosts(production, "redis")) == 3


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
