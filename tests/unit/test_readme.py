"""The README's table of roles and modules is kept current: every role and module has a row."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> set[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| (role|module|filter) \| `([a-z0-9_]+)` \|", text, flags=re.M))


def test_every_role_has_a_row():
    roles = {p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()}
    listed = {name for kind, name in _rows() if kind == "role"}
    assert roles == listed, f"README roles table: missing {sorted(roles - listed)}, stale {sorted(listed - roles)}"


def test_every_module_has_a_row():
    modules = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    listed = {name for kind, name in _rows() if kind == "module"}
    assert modules == listed, f"README modules: missing {sorted(modules - listed)}, stale {sorted(listed - modules)}"


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("```")[1]
    assert "make demo" in head and "make test" in head
