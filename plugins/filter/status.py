# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The operator's status screen: what the status role read on each host, made into one summary and one text.

The status role (playbooks/status.yml) reads every component where it runs and keeps, per host, a raw report
(``status_report``: Patroni's /cluster answer, one psql row as JSON, redis-cli's lines, the backup job's
last-run.json, certificate dates, the release link, Prometheus's alerts). These functions turn the reports of all
hosts into:

- ``status_summary``: one dict per group (postgres, redis, backup, web, app, monitoring), with ages in seconds,
  the leader and master named, and a list of problems; what set_stats hands to AWX;
- ``status_screen``: the same as compact text, one block per group, what the operator reads.

A host without a report did not answer (down or unreachable): it is shown as such, never an error. No Ansible
import: unit-testable alone.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from collections.abc import Mapping

GROUPS = ("postgres", "redis", "backup", "web", "app", "monitoring")
DEFAULT_SETTINGS = {
    "cert_warn_days": 14,
    "backup_warn_hours": 26,
    "archive_warn_seconds": 600,
    "lag_warn_bytes": 16 * 1024 * 1024,
}


# --- parsing helpers ---------------------------------------------------------------------------------------------

def _epoch(value):
    """Unix time of an ISO 8601 string, an ASN.1 time (20270101000000Z), a number, or None."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    if len(text) == 15 and text.endswith("Z") and text[:-1].isdigit():
        stamp = _dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=_dt.UTC)
        return stamp.timestamp()
    text = text.replace("Z", "+00:00").replace(" ", "T", 1)
    if len(text) >= 3 and text[-3] in "+-" and text[-2:].isdigit() and "T" in text:
        text += ":00"  # PostgreSQL's +00
    try:
        stamp = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    return stamp.timestamp()


def _iso(epoch):
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_age(seconds):
    """12s, 4m, 3h05m, 2d04h; None: 'never'."""
    if seconds is None:
        return "never"
    seconds = int(seconds)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds}s"
    if seconds < 3600:
        return f"{sign}{seconds // 60}m"
    if seconds < 86400:
        return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{sign}{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def human_bytes(value):
    if value is None:
        return "?"
    value = int(value)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value}"  # pragma: no cover


def _json(value):
    """A dict/list as is, a JSON text parsed, else None."""
    if isinstance(value, (Mapping, list)):
        return value
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def _lines(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return [str(line).strip() for line in value if str(line).strip()]


# What a command's error says, made short: the tool is missing, or its OS user (become) does not exist.
_WHY = (("failed to run command", "not installed"), ("command not found", "not installed"),
        ("No such file or directory", "not installed"), ("Module result deserialization failed", "not installed"),
        ("unknown user", "not installed"))


def _error_line(value, default):
    lines = _lines(value)
    line = lines[-1] if lines else default
    return next((short for pattern, short in _WHY if pattern in line), line)


def _pairs(lines):
    """redis-cli's flat key/value lines (non-tty output of a map or of an array of maps) as a list of dicts;
    a new dict starts whenever a key already seen comes again (each replica begins with `name`)."""
    items, current = [], {}
    lines = _lines(lines)
    for key, value in zip(lines[0::2], lines[1::2], strict=False):
        if key in current:
            items.append(current)
            current = {}
        current[key] = value
    if current:
        items.append(current)
    return items


def _addresses(value):
    """`hostname -I`'s answer (or a list) as a list of addresses."""
    if isinstance(value, str):
        return value.split()
    return [str(a) for a in value or []]


def _info(text):
    """Redis INFO output as a dict."""
    out = {}
    for line in _lines(text):
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key] = value
    return out


# --- per component ---------------------------------------------------------------------------------------------

