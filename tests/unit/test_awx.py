"""AWX / Automation Controller pieces as data: awx/templates.yml, execution-environment.yml, bindep.txt.

No AWX server runs here (its images are on registries this machine cannot reach), so the objects are
checked as data: every job template names an existing playbook and inventory; every survey variable is a
variable that playbook or one of its roles accepts (role variables: the type and the required flag of the
role's meta/argument_specs.yml); every template's playbook reports set_stats (global, no secrets) for
workflows; schedules parse and fire; workflows link existing templates; every playbook runs unattended. A
template whose playbook does not exist fails the tests. The execution environment's build context is
made with `ansible-builder create` (offline). The playbooks themselves run through ansible-runner in the
Molecule scenario `awx_runner`.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from dateutil.rrule import rrulestr

ROOT = Path(__file__).resolve().parents[2]
AWX = yaml.safe_load((ROOT / "awx" / "templates.yml").read_text())
TEMPLATES = AWX["awx_job_templates"]
TEMPLATE_IDS = [t["name"] for t in TEMPLATES]
# Survey types and the argument_spec types a role variable may have to receive them.
SURVEY_TYPES = {
    "text": {"str", "path", "raw"},
    "textarea": {"str", "raw"},
    "password": {"str", "raw"},
    "integer": {"int", "raw"},
    "float": {"float", "raw"},
    "multiplechoice": None,  # every choice must convert to the role variable's type
    "multiselect": {"list", "raw"},
}


def _playbook(path: str) -> Path:
    return ROOT / path


def _present(template: dict) -> bool:
    return _playbook(template["playbook"]).exists()


def _roles_of(playbook: Path) -> set[str]:
    """Roles a playbook applies: play `roles:` and include_role/import_role tasks (one level deep)."""
    roles = set()

    def tasks_roles(tasks):
        for task in tasks or []:
            for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
                if key in task:
                    roles.add(task[key]["name"])
            for nested in ("block", "rescue", "always"):
                tasks_roles(task.get(nested))

    for play in yaml.safe_load(playbook.read_text()) or []:
        for entry in play.get("roles", []):
            roles.add(entry if isinstance(entry, str) else entry["role"])
        for section in ("pre_tasks", "tasks", "post_tasks"):
            tasks_roles(play.get(section))
    return {r.split(".")[-1] for r in roles}


def _role_options(role: str) -> dict:
    spec = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    if not spec.exists():
        return {}
    return yaml.safe_load(spec.read_text())["argument_specs"]["main"].get("options", {})


def _validates(name: str, option: dict, value) -> bool:
    option = {k: v for k, v in option.items() if k not in ("default", "required")}
    return not ArgumentSpecValidator({name: option}).validate({name: value}).error_messages


def test_every_template_names_a_playbook_of_this_repository():
    missing = [f"{t['name']}: {t['playbook']}" for t in TEMPLATES if not _present(t)]
    for template in TEMPLATES:
        assert re.fullmatch(r"playbooks/[a-z0-9_]+\.yml", template["playbook"]), template["playbook"]
    assert not missing, "job templates whose playbook does not exist: " + "; ".join(missing)


def test_every_template_names_a_known_inventory():
    inventories = {i["name"]: i for i in AWX["awx_inventories"]}
    for template in TEMPLATES:
        assert template["inventory"] in inventories, f"{template['name']}: unknown inventory {template['inventory']}"
    for inventory in inventories.values():
        assert (ROOT / inventory["source_path"]).exists(), f"{inventory['name']}: no {inventory['source_path']}"


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_survey_variables_are_what_the_playbook_accepts(template):
    playbook = _playbook(template["playbook"])
    assert playbook.exists(), f"{template['name']}: {template['playbook']} does not exist"
    text = playbook.read_text()
    for template_file in (ROOT / "playbooks" / "templates").glob("*"):
        if template_file.name in text:  # e.g. smoke.yml derives its checks from templates/smoke_checks.yml.j2
            text += template_file.read_text()
    scheduled = {s["job_template"] for s in AWX["awx_schedules"]}
    role_options = {}
    for role in _roles_of(playbook):
        role_options.update(_role_options(role))
    problems = []
    spec = template.get("survey_spec", {}).get("spec", [])
    for question in spec:
        name, kind = question["variable"], question["type"]
        assert kind in SURVEY_TYPES, f"{name}: unknown survey type {kind}"
        values = question.get("choices", []) if kind == "multiplechoice" else []
        if question.get("default") not in (None, ""):
            values = [*values, question["default"]]
        if name in role_options:
            option = role_options[name]
            expected_types = SURVEY_TYPES[kind]
            if expected_types is not None and option.get("type", "str") not in expected_types:
                problems.append(f"{name}: survey type {kind} but the role declares {option.get('type')}")
            bad = [v for v in values if not _validates(name, option, v)]
            if bad:
                problems.append(f"{name}: {bad} are not valid for the role's {option.get('type')} "
                                f"{option.get('choices', '')}")
            if bool(question.get("required")) != bool(option.get("required")):
                problems.append(f"{name}: survey required={question.get('required')} "
                                f"but the role says {option.get('required', False)}")
        elif re.search(rf"\b{re.escape(name)}\b", text):
            # A playbook-level setting (documented in the playbook's header): choices must be handled there.
            if kind == "multiplechoice" and set(question["choices"]) == {"true", "false"}:
                if not re.search(rf"{re.escape(name)}[^\n]*\|\s*bool", text):
                    problems.append(f"{name}: a true/false choice but the playbook never reads it with | bool")
            elif kind == "multiplechoice":
                unknown = [c for c in question["choices"] if c not in text]
                if unknown:
                    problems.append(f"{name}: choices {unknown} never appear in {template['playbook']}")
        else:
            roles = sorted(_roles_of(playbook))
            problems.append(f"{name}: neither {template['playbook']} nor its roles {roles} use it")
        if template["name"] in scheduled and question.get("required") and question.get("default") in (None, ""):
            problems.append(f"{name}: required without a default blocks the template's scheduled runs")
    assert not problems, "\n".join(problems)


def test_every_playbook_runs_unattended():
    prompting = [p.name for p in (ROOT / "playbooks").glob("*.yml") if "vars_prompt" in p.read_text()]
    assert not prompting, f"playbooks that would prompt (AWX cannot answer): {prompting}"


def _set_stats_tasks(playbook: Path) -> list[dict]:
    """The set_stats tasks of a playbook (plays' tasks, nested blocks and the task files they include)."""
    found = []

    def walk(tasks, base: Path):
        for task in tasks or []:
            for key in ("ansible.builtin.set_stats", "set_stats"):
                if key in task:
                    found.append(task)
            for nested in ("block", "rescue", "always"):
                walk(task.get(nested), base)
            for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks",
                        "include_tasks", "import_tasks"):
                included = task.get(key)
                included = included.get("file") if isinstance(included, dict) else included
                if included and "{{" not in included and (base / included).exists():
                    walk(yaml.safe_load((base / included).read_text()), (base / included).parent)

    for play in yaml.safe_load(playbook.read_text()) or []:
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            walk(play.get(section), playbook.parent)
    return found


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_template_playbooks_report_set_stats(template):
    """Every playbook a job template runs hands its results to AWX workflows: at least one set_stats task, each
    global (per_host: false: workflows only pass the global stats on), with data and no secrets in it."""
    playbook = _playbook(template["playbook"])
    assert playbook.exists(), f"{template['name']}: {template['playbook']} does not exist"
    tasks = _set_stats_tasks(playbook)
    assert tasks, f"{template['playbook']} has no set_stats task: AWX workflows get nothing from it"
    for task in tasks:
        args = task.get("ansible.builtin.set_stats", task.get("set_stats"))
        where = f"{template['playbook']}: {task.get('name')}"
        assert args.get("data"), f"{where}: set_stats without data"
        assert args.get("per_host") is False, f"{where}: set per_host: false (workflows read the global stats)"
        text = yaml.safe_dump({"data": args["data"], "vars": task.get("vars", {})})
        assert not re.search(r"password|secret|vault_|cipher|token", text, flags=re.I), f"{where}: secrets in stats"


