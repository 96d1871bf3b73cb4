#!/usr/bin/env bash
# postgres_timing: how long the postgresql role takes on a fresh single-node host.
#   benchmarks/postgres_timing.sh [trixie|bookworm]
# Starts a fresh test host (scripts/testhosts), applies molecule/postgres (prepare, then converge twice)
# with ansible-playbook and prints: first converge, idempotent re-run (must report changed=0).
# The HA failover time is measured and printed by molecule/postgres_ha's verify.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RELEASE=${1:-${OPSFORGE_DEBIAN_RELEASE:-trixie}}
HOST=bench-postgres-$RELEASE
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_FORCE_COLOR=0
WORK=$(mktemp -d /var/tmp/postgres-timing.XXXXXX)
cleanup() { scripts/testhosts destroy "$HOST" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

cat >"$WORK/hosts.yml" <<YAML
all:
  vars:
    ansible_connection: community.docker.docker
    ansible_python_interpreter: /usr/bin/python3
  children:
    postgres:
      hosts:
        $HOST:
YAML

scripts/testhosts destroy "$HOST" >/dev/null 2>&1 || true
t0=$(date +%s.%N)
scripts/testhosts create "$HOST" --release "$RELEASE"
t1=$(date +%s.%N)
ansible-playbook -i "$WORK/hosts.yml" molecule/postgres/prepare.yml >"$WORK/prepare.log"
t2=$(date +%s.%N)
ansible-playbook -i "$WORK/hosts.yml" molecule/postgres/converge.yml >"$WORK/first.log" || { tail -40 "$WORK/first.log"; exit 1; }
t3=$(date +%s.%N)
ansible-playbook -i "$WORK/hosts.yml" molecule/postgres/converge.yml >"$WORK/second.log" || { tail -40 "$WORK/second.log"; exit 1; }
t4=$(date +%s.%N)
recap=$(grep -E "^$HOST +:" "$WORK/second.log" || true)
case "$recap" in *" changed=0 "*) idem=ok;; *) idem="NOT idempotent: $recap";; esac

printf 'postgres single node on %s (load average: %s)\n' "$RELEASE" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  test host boot        %6.1f s\n' "$(awk "BEGIN{print $t1 - $t0}")"
printf '  first converge        %6.1f s\n' "$(awk "BEGIN{print $t3 - $t2}")"
printf '  idempotent re-run     %6.1f s  (%s)\n' "$(awk "BEGIN{print $t4 - $t3}")" "$idem"
[ "$idem" = ok ]
