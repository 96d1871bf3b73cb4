#!/usr/bin/env bash
# Backup throughput of the backup role's job against plain `pg_dump -Fc` to /dev/null on the same host.
# Goal (issue 6): the job reaches at least 80% of pg_dump's speed for a database of at least 1 GB.
#
#   make scenario S=backup CMD=converge        # keeps the test hosts (backup-db, backup-s3)
#   benchmarks/backup_throughput.sh [HOST] [SCALE] [LEVEL]
#     HOST: backup-db; SCALE: pgbench scale, 70 = about 1 GB; LEVEL: pg_dump -Z, 6 = the role's default.
#     pgbench's rows compress about 50:1 at level 6 (a 20 MB dump); LEVEL 0 streams the whole database
#     through the job's hashing, upload and copy, the worst case for the S3 side.
#
# Builds database `bench` with pgbench -i (once), then times, three times each, alternating:
#   A: pg_dump -Fc -Z LEVEL bench > /dev/null                (as postgres, local socket)
#   B: opsforge-backup run --only postgresql:bench --no-rotate (the same pg_dump, plus SHA-256 and the
#      multipart upload to the S3 endpoint of the job's configuration, plus the publish copy)
# and prints the machine's load before and after, the median times, MB/s of the database size, B's speed as a
# share of A's, and the dump's size.
# After each B run (not timed) every version of the bench objects is deleted again: moto keeps objects in
# a 2.4 GB private /tmp, and the bucket is versioned (deletes alone would keep the data).
set -euo pipefail
HOST=${1:-backup-db}
SCALE=${2:-70}
LEVEL=${3:-6}
x() { docker exec "$HOST" bash -c "$1"; }

x "runuser -u postgres -- psql -XAtqc \"SELECT 1 FROM pg_database WHERE datname = 'bench'\" | grep -q 1 \
   || { runuser -u postgres -- createdb bench && runuser -u postgres -- /usr/lib/postgresql/*/bin/pgbench -q -i -s $SCALE bench; }"
size_mb=$(x "runuser -u postgres -- psql -XAtqc \"SELECT pg_database_size('bench') / 1048576\"")
x "python3 -c \"import json; c = json.load(open('/etc/opsforge-backup/config.json')); \
c['postgresql']['databases'] = ['bench']; c['postgresql']['compression'] = $LEVEL; json.dump(c, open('/root/bench-config.json', 'w'))\" && chmod 600 /root/bench-config.json"

purge() {
  x "python3 - <<'PYX'
import json, boto3
from botocore.config import Config
cfg = json.load(open('/root/bench-config.json'))
c = cfg['s3']
s3 = boto3.client('s3', endpoint_url=c['endpoint_url'] or None, region_name=c['region'],
                  aws_access_key_id=c['access_key'] or None, aws_secret_access_key=c['secret_key'] or None,
                  config=Config(s3={'addressing_style': c['addressing_style']}))
for prefix in ('%s/%s/bench/' % (c['prefix'], cfg['host']), '%s/.incoming/' % c['prefix']):
    for page in s3.get_paginator('list_object_versions').paginate(Bucket=c['bucket'], Prefix=prefix):
        for v in page.get('Versions', []) + page.get('DeleteMarkers', []):
            s3.delete_object(Bucket=c['bucket'], Key=v['Key'], VersionId=v['VersionId'])
PYX"
}
purge
timed() {  # prints the seconds "$1" took; stops the benchmark when it fails
  local t0; t0=$(date +%s.%N)
  x "$1" > /dev/null 2> /tmp/backup_throughput.err || { echo "failed: $1" >&2; tail -5 /tmp/backup_throughput.err >&2; return 1; }
  python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 2))" "$t0"
}
a_times=() b_times=()
load_before=$(uptime | sed 's/.*load average: //')
for _ in 1 2 3; do
  t=$(timed "runuser -u postgres -- pg_dump -Fc -Z $LEVEL bench > /dev/null")
  a_times+=("$t")
  t=$(timed '/usr/local/sbin/opsforge-backup --config /root/bench-config.json run --only postgresql:bench --no-rotate')
  b_times+=("$t")
  last_run=$(x "cat /var/lib/opsforge-backup/last-run.json")
  purge
done
load_after=$(uptime | sed 's/.*load average: //')
dump_bytes=$(python3 -c "import json, sys; r = json.loads(sys.argv[1]); print(r['results'][0]['size'])" "$last_run")
python3 - "$size_mb" "$SCALE" "$HOST" "${a_times[*]}" "${b_times[*]}" "$LEVEL" "$dump_bytes" "$load_before" "$load_after" <<'PY'
import os, statistics, sys
size, scale, host = float(sys.argv[1]), sys.argv[2], sys.argv[3]
a, b = [float(t) for t in sys.argv[4].split()], [float(t) for t in sys.argv[5].split()]
level, dump = sys.argv[6], int(sys.argv[7])
ma, mb = statistics.median(a), statistics.median(b)
print(f"database bench: {size:.0f} MB (pgbench scale {scale}) on {host}, pg_dump -Z {level}: dump {dump / 1048576:.1f} MB; "
      "times are medians of 3 (docker exec included)")
print(f"A pg_dump -Fc > /dev/null : {ma:7.2f} s  {size / ma:7.1f} MB/s  runs {a}")
print(f"B opsforge-backup to S3   : {mb:7.2f} s  {size / mb:7.1f} MB/s  runs {b}")
print(f"B reaches {100 * ma / mb:.0f}% of A's speed (goal: 80%); fastest runs: {min(a)} s / {min(b)} s = "
      f"{100 * min(a) / min(b):.0f}% (steadier when other work shares the machine)")
print(f"machine load (1/5/15 min) before the runs: {sys.argv[8]}; after: {sys.argv[9]} ({os.cpu_count()} cores)")
PY