def _postgres(hosts, reports, now, settings, problems):
    members, archive, pgbackrest, views = [], [], [], []
    mode = "none"
    patroni_hosts = 0
    for host in hosts:
        rep = (reports.get(host) or {}).get("postgres")
        if not rep:
            continue
        mode = rep.get("mode") or mode
        cluster = _json(rep.get("patroni"))
        if mode == "patroni" and isinstance(cluster, Mapping) and isinstance(cluster.get("members"), list):
            views.append(cluster)
            patroni_hosts += 1
        sql = _json(rep.get("sql"))
        if isinstance(sql, Mapping) and sql.get("recovery") is False:
            arch = sql.get("archiver") or {}
            age = arch.get("age_seconds")
            entry = {"host": host, "last_archived": _iso(_epoch(arch.get("last_archived_time"))),
                     "age_seconds": None if age is None else int(age),
                     "failed_count": int(arch.get("failed_count") or 0),
                     "last_failed": _iso(_epoch(arch.get("last_failed_time"))),
                     "archive_mode": sql.get("archive_mode")}
            archive.append(entry)
        info = _json(rep.get("pgbackrest"))
        if rep.get("pgbackrest_enabled"):
            pgbackrest.append(_pgbackrest(host, info, rep.get("pgbackrest_error"), settings))
    if mode == "patroni":
        cluster = _freshest(views)
        for member in (cluster or {}).get("members", []):
            lag = member.get("lag")
            members.append({"name": member.get("name"), "role": member.get("role"), "state": member.get("state"),
                            "timeline": member.get("timeline"),
                            "lag_bytes": lag if isinstance(lag, int) else None,
                            "lag": (lag if isinstance(lag, int) else (str(lag) if lag is not None else None))})
        answered = {m["name"] for m in members}
        for host in hosts:
            if host not in answered:
                members.append({"name": host, "role": None, "state": "not in the cluster (Patroni does not list it)"
                                if cluster else "no answer", "timeline": None, "lag_bytes": None, "lag": None})
        if not cluster:
            problems.append("postgres: no Patroni REST API answered")
    else:
        members = _sql_members(hosts, reports)
    leaders = [m["name"] for m in members if m["role"] in ("leader", "primary", "standby_leader")]
    if not leaders and hosts:
        problems.append("postgres: no leader")
    elif len(leaders) > 1:
        problems.append(f"postgres: {len(leaders)} primaries ({', '.join(leaders)})")
    for member in members:
        if member["role"] in ("leader", "primary", "standby_leader"):
            continue
        if member["state"] not in ("streaming", "running"):
            problems.append(f"postgres: {member['name']} {member['state']}")
        elif member["lag_bytes"] is not None and member["lag_bytes"] > settings["lag_warn_bytes"]:
            problems.append(f"postgres: {member['name']} lags {human_bytes(member['lag_bytes'])}")
        elif member["lag"] is not None and member["lag_bytes"] is None:
            problems.append(f"postgres: {member['name']} lag {member['lag']}")
    for entry in archive:
        if entry["age_seconds"] is None:
            problems.append(f"postgres: {entry['host']} has never archived WAL")
        elif entry["age_seconds"] > settings["archive_warn_seconds"]:
            problems.append(f"postgres: last WAL archived {human_age(entry['age_seconds'])} ago on {entry['host']}")
    answered = [p for p in pgbackrest if p["last_backup"]]
    for entry in answered:
        entry["age_seconds"] = int(now - _epoch(entry["last_backup"]))
    if pgbackrest and not answered:
        problems.append("postgres: no pgBackRest backup found (" + "; ".join(
            f"{p['host']}: {p['error']}" for p in pgbackrest if p["error"]) + ")")
    best = max(answered, key=lambda p: _epoch(p["last_backup"])) if answered else None
    if best and best["age_seconds"] > settings["backup_warn_hours"] * 3600:
        problems.append(f"postgres: last pgBackRest backup {human_age(best['age_seconds'])} old")
    return {"mode": mode, "leader": leaders[0] if len(leaders) == 1 else None, "members": members,
            "archive": archive, "pgbackrest": best or (pgbackrest[0] if pgbackrest else None)}


def _freshest(views):
    """The /cluster answer most members agree on (same leader), preferring one that names a leader."""
    if not views:
        return None

    def leader(view):
        names = [m.get("name") for m in view.get("members", []) if m.get("role") in ("leader", "standby_leader")]
        return names[0] if len(names) == 1 else None

    counts = Counter(leader(v) for v in views if leader(v))
    if counts:
        winner = counts.most_common(1)[0][0]
        return next(v for v in views if leader(v) == winner)
    return views[0]


