#!/usr/bin/env bash
# How site.yml's per-host plays scale with the number of hosts: common + exporters (benchmarks/scale.yml) on
# 1, 10 and 30 fresh Debian test hosts (or the counts given), converge and idempotent re-run timed for each.
# Prints numbers; not a test. Run it on a quiet machine:
#   benchmarks/scale.sh [IMAGE] [COUNT...]     IMAGE: trixie-stack (default: packages unpacked in the image, so
#                                               the curve shows the roles' own cost, not dpkg's) or trixie
# Each count gets fresh hosts (bench-scale-1..N on the network bench-scale), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
image=${1:-trixie-stack}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 10 30)
scripts/bootstrap
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_FORKS=50
scripts/testhosts image "$image"
inventory=$(mktemp --suffix=.yml)
max=0
for n in "${counts[@]}"; do [ "$n" -le "$max" ] || max=$n; done
cleanup() {
  rm -f "$inventory"
  local names=()
  for i in $(seq 1 "$max"); do names+=("bench-scale-$i"); done
  scripts/testhosts destroy "${names[@]}" --network bench-scale
  # Fresh hosts get new addresses: facts cached for an earlier host of the same name must go (ansible.cfg).
  rm -f .cache/facts/*bench-scale-*
}
trap cleanup EXIT


echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, load $(load) (1, 5, 15 min); image $image"
printf '%6s  %10s  %10s  %14s  %14s\n' hosts converge re-run "converge/host" "re-run/host"
for n in "${counts[@]}"; do
  cleanup
  { echo "all:"; echo "  hosts:"; } >"$inventory"
  # The network first: hosts started side by side would each try to create it.
  docker network inspect bench-scale >/dev/null 2>&1 || docker network create --label org.opsforge.testhost=1 bench-scale >/dev/null
  pids=()
  for i in $(seq 1 "$n"); do
    printf '    bench-scale-%d:\n      ansible_connection: community.docker.docker\n      ansible_python_interpreter: /usr/bin/python3\n' "$i" >>"$inventory"
    scripts/testhosts create "bench-scale-$i" --release "$image" --network bench-scale 2>>/tmp/bench-scale-hosts.log &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { tail -5 /tmp/bench-scale-hosts.log >&2; exit 1; }; done
  first=$(timed "/tmp/bench-scale-$n-1.log" ansible-playbook -i "$inventory" benchmarks/scale.yml)
  second=$(timed "/tmp/bench-scale-$n-2.log" ansible-playbook -i "$inventory" benchmarks/scale.yml)
  changed=$(awk '/^PLAY RECAP/ {r = 1} r && /changed=/ {split($0, a, "changed="); split(a[2], b, " "); t += b[1]} END {print t + 0}' "/tmp/bench-scale-$n-2.log")
  [ "$changed" = 0 ] || echo "  the re-run on $n hosts changed $changed tasks (/tmp/bench-scale-$n-2.log)" >&2
  python3 -c "n, a, b = $n, $first, $second; print(f'{n:6d}  {a:8.1f} s  {b:8.1f} s  {a / n:12.2f} s  {b / n:12.2f} s')"
done
echo "load after: $(load); logs: /tmp/bench-scale-N-{1,2}.log"
