#!/usr/bin/env bash
# Side by side, in one run: the public geerlingguy roles (benchmarks/reference_roles.yml) and ours
# (benchmarks/stack.yml) converge the same PostgreSQL + Redis + nginx job on fresh Debian test hosts, then re-run
# it; prints each time and our time as a ratio of theirs. Prints numbers; not a test.
#   benchmarks/stack_vs_reference.sh DIR [trixie|bookworm] [rounds]
# DIR holds checkouts of github.com/geerlingguy/ansible-role-{postgresql,redis,nginx} (Galaxy may be unreachable:
# any git copy works). Each round runs reference converge, ours, reference re-run, ours, on two fresh hosts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
refdir=${1:?usage: benchmarks/stack_vs_reference.sh DIR-with-geerlingguy-role-checkouts [release] [rounds]}
release=${2:-trixie}
rounds=${3:-1}
scripts/bootstrap
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
work=$(mktemp -d)
ours=bench-ours-$release
theirs=bench-ref-$release
trap 'rm -rf "$work"; scripts/testhosts destroy "$ours" "$theirs" >/dev/null 2>&1 || true' EXIT
for role in postgresql redis nginx; do
  src="$refdir/geerlingguy+ansible-role-$role/repo"
  [ -d "$src" ] || src="$refdir/ansible-role-$role"
  mkdir -p "$work/roles/geerlingguy.$role"
  git -C "$src" archive HEAD | tar -x -C "$work/roles/geerlingguy.$role"
done
inventory() {  # inventory HOST -> path of a one-host inventory
  printf 'all:\n  hosts:\n    %s:\n      ansible_connection: community.docker.docker\n      ansible_python_interpreter: /usr/bin/python3\n' \
    "$1" >"$work/$1.yml"
  echo "$work/$1.yml"
}
recap() { grep -oE 'changed=[0-9]+' "$1" | tail -1; }
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
  scripts/testhosts destroy "$ours" "$theirs" >/dev/null 2>&1 || true
  scripts/testhosts create "$ours" --release "$release" >/dev/null 2>&1
  scripts/testhosts create "$theirs" --release "$release" >/dev/null 2>&1
  ref1=$(ANSIBLE_ROLES_PATH="$work/roles" timed /tmp/bench-ref-1.log ansible-playbook -i "$(inventory "$theirs")" benchmarks/reference_roles.yml)
  our1=$(timed /tmp/bench-ours-1.log ansible-playbook -i "$(inventory "$ours")" benchmarks/stack.yml)
  ref2=$(ANSIBLE_ROLES_PATH="$work/roles" timed /tmp/bench-ref-2.log ansible-playbook -i "$(inventory "$theirs")" benchmarks/reference_roles.yml)
  our2=$(timed /tmp/bench-ours-2.log ansible-playbook -i "$(inventory "$ours")" benchmarks/stack.yml)
  echo "round $round ($release, load $(cut -d' ' -f1 /proc/loadavg)): converge geerlingguy ${ref1} s, ours ${our1} s" \
       "($(python3 -c "print(f'{$our1 / $ref1:.2f}')")x); re-run geerlingguy ${ref2} s ($(recap /tmp/bench-ref-2.log))," \
       "ours ${our2} s ($(recap /tmp/bench-ours-2.log)) ($(python3 -c "print(f'{$our2 / $ref2:.2f}')")x)"
done
