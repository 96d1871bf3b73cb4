# Shared by the benchmark scripts (sourced, not run): timing a command into a log, and the load average.

# timed LOG COMMAND...: runs COMMAND with its output in LOG and prints the seconds it took; on failure prints the
# log's last 40 lines to stderr and returns 1.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "${@:2}" >"$1" 2>&1 || { tail -40 "$1" >&2; return 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}

# load: the load average over 1, 5 and 15 minutes
load() { cut -d' ' -f1-3 /proc/loadavg; }
