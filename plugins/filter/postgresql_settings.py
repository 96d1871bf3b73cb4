# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Which server settings the postgresql role still has to send with ALTER SYSTEM.

``postgresql_alter_plan(wanted, rows)`` compares the wanted settings (name: value, as the role's variables give
them) with what the server reports for those names, one row per setting (the role's single query):

- ``name``, ``setting``, ``unit``, ``vartype``, ``pending_restart``: pg_settings' columns (the running value, in
  the setting's own unit, e.g. shared_buffers ``16384`` with unit ``8kB``);
- ``auto_setting``: the value postgresql.auto.conf holds for it (as written, e.g. ``512MB``), or None.

A value is planned (returned as ``{'key': name, 'value': value}``, in the order of ``wanted``) unless it is
already in force: postgresql.auto.conf holds an equal value (it is read last, so it wins, also while it waits
for a restart), or, with no entry there and no restart pending, the running value is equal. PostgreSQL's
defaults are never written to postgresql.auto.conf by ALTER SYSTEM's module (it sees the running value equal and
does nothing), so comparing with postgresql.auto.conf alone would plan them on every run.

Values are compared as PostgreSQL reads them: memory units (B, kB, MB, GB, TB) and time units (us, ms, s, min,
h, d) are converted, a number without a unit is in the setting's own unit, integer settings are rounded to their
unit as PostgreSQL rounds them; booleans (on/off, true/false, yes/no, 1/0) and enum values ignore case. A value
this cannot read (an unknown unit, a setting the server does not know) is compared as text, so that ALTER SYSTEM
sees it and reports the error. No Ansible import: unit-testable alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

MEMORY_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
BOOLEANS = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}

_NUMBER_UNIT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")
_SETTING_UNIT = re.compile(r"^(\d*)\s*([A-Za-z]+)$")


def _text(value):
    """The value as PostgreSQL would read it from the configuration: Python booleans as on/off, no quotes."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1].replace("''", "'")
    return text


def _setting_unit(unit):
    """pg_settings' unit as (size in its family's base unit, the family's table): '8kB' -> (8192, MEMORY_UNITS)."""
    if not unit:
        return None
    match = _SETTING_UNIT.match(str(unit).strip())
    if not match:
        return None
    factor = int(match.group(1) or 1)
    for table in (MEMORY_UNITS, TIME_UNITS):
        if match.group(2) in table:
            return factor * table[match.group(2)], table
    return None


def _number(value, row):
    """An integer or real setting in its own unit (rounded for integers), or None when unreadable."""
    match = _NUMBER_UNIT.match(_text(value))
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2)
    own = _setting_unit(row.get("unit"))
    if unit:
        if own is None or unit not in own[1]:
            return None
        number = number * own[1][unit] / own[0]
    if row.get("vartype") == "integer":
        return round(number)  # PostgreSQL rounds with rint(): half to even, like round()
    return number


def normalize(value, row):
    """The comparable form of ``value`` for the setting described by ``row``, or None when unreadable."""
    vartype = row.get("vartype")
    if vartype == "bool":
        return BOOLEANS.get(_text(value).lower())
    if vartype == "enum":
        return _text(value).lower()
    if vartype in ("integer", "real"):
        return _number(value, row)
    return _text(value)


def same_value(wanted, current, row):
    """Whether PostgreSQL reads ``wanted`` and ``current`` as the same value of the setting ``row`` describes."""
    left, right = normalize(wanted, row), normalize(current, row)
    if left is None or right is None:
        return _text(wanted) == _text(current)
    if isinstance(left, float) or isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    return left == right


def _is_true(value):
    if isinstance(value, str):
        return value.strip().lower() in ("t", "true", "on", "yes", "1")
    return bool(value)


def postgresql_alter_plan(wanted, rows=None):
    """The wanted settings that are not in force yet: [{'key': name, 'value': value as text}], in wanted's order."""
    if not isinstance(wanted, Mapping):
        raise TypeError(f"postgresql_alter_plan expects a dict of settings, got {type(wanted).__name__}")
    known = {str(r["name"]).lower(): r for r in rows or [] if isinstance(r, Mapping) and r.get("name")}
    plan = []
    for name, value in wanted.items():
        row = known.get(str(name).lower())
        if row is None:
            needed = True  # unknown to the server (or not asked yet): ALTER SYSTEM decides, and reports errors
        elif row.get("auto_setting") is not None:
            needed = not same_value(value, row["auto_setting"], row)
        elif _is_true(row.get("pending_restart")):
            needed = True  # the running value is about to change at the restart: only postgresql.auto.conf counts
        else:
            needed = not same_value(value, row.get("setting"), row)
        if needed:
            plan.append({"key": name, "value": _text(value) if isinstance(value, bool) else str(value)})
    return plan


def postgresql_databases_to_apply(databases, rows=None):
    """The entries of ``databases`` (the role's normalised postgresql_databases) that community.postgresql's
    postgresql_db would change, given pg_database's rows (name, owner, encoding, datcollate, datctype).

    ``rows`` None (not read) returns every entry. Present: missing, another owner, another encoding, or another
    lc_collate / lc_ctype where one is given (the module fails on those, and must still say so). Absent: present.
    """
    if rows is None:
        return list(databases or [])
    seen = {str(r.get("name")): r for r in rows if isinstance(r, Mapping)}
    out = []
    for db in databases or []:
        row = seen.get(str(db.get("name")))
        if db.get("state", "present") == "absent":
            todo = row is not None
        elif row is None:
            todo = True
        else:
            todo = (
                str(row.get("owner")) != str(db.get("owner") or "postgres")
                or str(row.get("encoding", "")).upper() != str(db.get("encoding") or "UTF8").upper()
                or (bool(db.get("lc_collate")) and str(row.get("datcollate")) != str(db["lc_collate"]))
                or (bool(db.get("lc_ctype")) and str(row.get("datctype")) != str(db["lc_ctype"]))
            )
        if todo:
            out.append(db)
    return out


class FilterModule:
    def filters(self):
        return {
            "postgresql_alter_plan": postgresql_alter_plan,
            "postgresql_databases_to_apply": postgresql_databases_to_apply,
        }