def test_schedules_parse_and_name_templates():
    names = set(TEMPLATE_IDS)
    for schedule in AWX["awx_schedules"]:
        assert schedule["job_template"] in names
        rule = rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"))
        # A rule that never fires (e.g. an UNTIL before DTSTART) has no first occurrence.
        assert rule.after(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)) is not None, schedule["name"]


def test_workflows_link_existing_templates():
    names = set(TEMPLATE_IDS)
    for workflow in AWX["awx_workflows"]:
        identifiers = {n["identifier"] for n in workflow["nodes"]}
        for node in workflow["nodes"]:
            assert node["job_template"] in names
            assert set(node["success_nodes"]) <= identifiers


def test_credential_types_inject_the_inventories_secrets():
    examples = "\n".join(p.read_text() for p in (ROOT / "inventories" / "example").rglob("main.yml"))
    examples = "\n".join(line for line in examples.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\bvault_[a-z0-9_]+", examples))
    for ctype in AWX["awx_credential_types"]:
        fields = {f["id"] for f in ctype["inputs"]["fields"]}
        injected = ctype["injectors"]["extra_vars"]
        assert set(ctype["inputs"]["required"]) <= fields
        for template in injected.values():
            assert re.fullmatch(r"\{\{ (\w+) \}\}", template).group(1) in fields
        assert used <= set(injected), f"not injected: {sorted(used - set(injected))}"
        secrets = [f for f in ctype["inputs"]["fields"] if re.search("pass|secret", f["id"])]
        assert all(f.get("secret") for f in secrets), "password fields must be secret"


def test_configure_playbook_uses_the_data_and_lint_knows_its_modules():
    text = (ROOT / "playbooks" / "awx_configure.yml").read_text()
    for key in AWX:
        assert key in text, f"playbooks/awx_configure.yml ignores {key}"
    modules = set(re.findall(r"^\s+(awx\.awx\.[a-z_]+):", text, flags=re.M))
    lint = yaml.safe_load((ROOT / ".ansible-lint").read_text())
    assert modules <= set(lint.get("mock_modules", [])), "add the awx.awx modules to mock_modules in .ansible-lint"


def test_awx_collection_is_required_but_not_a_galaxy_dependency():
    requirements = yaml.safe_load((ROOT / "requirements.yml").read_text())
    assert "awx.awx" in {c["name"] for c in requirements["collections"]}
    assert "awx.awx" not in yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]


