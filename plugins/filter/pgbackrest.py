# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What Patroni must be told so that pgBackRest archives, restores and builds replicas.

Patroni owns postgresql.conf, the recovery settings and replica creation, so under Patroni the pgbackrest
role cannot set ``archive_command`` itself. The postgresql role renders Patroni's configuration with this
filter's answer, and the pgbackrest role checks Patroni's live configuration against the same answer:
the commands are written here once. No Ansible import: unit-testable alone.
"""

from __future__ import annotations

# The pgbackrest role's defaults (tests/unit/plugins/filter checks that they stay equal).
DEFAULT_STANZA = "main"
DEFAULT_ARCHIVE_TIMEOUT = 60
DEFAULT_METHODS = ("pgbackrest", "basebackup")
KNOWN_METHODS = ("pgbackrest", "basebackup")


def pgbackrest_patroni_config(stanza=None, archive_timeout=None, create_replica_methods=None):
    """Return {dcs: {...}, local: {...}} for Patroni: the DCS part (cluster-wide) and the local part (per member)."""
    stanza = DEFAULT_STANZA if stanza is None else str(stanza)
    if not stanza or any(c.isspace() or c in "\"'%;" for c in stanza):
        raise ValueError(f"pgbackrest_stanza: expected a plain name, found {stanza!r}")
    timeout = DEFAULT_ARCHIVE_TIMEOUT if archive_timeout is None else archive_timeout
    try:
        timeout = int(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"pgbackrest_archive_timeout: expected whole seconds, found {archive_timeout!r}") from None
    if timeout < 1:
        raise ValueError(f"pgbackrest_archive_timeout: expected at least 1 s, found {timeout}")
    methods = list(DEFAULT_METHODS if create_replica_methods is None else create_replica_methods)
    unknown = [m for m in methods if m not in KNOWN_METHODS]
    if not methods or unknown:
        raise ValueError(
            f"pgbackrest_patroni_create_replica_methods: expected a non-empty list of {list(KNOWN_METHODS)}, "
            f"found {methods!r}"
        )
    local = {"create_replica_methods": methods}
    if "pgbackrest" in methods:
        # no_params: Patroni would append --scope/--datadir options pgBackRest does not know.
        # keep_data: --delta reuses what is already in the data directory of a rebuilt member.
        local["pgbackrest"] = {
            "command": f"/usr/bin/pgbackrest --stanza={stanza} --delta restore",
            "keep_data": True,
            "no_params": True,
        }
    if "basebackup" in methods:
        local["basebackup"] = {"checkpoint": "fast"}
    return {
        "dcs": {
            "parameters": {
                "archive_mode": "on",
                "archive_command": f"pgbackrest --stanza={stanza} archive-push %p",
                "archive_timeout": f"{timeout}s",
            },
            "recovery_conf": {"restore_command": f'pgbackrest --stanza={stanza} archive-get %f "%p"'},
        },
        "local": local,
    }


class FilterModule:
    """opsforge.stack filters for pgBackRest."""

    def filters(self):
        return {"pgbackrest_patroni_config": pgbackrest_patroni_config}
