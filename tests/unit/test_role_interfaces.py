"""Every role's interface is its meta/argument_specs.yml, and its defaults agree with it.

Checks, for each role under roles/:
- meta/argument_specs.yml exists and has a `main` entry point;
- every variable in defaults/main.yml is declared in the spec with the same default, and vice versa
  (a spec option without a default must be `required` or documented as optional with no default);
- every public variable carries the role's name as prefix;
- every variable in defaults/main.yml has a one-line comment right above it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


def _load(path: Path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_spec_and_defaults_agree(role: Path):
    spec = _load(role / "meta" / "argument_specs.yml")
    assert spec, f"{role.name}: meta/argument_specs.yml is missing; it is the role's interface"
    options = spec["argument_specs"]["main"].get("options", {})
    defaults = _load(role / "defaults" / "main.yml") or {}
    missing_in_spec = sorted(set(defaults) - set(options))
    assert not missing_in_spec, f"{role.name}: defaults not declared in argument_specs.yml: {missing_in_spec}"
    for name, option in options.items():
        if name in defaults:
            assert option.get("default") == defaults[name], (
                f"{role.name}: {name} defaults to {defaults[name]!r} in defaults/main.yml "
                f"but {option.get('default')!r} in argument_specs.yml"
            )
        else:
            assert option.get("required") or "default" not in option, (
                f"{role.name}: {name} has a default in the spec but none in defaults/main.yml"
            )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_public_variables_are_prefixed(role: Path):
    spec = _load(role / "meta" / "argument_specs.yml") or {"argument_specs": {"main": {}}}
    names = set(spec["argument_specs"]["main"].get("options", {}))
    names |= set(_load(role / "defaults" / "main.yml") or {})
    wrong = sorted(n for n in names if not n.startswith(f"{role.name}_"))
    assert not wrong, f"{role.name}: variables without the '{role.name}_' prefix: {wrong}"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_default_has_a_comment(role: Path):
    path = role / "defaults" / "main.yml"
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        is_variable = line and not line.startswith((" ", "#", "-")) and ":" in line and line != "---"
        if is_variable and (i == 0 or not lines[i - 1].lstrip().startswith("#")):
            uncommented.append(line.split(":", 1)[0])
    assert not uncommented, f"{role.name}: defaults without a comment line above them: {uncommented}"
