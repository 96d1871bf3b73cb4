#!/usr/bin/env bash
# Numbers of issue 12 (monitoring), measured on the hosts of the `monitoring` Molecule scenario:
#   - resident memory (VmRSS) of every exporter, Prometheus, Alertmanager and the blackbox exporter;
#   - seconds from stopping Redis to the test webhook receiving RedisDown from Alertmanager (and from
#     starting it again to the resolved notification), with the scenario's settings (scrape and evaluation
#     every 2 s, RedisDown `for: 4s`, group_wait 1 s; see molecule/monitoring/vars/main.yml).
#
# usage:
#   make scenario S=monitoring CMD=converge      # keep the scenario's hosts (about 2 minutes)
#   benchmarks/monitoring_numbers.sh [RUNS]      # RUNS alert round trips (default 3)
#   make scenario S=monitoring CMD=destroy
# env: WEB, DB, MON container names (default monitoring-web, monitoring-db, monitoring-mon).
set -euo pipefail
WEB=${WEB:-monitoring-web} DB=${DB:-monitoring-db} MON=${MON:-monitoring-mon}
RUNS=${1:-3}
HOOK_LOG=/var/lib/webhook-receiver/alerts.jsonl

rss() {  # container binary -> "NNNN" (kB, summed over matching processes) or "-"
  docker exec "$1" sh -c '
    total=0; found=
    for pid in $(pgrep -f "^(/usr/bin/)?$0( |\$)"); do
      kb=$(awk "/^VmRSS:/ {print \$2}" /proc/$pid/status 2>/dev/null || true)
      [ -n "$kb" ] && { total=$((total + kb)); found=1; }
    done
    if [ -n "$found" ]; then echo $total; else echo -; fi' "$2"
}

echo "== resident memory (VmRSS)"
printf '%-16s %-34s %10s\n' host process "RSS (MiB)"
for pair in "$WEB prometheus-node-exporter" "$WEB prometheus-nginx-exporter" "$WEB mtail" \
            "$DB prometheus-node-exporter" "$DB prometheus-postgres-exporter" "$DB prometheus-redis-exporter" \
            "$MON prometheus-node-exporter" "$MON prometheus" "$MON prometheus-alertmanager" \
            "$MON prometheus-blackbox-exporter"; do
  set -- $pair
  kb=$(rss "$1" "$2")
  if [ "$kb" = - ]; then mib=-; else mib=$(awk -v k="$kb" 'BEGIN {printf "%.1f", k / 1024}'); fi
  printf '%-16s %-34s %10s\n' "$1" "$2" "$mib"
done

count_status() {  # status -> number of RedisDown alerts with that status received so far
  docker exec "$MON" python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    n += sum(1 for a in json.loads(line)["alerts"] if a["labels"]["alertname"] == "RedisDown" and a["status"] == sys.argv[2])
print(n)' "$HOOK_LOG" "$1"
}

wait_for() {  # status before -> seconds from $start until a new RedisDown notification with that status
  local status=$1 before=$2
  for _ in $(seq 1 600); do
    if [ "$(count_status "$status")" -gt "$before" ]; then
      awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}'
      return 0
    fi
    sleep 0.2
  done
  echo "timeout"; return 1
}

echo
echo "== Redis down -> webhook (RedisDown firing), Redis up -> webhook (resolved), $RUNS runs"
for run in $(seq 1 "$RUNS"); do
  firing=$(count_status firing) resolved=$(count_status resolved)
  start=$(date +%s.%N); docker exec "$DB" systemctl stop redis-server
  down=$(wait_for firing "$firing")
  start=$(date +%s.%N); docker exec "$DB" systemctl start redis-server
  up=$(wait_for resolved "$resolved")
  echo "run $run: stop -> firing received ${down} s, start -> resolved received ${up} s"
  sleep 3
done