def _sql_members(hosts, reports):
    rows = {}
    for host in hosts:
        rep = (reports.get(host) or {}).get("postgres")
        if rep is None:
            rows[host] = None
            continue
        rows[host] = {"sql": _json(rep.get("sql")), "error": _error_line(rep.get("sql_error"), "no answer"),
                      "addresses": _addresses(rep.get("addresses"))}
    # Replicas seen from the primary's pg_stat_replication: by client address or application_name.
    seen = {}
    for row in rows.values():
        sql = (row or {}).get("sql")
        if isinstance(sql, Mapping) and sql.get("recovery") is False:
            for rep in sql.get("replication") or []:
                for key in (rep.get("application_name"), rep.get("client_addr")):
                    if key:
                        seen[str(key).split("/", maxsplit=1)[0]] = rep
    members = []
    for host in hosts:
        row = rows[host]
        if row is None:
            members.append({"name": host, "role": None, "state": "no answer (host down)", "timeline": None,
                            "lag_bytes": None, "lag": None})
            continue
        sql = row["sql"]
        if not isinstance(sql, Mapping):
            members.append({"name": host, "role": None, "state": f"down ({row['error']})", "timeline": None,
                            "lag_bytes": None, "lag": None})
            continue
        if sql.get("recovery") is False:
            members.append({"name": host, "role": "primary", "state": "running", "timeline": sql.get("timeline"),
                            "lag_bytes": None, "lag": None})
            continue
        stream = seen.get(host) or seen.get(host.split(".")[0]) or next(
            (seen[a] for a in row["addresses"] if a in seen), None)
        lag = stream.get("lag_bytes") if stream else None
        delay = sql.get("replay_delay_seconds")
        members.append({"name": host, "role": "replica",
                        "state": (stream.get("state") or "streaming") if stream else (
                            "streaming" if sql.get("receiving") else "not streaming"),
                        "timeline": sql.get("timeline"),
                        "lag_bytes": int(lag) if lag is not None else None,
                        "lag": int(lag) if lag is not None else None,
                        "replay_delay_seconds": delay})
    return members


def _pgbackrest(host, info, error, settings):
    entry = {"host": host, "last_backup": None, "type": None, "age_seconds": None, "status": None,
             "error": _error_line(error, "no answer") if info is None else None}
    if not isinstance(info, list):
        return entry
    for stanza in info:
        status = (stanza.get("status") or {}).get("message")
        entry["status"] = status
        backups = [b for b in stanza.get("backup") or [] if not b.get("error")]
        if backups:
            last = max(backups, key=lambda b: (b.get("timestamp") or {}).get("stop") or 0)
            stop = (last.get("timestamp") or {}).get("stop")
            entry.update(last_backup=_iso(_epoch(stop)), type=last.get("type"), label=last.get("label"))
        elif entry["error"] is None:
            entry["error"] = status or "no backup"
    return entry


