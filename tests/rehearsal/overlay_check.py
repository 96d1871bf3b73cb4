"""Refuse a rehearsal overlay that sets anything outside tests/rehearsal/allowed.yml.

    python tests/rehearsal/overlay_check.py tests/rehearsal/production.yml

Exit 0 and print nothing when every variable is allowed; exit 1 naming each host and variable that is not.
The overlay may only give variables to hosts (and to `all`): a group of its own would put hosts into the
example's groups behind the user's back, so a group other than `all` is refused too.
"""

import sys
from pathlib import Path

import yaml

ALLOWED_FILE = Path(__file__).with_name("allowed.yml")


def allowed_names(path=ALLOWED_FILE):
    """Every variable name of allowed.yml (its lists, whatever the category)."""
    return {name for names in yaml.safe_load(path.read_text()).values() for name in names}


def problems(overlay, allowed):
    """Sentences naming what the overlay (a parsed YAML inventory) sets beyond `allowed`."""
    found = []
    if not isinstance(overlay, dict) or set(overlay) != {"all"}:
        return [f"the overlay must have one top-level group, all (found: {sorted(overlay or {})})"]
    group = overlay["all"] or {}
    for key in sorted(set(group) - {"hosts", "vars"}):
        found.append(f"all.{key}: an overlay sets host variables only (all.hosts, all.vars), no groups")
    for name in sorted(set(group.get("vars") or {}) - allowed):
        found.append(f"all.vars.{name} is not allowed in an overlay (allowed: {', '.join(sorted(allowed))})")
    for host, variables in sorted((group.get("hosts") or {}).items()):
        for name in sorted(set(variables or {}) - allowed):
            found.append(f"{host}: {name} is not allowed in an overlay (allowed: {', '.join(sorted(allowed))})")
    return found


def main(argv):
    if len(argv) != 2:
        print("usage: overlay_check.py OVERLAY.yml", file=sys.stderr)
        return 2
    found = problems(yaml.safe_load(Path(argv[1]).read_text()), allowed_names())
    for line in found:
        print(f"{argv[1]}: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
