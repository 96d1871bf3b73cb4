#!/usr/bin/env bash
# Converge time and idempotent re-run time of PostgreSQL + Redis + Nginx (benchmarks/stack.yml) on one fresh
# Debian test host. Prints numbers; not a test. Run it on a quiet machine:
#   benchmarks/stack_converge.sh [trixie|bookworm] [runs]
# Reference on one Debian 13 test host (the best public roles, same job): 47 s converge, 14.5 s re-run.
# Our goal: at most 47 s and 7 s. Set OPSFORGE_MITOGEN=1 to measure with Mitogen (not the goal's setting).
set -euo pipefail
cd "$(dirname "$0")/.."
release=${1:-trixie}
runs=${2:-1}
scripts/bootstrap
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
host=bench-stack-$release
inventory=$(mktemp --suffix=.yml)
trap 'rm -f "$inventory"; scripts/testhosts destroy "$host"' EXIT
printf 'all:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n      ansible_python_interpreter: /usr/bin/python3\n' \
  "$host" >"$inventory"

timed() {  # timed LOG COMMAND... -> prints seconds, keeps the recap in LOG
  local t0 t1
  t0=$(date +%s.%N)
  "${@:2}" >"$1" 2>&1 || { tail -40 "$1" >&2; return 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}

for run in $(seq 1 "$runs"); do
  scripts/testhosts destroy "$host"
  scripts/testhosts create "$host" --release "$release" 2>/dev/null
  first=$(timed /tmp/bench-stack-1.log ansible-playbook -i "$inventory" benchmarks/stack.yml)
  second=$(timed /tmp/bench-stack-2.log ansible-playbook -i "$inventory" benchmarks/stack.yml)
  changed=$(grep -oE 'changed=[0-9]+' /tmp/bench-stack-2.log | tail -1)
  tasks=$(grep -oE 'ok=[0-9]+' /tmp/bench-stack-2.log | tail -1)
  echo "stack ($release) run $run: converge ${first} s, idempotent re-run ${second} s ($changed, $tasks)"
done
