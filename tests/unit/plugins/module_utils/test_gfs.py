"""The GFS policy as pure logic: the kept set equals the GFS set computed independently here.

The reference below is deliberately written another way than gfs.keep_reasons (which walks the
backups newest first): it buckets every timestamp by period, takes each bucket's maximum and the N
newest buckets, as a set computation.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

import pytest
from ansible_collections.opsforge.stack.plugins.module_utils import gfs

UTC = dt.UTC
END = dt.datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # a Tuesday
PERIOD_OF = {
    "hourly": lambda t: t.strftime("%Y%m%d%H"),
    "daily": lambda t: t.strftime("%Y%m%d"),
    "weekly": lambda t: "%04d-W%02d" % t.isocalendar()[:2],
    "monthly": lambda t: t.strftime("%Y%m"),
    "yearly": lambda t: t.strftime("%Y"),
}


def reference_kept(stamps, counts, min_keep):
    stamps = set(stamps)
    kept = set(sorted(stamps)[-max(min_keep, 1):])
    for rule, n in counts.items():
        if not n:
            continue
        buckets = {}
        for t in stamps:
            p = PERIOD_OF[rule](t)
            buckets[p] = max(buckets.get(p, t), t)
        kept |= {buckets[p] for p in sorted(buckets)[-n:]}
    return kept


def every(step, start=END - dt.timedelta(days=730), end=END):
    out, t = [], start
    while t <= end:
        out.append(t)
        t += step
    return out


def irregular(seed, count=3000):
    rng = random.Random(seed)
    span = int((END - (END - dt.timedelta(days=730))).total_seconds())
    return [END - dt.timedelta(seconds=rng.randrange(span)) for _ in range(count)]


def with_gap(stamps, start_days_ago, end_days_ago):
    lo, hi = END - dt.timedelta(days=start_days_ago), END - dt.timedelta(days=end_days_ago)
    return [t for t in stamps if not lo <= t <= hi]


DATASETS = {
    "daily-2y": every(dt.timedelta(days=1)),
    "6-hourly-2y": every(dt.timedelta(hours=6)),
    "hourly-2y": every(dt.timedelta(hours=1)),
    "random-a": irregular(1),
    "random-b": irregular(2, 500),
    "gap-last-3-months": with_gap(every(dt.timedelta(hours=12)), 90, 0),
    "gap-in-the-middle": with_gap(every(dt.timedelta(days=1)), 400, 100),
    "single": [END],
}
POLICIES = {
    "default": dict(daily=7, weekly=4, monthly=3),
    "everything": dict(hourly=24, daily=14, weekly=8, monthly=12, yearly=5),
    "hourly-only": dict(hourly=48, daily=0, weekly=0, monthly=0),
    "yearly-only": dict(daily=0, weekly=0, monthly=0, yearly=3),
    "nothing": dict(daily=0, weekly=0, monthly=0),
    "long": dict(daily=400, weekly=200, monthly=50, yearly=10),
}


@pytest.mark.parametrize("min_keep", [0, 1, 10])
@pytest.mark.parametrize("policy_name", sorted(POLICIES))
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_kept_set_is_the_gfs_set(dataset, policy_name, min_keep):
    counts = dict.fromkeys(gfs.RULES, 0) | POLICIES[policy_name]
    policy = gfs.Policy(min_keep=min_keep, **counts)
    stamps = DATASETS[dataset]
    kept = gfs.keep_reasons(stamps, policy)
    assert set(kept) == reference_kept(stamps, counts, min_keep)
    assert max(stamps) in kept, "the newest backup is always kept"
    assert len(kept) >= min(len(set(stamps)), max(min_keep, 1))


def test_default_policy_by_hand():
    stamps = every(dt.timedelta(days=1), start=dt.datetime(2025, 1, 1, 3, tzinfo=UTC))
    kept = gfs.keep_reasons(stamps, gfs.Policy())
    days = sorted(t.strftime("%m-%d") for t in kept)
    # 7 daily (18..24 Nov), weekly: Sun 22 Nov (week 47), 15 Nov, 8 Nov; monthly: 31 Oct, 30 Sep
    assert days == ["09-30", "10-31", "11-08", "11-15", "11-18", "11-19", "11-20", "11-21", "11-22", "11-23",
                    "11-24"]
    assert kept[END] == ["newest", "daily", "weekly", "monthly"]


def key(host, db, t, suffix=".dump"):
    return f"{host}/{db}/{t.strftime(gfs.DEFAULT_TIME_FORMAT)}{suffix}"


def test_plan_groups_by_host_and_db_and_keeps_companions_together():
    stamps = every(dt.timedelta(hours=6))
    keys = [key("db1", "app", t) for t in stamps] + [key("db1", "app", t, ".manifest.json") for t in stamps]
    keys += [key("db2", "app", t) for t in stamps[:100]]  # an old host: its backups stopped long ago
    keys += ["db1/app/README", "db1/app/latest.dump", "db1/app/20261399T000000Z.dump", "notes.txt"]
    plan = gfs.plan(keys, gfs.Policy())
    assert sorted(plan.unparsed) == sorted(
        ["db1/app/README", "db1/app/latest.dump", "db1/app/20261399T000000Z.dump", "notes.txt"])
    assert set(plan.keep) | set(plan.delete) | set(plan.unparsed) == set(keys)
    assert not set(plan.keep) & set(plan.delete)
    expected = reference_kept(stamps, dict(daily=7, weekly=4, monthly=3), 1)
    assert set(plan.keep) >= {key("db1", "app", t) for t in expected}
    assert {k for k in plan.keep if k.startswith("db1/app/")} == (
        {key("db1", "app", t) for t in expected} | {key("db1", "app", t, ".manifest.json") for t in expected})
    old = reference_kept(stamps[:100], dict(daily=7, weekly=4, monthly=3), 1)
    assert {k for k in plan.keep if k.startswith("db2/")} == {key("db2", "app", t) for t in old}
    assert plan.groups["db2/app"]["kept"] == len(old) and plan.groups["db1/app"]["backups"] == len(stamps)


def test_plan_strips_the_prefix_and_reports_counts():
    stamps = every(dt.timedelta(days=1))
    keys = ["backups/" + key("h", "d", t) for t in stamps]
    result = gfs.plan(keys, gfs.Policy(), strip_prefix="backups/").as_dict()
    assert result["kept_count"] == 11 and result["deleted_count"] == len(stamps) - 11
    assert result["unparsed_count"] == 0


def test_custom_pattern_with_zone_and_no_group():
    regex = gfs.compile_pattern(r"^dump-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}[+-]\d{4})\.gz$")
    group, ts = gfs.parse_key("dump-2026-11-24T05:00+0200.gz", regex, "%Y-%m-%dT%H:%M%z")
    assert group == () and ts == dt.datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert gfs.parse_key("dump-2026-11-24.gz", regex, "%Y-%m-%dT%H:%M%z") is None


def test_newest_is_kept_even_when_every_count_is_zero():
    stamps = every(dt.timedelta(days=3))
    policy = gfs.Policy(hourly=0, daily=0, weekly=0, monthly=0, yearly=0, min_keep=0)
    assert set(gfs.keep_reasons(stamps, policy)) == {max(stamps)}


@pytest.mark.parametrize("pattern", [r"(?P<host>[^/]+)/(?P<db>[^/]+)", r"(?P<ts>[", ""])
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(gfs.PatternError):
        gfs.compile_pattern(pattern)


@pytest.mark.parametrize("field", ["hourly", "daily", "weekly", "monthly", "yearly", "min_keep"])
@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_bad_counts_are_refused(field, value):
    with pytest.raises(gfs.PolicyError):
        gfs.Policy(**{field: value})


def test_gfs_module_imports_neither_ansible_nor_boto3():
    source = Path(gfs.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+(ansible|boto)", source, flags=re.M)


def test_a_backup_without_its_manifest_takes_no_place_and_is_left_alone():
    stamps = every(dt.timedelta(days=1))[-10:]
    keys = [key("db1", "app", t) for t in stamps] + [key("db1", "app", t, ".manifest.json") for t in stamps[:-3]]
    policy = gfs.Policy(daily=3, weekly=0, monthly=0, min_keep=1)
    # Without the suffix the three newest dumps (manifest uploads failed) fill the three daily places.
    without = gfs.plan(keys, policy).keep
    assert {k for k in without if k.endswith(".dump")} == {key("db1", "app", t) for t in stamps[-3:]}
    plan = gfs.plan(keys, policy, complete_suffix=".manifest.json")
    assert sorted(plan.incomplete) == sorted(key("db1", "app", t) for t in stamps[-3:])
    complete = stamps[-6:-3]
    assert set(plan.keep) == {key("db1", "app", t) for t in complete} | {
        key("db1", "app", t, ".manifest.json") for t in complete}
    assert not set(plan.incomplete) & (set(plan.keep) | set(plan.delete))
    assert set(plan.keep) | set(plan.delete) | set(plan.incomplete) == set(keys)
    assert plan.as_dict()["incomplete_count"] == 3
