#!/usr/bin/env bash
# Backup throughput of the backup role's job against plain `pg_dump -Fc` to /dev/null on the same host.
# Goal (issue 6): the job reaches at least 80% of pg_dump's speed for a database of at least 1 GB.
#
#   make scenario S=backup CMD=converge        # keeps the test hosts (backup-db, backup-s3)
#   benchmarks/backup_throughput.sh [HOST] [SCALE]   # HOST: backup-db; SCALE: pgbench scale, 70 = about 1 GB
#
# Builds database `bench` with pgbench -i (once), then times, three times each, alternating:
#   A: pg_dump -Fc -Z6 bench > /dev/null                    (as postgres, local socket)
#   B: opsforge-backup run --only postgresql:bench --no-rotate (the same pg_dump, plus SHA-256 and the
#      multipart upload to the S3 endpoint of the job's configuration, plus the publish copy)
# and prints the median times, MB/s of the database size, and B's speed as a share of A's.
set -euo pipefail
HOST=${1:-backup-db}
SCALE=${2:-70}
x() { docker exec "$HOST" bash -c "$1"; }

x "runuser -u postgres -- psql -XAtqc \"SELECT 1 FROM pg_database WHERE datname = 'bench'\" | grep -q 1 \
   || { runuser -u postgres -- createdb bench && runuser -u postgres -- /usr/lib/postgresql/*/bin/pgbench -q -i -s $SCALE bench; }"
size_mb=$(x "runuser -u postgres -- psql -XAtqc \"SELECT pg_database_size('bench') / 1048576\"")
x "python3 -c \"import json; c = json.load(open('/etc/opsforge-backup/config.json')); \
c['postgresql']['databases'] = ['bench']; json.dump(c, open('/root/bench-config.json', 'w'))\" && chmod 600 /root/bench-config.json"

timed() { local t0; t0=$(date +%s.%N); x "$1" > /dev/null 2>&1; python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 2))" "$t0"; }
a_times=() b_times=()
for _ in 1 2 3; do
  a_times+=("$(timed 'runuser -u postgres -- pg_dump -Fc -Z6 bench > /dev/null')")
  b_times+=("$(timed '/usr/local/sbin/opsforge-backup --config /root/bench-config.json run --only postgresql:bench --no-rotate')")
done
python3 - "$size_mb" "$SCALE" "$HOST" "${a_times[*]}" "${b_times[*]}" <<'PY'
import statistics, sys
size, scale, host = float(sys.argv[1]), sys.argv[2], sys.argv[3]
a, b = [float(t) for t in sys.argv[4].split()], [float(t) for t in sys.argv[5].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"database bench: {size:.0f} MB (pgbench scale {scale}) on {host}; times are medians of 3 (docker exec included)")
print(f"A pg_dump -Fc > /dev/null : {ma:7.2f} s  {size / ma:7.1f} MB/s  runs {a}")
print(f"B opsforge-backup to S3   : {mb:7.2f} s  {size / mb:7.1f} MB/s  runs {b}")
print(f"B reaches {100 * ma / mb:.0f}% of A's speed (goal: 80%)")
PY