def _redis(hosts, reports, problems):
    views, members, sentinels = Counter(), [], {}
    replicas_seen = {}
    sentinel_enabled = False
    for host in hosts:
        rep = (reports.get(host) or {}).get("redis")
        if rep is None:
            members.append({"name": host, "role": None, "state": "no answer (host down)"})
            sentinels[host] = "no answer"
            continue
        info = _info(rep.get("info"))
        if info.get("role"):
            state = "up"
            if info["role"] == "slave":
                state = f"link {info.get('master_link_status', '?')} to {info.get('master_host')}:" \
                        f"{info.get('master_port')}"
            else:
                state = f"{info.get('connected_slaves', '0')} replicas connected"
            members.append({"name": host, "role": "replica" if info["role"] == "slave" else info["role"],
                            "state": state, "addresses": _addresses(rep.get("addresses"))})
        else:
            members.append({"name": host, "role": None,
                            "state": "down (" + _error_line(rep.get("info_error") or rep.get("info"), "no answer")
                                     + ")", "addresses": _addresses(rep.get("addresses"))})
        if rep.get("sentinel_enabled"):
            sentinel_enabled = True
            master = dict(_pairs(rep.get("sentinel_master"))[:1][0]) if _pairs(rep.get("sentinel_master")) else {}
            if master.get("ip"):
                address = f"{master['ip']}:{master.get('port', '')}"
                views[address] += 1
                sentinels[host] = f"master {address} ({master.get('flags', '?')}, " \
                                  f"{int(master.get('num-other-sentinels', 0)) + 1} sentinels)"
                for replica in _pairs(rep.get("sentinel_replicas")):
                    if replica.get("ip"):
                        replicas_seen[f"{replica['ip']}:{replica.get('port', '')}"] = replica.get("flags", "?")
            else:
                sentinels[host] = "down (" + _error_line(rep.get("sentinel_error") or rep.get("sentinel_master"),
                                                         "no answer") + ")"
    master = views.most_common(1)[0][0] if views else None
    if sentinel_enabled:
        if not views:
            problems.append("redis: no Sentinel answered")
        elif len(views) > 1:
            problems.append("redis: the Sentinels disagree on the master (" + ", ".join(views) + ")")
        for address, flags in replicas_seen.items():
            if any(flag in flags for flag in ("s_down", "o_down", "disconnected")):
                problems.append(f"redis: replica {address} {flags}")
    masters = [m["name"] for m in members if m["role"] == "master"]
    if hosts and not masters:
        problems.append("redis: no master answered")
    elif len(masters) > 1 and sentinel_enabled:
        problems.append(f"redis: {len(masters)} masters ({', '.join(masters)})")
    for member in members:
        if member["role"] is None or "link down" in member["state"]:
            problems.append(f"redis: {member['name']} {member['state']}")
    master_host = next((m["name"] for m in members
                        if master and master.rsplit(":", 1)[0] in m.get("addresses", [])), None)
    return {"sentinel": sentinel_enabled, "master": master, "master_host": master_host or (
        masters[0] if len(masters) == 1 and not sentinel_enabled else None),
        "replicas": replicas_seen, "sentinels": sentinels, "members": members}


def _backup(hosts, reports, now, settings, problems):
    out = []
    for host in hosts:
        rep = (reports.get(host) or {}).get("backup")
        if rep is None:
            out.append({"host": host, "state": "no answer (host down)", "last_success": None, "age_seconds": None,
                        "targets": {}, "failures": []})
            problems.append(f"backup: {host} did not answer")
            continue
        last = _json(rep.get("last_run"))
        targets = {}
        for line in _lines(rep.get("success_metrics")):
            # opsforge_backup_last_success_timestamp_seconds{name="postgresql:app"} 1767225600
            if "{" in line and '"' in line:
                name = line.split('"')[1]
                targets[name] = _epoch(line.rsplit(None, 1)[-1])
        failures = [f"{f.get('target')}: {f.get('error')}" for f in (last or {}).get("failures") or []]
        last_success = None
        if targets:
            last_success = min(targets.values())  # the stalest target decides
        elif isinstance(last, Mapping) and last.get("ok"):
            last_success = _epoch(last.get("finished"))
        age = None if last_success is None else now - last_success
        state = "never ran" if last is None else ("ok" if last.get("ok") else "last run FAILED")
        out.append({"host": host, "state": state, "last_run": (last or {}).get("finished"),
                    "last_success": _iso(last_success), "age_seconds": None if age is None else int(age),
                    "targets": {k: _iso(v) for k, v in targets.items()}, "failures": failures})
        if last is None and not targets:
            problems.append(f"backup: {host} has no backup yet")
        elif failures:
            problems.append(f"backup: {host} last run failed ({'; '.join(failures)})")
        elif age is not None and age > settings["backup_warn_hours"] * 3600:
            problems.append(f"backup: last success on {host} {human_age(age)} ago")
    return out


def _certificate(result):
    """One site's certificate from the status role's loop results (x509_certificate_info over the slurped files:
    result.item is the slurp result, result.item.item the site) or an already plain {site, not_after, error}."""
    if "site" in result:
        return result
    read = result.get("item") or {}
    site = (read.get("item") or {}).get("name")
    if result.get("skipped") or "content" not in read:
        return {"site": site, "not_after": None, "error": "no certificate file (" + _error_line(
            read.get("msg"), "not readable") + ")"}
    issuer = result.get("issuer") or {}
    return {"site": site, "not_after": result.get("not_after"),
            "issuer": issuer.get("organizationName") or issuer.get("commonName"),
            "error": None if result.get("not_after") else _error_line(result.get("msg"), "not a certificate")}


