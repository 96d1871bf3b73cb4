#!/usr/bin/env bash
# Numbers of the pgbackrest role (issue 10), measured on the hosts of the `pitr` Molecule scenario:
#   1. full backup and restore (playbooks/pitr_restore.yml, type latest) of a generated database of ~1 GB
#      (pgbench -i -s 70: 7 million rows, about 1.05 GB);
#   2. the data-loss window of a host killed under a write load, restored to the latest archived state;
#   3. the WAL archive lag under a pgbench write load (bytes and seconds behind, sampled every second).
# Not part of the test suite. Usage (from the repository root):
#   make scenario S=pitr CMD=converge && benchmarks/pitr_numbers.sh; make scenario S=pitr CMD=destroy
# Env: SCALE (70), DB (pitr-db-trixie), LOAD_SECONDS (60), CLIENTS (4), CRASH_WRITE_SECONDS (40).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
SCALE=${SCALE:-70} DB=${DB:-pitr-db-trixie} LOAD_SECONDS=${LOAD_SECONDS:-60} CLIENTS=${CLIENTS:-4}
CRASH_WRITE_SECONDS=${CRASH_WRITE_SECONDS:-40}
PGBIN=/usr/lib/postgresql/17/bin
inv=$(mktemp --suffix=.yml)
trap 'rm -f "$inv"' EXIT
printf 'postgres:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n' "$DB" >"$inv"

on() { docker exec "$DB" "$@"; }
sql() { docker exec "$DB" runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
restore() {  # TYPE -> seconds
  local t0; t0=$(now)
  ansible-playbook -i "$inv" playbooks/pitr_restore.yml -e pitr_restore_type="$1" >/tmp/pitr_numbers_restore.log 2>&1 \
    || { tail -30 /tmp/pitr_numbers_restore.log; exit 1; }
  secs "$t0" "$(now)"
}

docker inspect "$DB" >/dev/null 2>&1 || { echo "no host $DB: make scenario S=pitr CMD=converge first" >&2; exit 1; }
archive_timeout=$(sql "SHOW archive_timeout")
echo "machine load at the start: $(uptime | sed 's/.*load average/load average/')"

echo "== 1. generated database, full backup, restore"
t0=$(now)
on runuser -u postgres -- "$PGBIN/pgbench" -q -i -s "$SCALE" postgres >/dev/null 2>&1
echo "pgbench -i -s $SCALE: $(secs "$t0" "$(now)") s, database size $(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")"
t0=$(now)
on /usr/local/sbin/opsforge-pgbackrest backup --type full >/dev/null
echo "full backup: $(secs "$t0" "$(now)") s (stored: $(on runuser -u postgres -- pgbackrest --stanza=main --output=json info \
  | python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["backup"][-1]["info"]; print(round(b["repository"]["delta"]/2**20), "MiB of", round(b["size"]/2**20), "MiB")'))"
before=$(sql "SELECT count(*) FROM pgbench_accounts")
echo "restore (pitr_restore.yml, latest; stop, keep aside, restore, start, verify): $(restore latest) s"
echo "  of which pgbackrest restore: $(on python3 -c 'import json
print(json.load(open("/var/lib/opsforge-pgbackrest/last-restore.json"))["restore_seconds"])')"
after=$(sql "SELECT count(*) FROM pgbench_accounts")
echo "pgbench_accounts rows before/after: $before/$after"
on sh -c 'rm -rf /var/lib/postgresql/17/main.pitr-*'

echo "== 2. data-loss window of a killed host (archive_timeout $archive_timeout)"
sql "DROP TABLE IF EXISTS bench_counter; CREATE TABLE bench_counter (n int PRIMARY KEY, ts timestamptz)"
on sh -c 'echo manual > /etc/postgresql/17/main/start.conf; rm -f /var/lib/postgresql/bench_writer.log'
on systemd-run --unit=bench-writer --uid=postgres /bin/bash -c 'i=0; while :; do i=$((i+1));
  r=$(psql -XAtq -c "INSERT INTO bench_counter VALUES ($i, clock_timestamp()) RETURNING extract(epoch FROM ts)") &&
  echo "$i $r" >> /var/lib/postgresql/bench_writer.log; sleep 0.05; done' >/dev/null 2>&1
sleep "$CRASH_WRITE_SECONDS"
docker kill "$DB" >/dev/null && docker start "$DB" >/dev/null
for _ in $(seq 60); do on systemctl is-system-running 2>/dev/null | grep -Eq 'running|degraded' && break; sleep 1; done
read -r last_n last_ts < <(on tail -n 1 /var/lib/postgresql/bench_writer.log)
echo "restore to latest: $(restore latest) s"
read -r got_n got_ts < <(sql "SELECT n || ' ' || extract(epoch FROM ts) FROM bench_counter ORDER BY n DESC LIMIT 1" )
on sh -c 'echo auto > /etc/postgresql/17/main/start.conf; rm -rf /var/lib/postgresql/17/main.pitr-*'
echo "lost: $((last_n - got_n)) of $last_n commits, $(secs "$got_ts" "$last_ts") s of writes"

echo "== 3. WAL archive lag under pgbench load ($CLIENTS clients, $LOAD_SECONDS s)"
on runuser -u postgres -- "$PGBIN/pgbench" -n -c "$CLIENTS" -T "$LOAD_SECONDS" postgres >/tmp/pitr_numbers_pgbench.log 2>&1 &
load=$!
samples=$(mktemp)
# lag in bytes: from the end of the last archived segment to the current insert position
lag_sql="SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint - ((('x' || substr(last_archived_wal, 9, 8))::bit(32)::bigint
  * 4294967296) + (('x' || substr(last_archived_wal, 17, 8))::bit(32)::bigint + 1) * 16777216),
  coalesce(extract(epoch FROM now() - last_archived_time), -1) FROM pg_stat_archiver
  WHERE last_archived_wal ~ '^[0-9A-F]{24}\$'"
while kill -0 "$load" 2>/dev/null; do
  sql "$lag_sql" >>"$samples" || true
  sleep 1
done
wait "$load" || true
grep -E 'tps|latency average' /tmp/pitr_numbers_pgbench.log | sed 's/^/pgbench: /'
awk -F'|' '{ n++; b += $1; if ($1 > mb) mb = $1; a += $2; if ($2 > ma) ma = $2 }
  END { printf "archive lag: avg %.1f MB, max %.1f MB behind the insert position; last archived segment age avg %.1f s, max %.1f s (%d samples)\n", b/n/1048576, mb/1048576, a/n, ma, n }' "$samples"
rm -f "$samples"
echo "machine load at the end: $(uptime | sed 's/.*load average/load average/')"