def test_execution_environment_pins_match_the_controller_requirements():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    deps = ee["dependencies"]
    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {re.sub(r"\[.*\]", "", k): v for k, v in pins.items()}
    for requirement in [*deps["python"], deps["ansible_core"]["package_pip"], deps["ansible_runner"]["package_pip"]]:
        name, version = requirement.split("#")[0].strip().split("==")
        assert pins.get(name) == version, f"{name}=={version} in the EE but {pins.get(name)} in requirements.txt"
    galaxy = yaml.safe_load((ROOT / deps["galaxy"]).read_text())
    needed = set(yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"])
    assert needed <= {c["name"] for c in galaxy["collections"]}
    assert (ROOT / deps["system"]).exists()


def test_ansible_builder_creates_the_build_context_offline(tmp_path):
    builder = Path(sys.executable).parent / "ansible-builder"
    result = subprocess.run(
        [str(builder), "create", "-f", str(ROOT / "execution-environment.yml"), "-c", str(tmp_path / "context"),
         "--output-filename", "Containerfile"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    build = tmp_path / "context" / "_build"
    assert "boto3==1.44.8" in (build / "requirements.txt").read_text()
    assert "sshpass" in (build / "bindep.txt").read_text()
    assert "awx.awx" in (build / "requirements.yml").read_text()
    assert 'EE_BASE_IMAGE="quay.io/ansible/awx-ee:' in (tmp_path / "context" / "Containerfile").read_text()