def _web(hosts, reports, now, settings, problems):
    out = []
    for host in hosts:
        rep = (reports.get(host) or {}).get("web")
        if rep is None:
            out.append({"host": host, "site": None, "not_after": None, "days_left": None,
                        "error": "no answer (host down)"})
            problems.append(f"web: {host} did not answer")
            continue
        for cert in (_certificate(c) for c in rep.get("certs") or []):
            not_after = _epoch(cert.get("not_after"))
            days = None if not_after is None else int((not_after - now) // 86400)
            entry = {"host": host, "site": cert.get("site"), "not_after": _iso(not_after), "days_left": days,
                     "issuer": cert.get("issuer"), "error": None if not_after else (cert.get("error") or "unreadable")}
            out.append(entry)
            if entry["error"]:
                problems.append(f"web: {host} {entry['site']}: {entry['error']}")
            elif days < 0:
                problems.append(f"web: {host} {entry['site']}: certificate EXPIRED")
            elif days < settings["cert_warn_days"]:
                problems.append(f"web: {host} {entry['site']}: certificate expires in {days} days")
    return out


def _app(hosts, reports, problems):
    out = []
    for host in hosts:
        rep = (reports.get(host) or {}).get("app")
        if rep is None:
            out.append({"host": host, "release": None, "state": "no answer (host down)"})
            problems.append(f"app: {host} did not answer")
            continue
        target = str(rep.get("current") or "").rstrip("/")
        release = target.rsplit("/", 1)[-1] if target else None
        running = rep.get("running")
        state = "no release deployed" if not release else (
            "running" if running is None else (f"{running} containers running" if running else "NOT RUNNING"))
        out.append({"host": host, "release": release, "state": state})
        if not release or running == 0:
            problems.append(f"app: {host} {state}")
    releases = {a["release"] for a in out if a["release"]}
    if len(releases) > 1:
        problems.append("app: hosts run different releases (" + ", ".join(sorted(releases)) + ")")
    return out


def _monitoring(hosts, reports, problems):
    out = []
    for host in hosts:
        rep = (reports.get(host) or {}).get("monitoring")
        if rep is None:
            out.append({"host": host, "error": "no answer (host down)", "firing": [], "pending": 0})
            problems.append(f"monitoring: {host} did not answer")
            continue
        answer = _json(rep.get("alerts"))
        alerts = ((answer or {}).get("data") or {}).get("alerts") if isinstance(answer, Mapping) else None
        if alerts is None:
            error = rep.get("error") or "no answer"
            out.append({"host": host, "error": f"Prometheus down ({error})", "firing": [], "pending": 0})
            problems.append(f"monitoring: Prometheus on {host} down ({error})")
            continue
        firing = []
        for alert in alerts:
            if alert.get("state") != "firing":
                continue
            labels = alert.get("labels") or {}
            firing.append({"alertname": labels.get("alertname"), "severity": labels.get("severity"),
                           "instance": labels.get("instance") or labels.get("job") or "",
                           "since": _iso(_epoch(alert.get("activeAt")))})
        firing.sort(key=lambda a: (a["severity"] != "critical", a["alertname"] or "", a["instance"]))
        out.append({"host": host, "error": None, "firing": firing,
                    "pending": sum(1 for a in alerts if a.get("state") == "pending")})
        for alert in firing:
            problems.append(f"alert: {alert['alertname']} {alert['instance']}".rstrip())
    return out


def _reports(reports, hosts, key):
    """Each host's report: reports[host], or reports[host][key] when reports are the hosts' variables (hostvars,
    read only for the hosts needed). A host without one (it did not answer) is left out."""
    out = {}
    for host in hosts:
        try:
            report = reports[host]
            if key is not None:
                report = report[key]
        except (KeyError, TypeError):
            continue
        if isinstance(report, Mapping):
            out[host] = report
    return out


def status_summary(reports, inventory_groups, *, components=None, targets=None, now=None, settings=None,
                   report_key=None):
    """Summary of every group from the hosts' raw reports.

    reports: inventory host -> status_report (a host that did not answer has none or None); with report_key, the
    hosts' variables (``hostvars``), each host's report under that key.
    inventory_groups: the inventory's groups (``groups``): group name -> hosts.
    components: component (postgres, redis, backup, web, app, monitoring) -> the inventory group it runs on
    (default: the group of the same name). targets: the hosts that were asked (default: every host of those
    groups); the others are left out. now: Unix time of the reading (default: now). settings: warning
    thresholds (DEFAULT_SETTINGS).
    """
    if not isinstance(inventory_groups, Mapping):
        raise ValueError(f"status_summary: expected the inventory's groups, found {inventory_groups!r}")
    components = dict(zip(GROUPS, GROUPS, strict=True)) if components is None else components
    if not isinstance(components, Mapping):
        raise ValueError(f"status_summary: components must map a component to a group, found {components!r}")
    unknown = sorted(set(components) - set(GROUPS))
    if unknown:
        raise ValueError(f"status_summary: unknown components {unknown}; expected some of {list(GROUPS)}")
    asked = None if targets is None else set(targets)
    groups = {c: [h for h in inventory_groups.get(g) or [] if asked is None or h in asked]
              for c, g in components.items() if g}
    now = _dt.datetime.now(tz=_dt.UTC).timestamp() if now is None else float(now)
    merged = dict(DEFAULT_SETTINGS)
    merged.update({k: v for k, v in (settings or {}).items() if v is not None})
    for key in DEFAULT_SETTINGS:
        merged[key] = float(merged[key])
    problems = []
    hosts = {g: list(groups.get(g) or []) for g in GROUPS}
    everyone = sorted({h for g in hosts.values() for h in g})
    reports = _reports(reports or {}, everyone, report_key)
    summary = {"generated": _iso(now), "unreachable": [h for h in everyone if h not in reports]}
    if hosts["postgres"]:
        summary["postgres"] = _postgres(hosts["postgres"], reports, now, merged, problems)
    if hosts["redis"]:
        summary["redis"] = _redis(hosts["redis"], reports, problems)
    if hosts["backup"]:
        summary["backup"] = _backup(hosts["backup"], reports, now, merged, problems)
    if hosts["web"]:
        summary["web"] = _web(hosts["web"], reports, now, merged, problems)
    if hosts["app"]:
        summary["app"] = _app(hosts["app"], reports, problems)
    if hosts["monitoring"]:
        summary["monitoring"] = _monitoring(hosts["monitoring"], reports, problems)
    summary["problems"] = list(dict.fromkeys(problems))
    summary["ok"] = not summary["problems"]
    return summary


# --- the screen --------------------------------------------------------------------------------------------------

def _clip(text, width=70):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _table(rows, indent="  ", names=None):
    names = names or {}
    rows = [[_clip(names.get(c, c) if i == 0 else ("-" if c is None else c)) for i, c in enumerate(row)]
            for row in rows]
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    return [indent + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]


def _short(host):
    return str(host).split(".", maxsplit=1)[0] if host else host


def _short_names(summary):
    """Host names without their domain where that stays unambiguous (db1 for db1.production.example.com)."""
    hosts = set(summary.get("unreachable") or [])
    pg, rd = summary.get("postgres") or {}, summary.get("redis") or {}
    hosts |= {m["name"] for m in pg.get("members", []) + rd.get("members", []) if m.get("name")}
    for key in ("backup", "web", "app", "monitoring"):
        hosts |= {e["host"] for e in summary.get(key) or []}
    shorts = Counter(_short(h) for h in hosts)
    return {h: _short(h) for h in hosts if shorts[_short(h)] == 1}


def status_screen(summary):
    """The summary as text: a headline, then one block per group (host names without their domain)."""
    names = _short_names(summary)
    lines = []
    problems = summary.get("problems") or []
    lines.append(f"opsforge status at {summary.get('generated')}: "
                 + ("all good" if not problems else f"{len(problems)} problem(s)"))
    if summary.get("unreachable"):
        lines.append("  unreachable: " + ", ".join(names.get(h, h) for h in summary["unreachable"]))
    pg = summary.get("postgres")
    if pg:
        lines += ["", f"postgres ({pg['mode']}): leader {names.get(pg['leader'], pg['leader']) or 'NONE'}"]
        rows = []
        for m in pg["members"]:
            lag = "" if m["role"] in ("leader", "primary", "standby_leader") else (
                f"lag {human_bytes(m['lag_bytes'])}" if m["lag_bytes"] is not None
                else (f"lag {m['lag']}" if m["lag"] is not None else ""))
            if m.get("replay_delay_seconds") is not None and m["role"] == "replica":
                lag = (lag + f" replayed {human_age(m['replay_delay_seconds'])} ago").strip()
            rows.append([m["name"], m["role"] or "?", m["state"], f"tl {m['timeline']}" if m["timeline"] else "",
                         lag])
        lines += _table(names=names, rows=rows)
        for a in pg["archive"]:
            failed = f", {a['failed_count']} failed (last {a['last_failed']})" if a["failed_count"] else ""
            when = (f"archived {human_age(a['age_seconds'])} ago ({a['last_archived']})"
                    if a["age_seconds"] is not None else "never archived")
            lines.append(f"  WAL {when} on {names.get(a['host'], a['host'])}{failed}")
        b = pg.get("pgbackrest")
        if b:
            if b["last_backup"]:
                lines.append(f"  pgBackRest: last {b['type']} backup {b['last_backup']} "
                             f"({human_age(b['age_seconds'])} ago, stanza {b.get('status') or '?'})")
            else:
                lines.append(f"  pgBackRest: no backup ({b['error']})")
    rd = summary.get("redis")
    if rd:
        head = f"redis: master {rd['master'] or 'NONE'}" + (f" ({_short(rd['master_host'])})"
                                                            if rd.get("master_host") else "")
        head += " per Sentinel" if rd["sentinel"] else ""
        lines += ["", head]
        rows = [[m["name"], m["role"] or "?", m["state"]] for m in rd["members"]]
        if rd["sentinel"]:
            for row in rows:
                row.append("sentinel: " + rd["sentinels"].get(row[0], "-"))
        lines += _table(names=names, rows=rows)
    bk = summary.get("backup")
    if bk:
        lines += ["", "backup (last success)"]
        rows = [[b["host"], b["state"], b["last_success"] or "never",
                 f"{human_age(b['age_seconds'])} ago" if b["age_seconds"] is not None else "",
                 "; ".join(b["failures"])] for b in bk]
        lines += _table(names=names, rows=rows)
    web = summary.get("web")
    if web is not None:
        lines += ["", "web (certificates)"]
        rows = [[w["host"], w["site"] or "", w["error"] or f"expires {w['not_after']}",
                 "" if w["days_left"] is None else f"{w['days_left']} days left",
                 f"issuer {w['issuer']}" if w.get("issuer") else ""] for w in web]
        lines += _table(names=names, rows=rows or [["no TLS site"]])
    app = summary.get("app")
    if app:
        lines += ["", "app (release)"]
        lines += _table(names=names, rows=[[a["host"], a["release"] or "-", a["state"]] for a in app])
    mon = summary.get("monitoring")
    if mon:
        for m in mon:
            if m["error"]:
                lines += ["", f"alerts ({names.get(m['host'], m['host'])}): {m['error']}"]
                continue
            where = names.get(m["host"], m["host"])
            lines += ["", f"alerts ({where}): {len(m['firing'])} firing, {m['pending']} pending"]
            lines += _table(names=names, rows=[[a["severity"] or "", a["alertname"], a["instance"],
                                                f"since {a['since']}"] for a in m["firing"]])
    if problems:
        lines += ["", "problems:"] + [f"  - {_clip(p, 110)}" for p in problems]
    return "\n".join(lines)


class FilterModule:
    """opsforge.stack filters of the status screen (playbooks/status.yml)."""

    def filters(self):
        return {"status_summary": status_summary, "status_screen": status_screen}
