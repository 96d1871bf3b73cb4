#!/usr/bin/env bash
# Converge time and idempotent re-run time of PostgreSQL + Redis + Nginx (benchmarks/stack.yml) on one fresh
# Debian test host. Prints numbers; not a test. Run it on a quiet machine:
#   benchmarks/stack_converge.sh [trixie|bookworm] [runs]
# Prints the machine (CPUs, load) and, per run, the ten slowest tasks of the re-run (ansible.posix.profile_tasks).
# Reference, the same job with the public geerlingguy roles on one Debian 13 test host on this kind of machine
# (2 cores): converge 56-59 s, idempotent re-run 18-20 s. Our goal: re-run about 9 s (docs/benchmarks.md).
# Set OPSFORGE_MITOGEN=1 to measure with Mitogen (not the goal's setting).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
release=${1:-trixie}
runs=${2:-1}
scripts/bootstrap
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
# Per-task times in each run's recap (the slowest first); the re-run's ten slowest are printed below.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=10
host=bench-stack-$release
inventory=$(mktemp --suffix=.yml)
trap 'rm -f "$inventory"; scripts/testhosts destroy "$host"' EXIT
printf 'all:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n      ansible_python_interpreter: /usr/bin/python3\n' \
  "$host" >"$inventory"


echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, load $(load) (1, 5, 15 min)"

for run in $(seq 1 "$runs"); do
  scripts/testhosts destroy "$host"
  scripts/testhosts create "$host" --release "$release" 2>/dev/null
  first=$(timed /tmp/bench-stack-1.log ansible-playbook -i "$inventory" benchmarks/stack.yml)
  second=$(timed /tmp/bench-stack-2.log ansible-playbook -i "$inventory" benchmarks/stack.yml)
  changed=$(grep -oE 'changed=[0-9]+' /tmp/bench-stack-2.log | tail -1)
  tasks=$(grep -oE 'ok=[0-9]+' /tmp/bench-stack-2.log | tail -1)
  echo "stack ($release) run $run: converge ${first} s, idempotent re-run ${second} s ($changed, $tasks), load after: $(load)"
  echo "  ten slowest tasks of the re-run (profile_tasks):"
  sed -nE 's/^(.*[^ -]) -+ ([0-9]+\.[0-9]+)s$/\2 s  \1/p' /tmp/bench-stack-2.log | head -10 | sed 's/^/    /'
done
