# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Grandfather-father-son retention as pure functions.

No Ansible and no boto3 here: this file is imported by the ``s3_backup_rotate`` module and copied
as is next to the on-host backup job, so the retention rules exist exactly once.

A *backup* is every key that shares one group (the pattern's named groups other than ``ts``, e.g.
host and database) and one timestamp: ``db1/20260101T000000Z.dump`` and its manifest
``db1/20260101T000000Z.manifest.json`` are kept or deleted together.

For every rule (hourly, daily, weekly, monthly, yearly) with a count N > 0, the newest backup of each
of the N most recent periods *that have a backup* is kept (restic's semantics: the rules are
independent, one backup may satisfy several). Periods are UTC calendar hours, days, ISO weeks,
months and years. Because periods are counted, not measured back from today, a job that stopped
taking backups months ago still keeps its last ones. On top of that the newest backup of every
group is always kept, and so are the ``min_keep`` newest.
"""

from __future__ import annotations

import datetime
import re

DEFAULT_KEY_PATTERN = r"^(?P<host>[^/]+)/(?P<db>[^/]+)/(?P<ts>\d{8}T\d{6}Z)(?:\.[^/]*)?$"
DEFAULT_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
RULES = ("hourly", "daily", "weekly", "monthly", "yearly")


class GfsError(ValueError):
    """Base class of the retention errors: a setting that cannot work."""


class PatternError(GfsError):
    """The key pattern does not compile or has no ``ts`` group."""


class PolicyError(GfsError):
    """A keep count is negative or nothing at all would be kept."""


def _period(rule, ts):
    if rule == "hourly":
        return (ts.year, ts.month, ts.day, ts.hour)
    if rule == "daily":
        return (ts.year, ts.month, ts.day)
    if rule == "weekly":
        iso = ts.isocalendar()
        return (iso[0], iso[1])
    if rule == "monthly":
        return (ts.year, ts.month)
    return (ts.year,)


class Policy:
    """Keep counts per period, and the floor of backups every group keeps whatever their age."""

    def __init__(self, *, hourly=0, daily=7, weekly=4, monthly=3, yearly=0, min_keep=1):
        self.counts = {"hourly": hourly, "daily": daily, "weekly": weekly, "monthly": monthly, "yearly": yearly}
        self.min_keep = min_keep
        for name, value in [*self.counts.items(), ("min_keep", min_keep)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PolicyError("keep_%s must be an integer >= 0, found %r" % (name, value))

    def __repr__(self):
        return "Policy(%s, min_keep=%d)" % (", ".join("%s=%d" % kv for kv in self.counts.items()), self.min_keep)


def compile_pattern(pattern):
    """Compile a key pattern; it must have a named group ``ts``. Raises PatternError."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise PatternError("key_pattern %r is not a valid regular expression: %s" % (pattern, exc)) from exc
    if "ts" not in regex.groupindex:
        raise PatternError("key_pattern %r needs a named group (?P<ts>...) holding the timestamp" % pattern)
    return regex


def parse_key(key, regex, time_format=DEFAULT_TIME_FORMAT):
    """Return ``(group, timestamp)`` for a key, or None when it does not match or the time does not parse.

    ``group`` is the tuple of the pattern's other named groups in pattern order (e.g. ``(host, db)``);
    ``timestamp`` is an aware UTC datetime (a time without zone is taken as UTC).
    """
    match = regex.search(key)
    if not match:
        return None
    try:
        ts = datetime.datetime.strptime(match.group("ts"), time_format)
    except ValueError:
        return None
    ts = ts.replace(tzinfo=datetime.UTC) if ts.tzinfo is None else ts.astimezone(datetime.UTC)
    names = sorted((idx, name) for name, idx in regex.groupindex.items() if name != "ts")
    return tuple(match.group(name) or "" for _idx, name in names), ts


def keep_reasons(timestamps, policy):
    """The GFS decision for one group: ``{timestamp: [reasons]}`` for every timestamp kept.

    ``timestamps`` is any iterable of datetimes (duplicates are one backup). Reasons are
    ``newest``, ``min_keep`` and the rule names (``daily`` ...).
    """
    ordered = sorted(set(timestamps), reverse=True)
    kept = {}
    for ts in ordered[: max(policy.min_keep, 1)]:
        kept.setdefault(ts, []).append("newest" if ts == ordered[0] else "min_keep")
    for rule in RULES:
        wanted = policy.counts[rule]
        if not wanted:
            continue
        last = None
        found = 0
        for ts in ordered:
            period = _period(rule, ts)
            if period == last:
                continue
            last = period
            kept.setdefault(ts, []).append(rule)
            found += 1
            if found == wanted:
                break
    return kept


class Plan:
    """What a rotation keeps, deletes and leaves alone; keys are in listing order within each list."""

    def __init__(self):
        self.keep = []
        self.delete = []
        self.unparsed = []
        self.incomplete = []
        self.groups = {}

    def as_dict(self):
        return {
            "kept": list(self.keep),
            "deleted": list(self.delete),
            "unparsed": list(self.unparsed),
            "kept_count": len(self.keep),
            "deleted_count": len(self.delete),
            "unparsed_count": len(self.unparsed),
            "incomplete": list(self.incomplete),
            "incomplete_count": len(self.incomplete),
            "groups": dict(self.groups),
        }


def plan(keys, policy, pattern=DEFAULT_KEY_PATTERN, time_format=DEFAULT_TIME_FORMAT, strip_prefix="", *,
         complete_suffix=None):
    """Decide for every key: keep, delete or leave alone (unparsed, incomplete). Pure: touches nothing.

    ``strip_prefix`` is removed from each key before the pattern is applied (the listing prefix),
    so the same pattern works under any prefix. With ``complete_suffix`` (e.g. ".manifest.json"), a backup
    counts only when one of its keys ends with it: the keys of a backup without one (its manifest upload
    failed) are left alone as ``incomplete`` and take no place in the policy. Returns a Plan.
    """
    regex = compile_pattern(pattern) if isinstance(pattern, str) else pattern
    result = Plan()
    parsed = {}
    by_group = {}
    for key in keys:
        relative = key[len(strip_prefix):] if strip_prefix and key.startswith(strip_prefix) else key
        found = parse_key(relative, regex, time_format)
        if found is None:
            result.unparsed.append(key)
            continue
        parsed[key] = found
    if complete_suffix:
        complete = {found for key, found in parsed.items() if key.endswith(complete_suffix)}
        for key in [key for key, found in parsed.items() if found not in complete]:
            result.incomplete.append(key)
            del parsed[key]
    for group, ts in parsed.values():
        by_group.setdefault(group, set()).add(ts)
    kept_by_group = {}
    for group, stamps in by_group.items():
        reasons = keep_reasons(stamps, policy)
        kept_by_group[group] = reasons
        name = "/".join(group)
        result.groups[name] = {
            "backups": len(stamps),
            "kept": len(reasons),
            "deleted": len(stamps) - len(reasons),
            "newest": max(stamps).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "oldest_kept": min(reasons).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    for key, (group, ts) in parsed.items():
        (result.keep if ts in kept_by_group[group] else result.delete).append(key)
    return result
