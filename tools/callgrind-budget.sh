#!/usr/bin/env bash
# Deterministic hot-path budgets: instructions per operation counted by valgrind's callgrind, checked
# against bench/callgrind_budgets.txt. Each op runs twice (N1 and N2 iterations) in
# build/bench/metrics_callgrind_driver; (Ir(N2) - Ir(N1)) / (N2 - N1) is the exact cost of one
# operation, loop included. Exits non-zero, saying by how much, when an op is over its budget
# (or when an op of the budget file is unknown to the driver).
#   tools/callgrind-budget.sh [BUILD_DIR=build]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
driver=$build/bench/metrics_callgrind_driver
budgets=bench/callgrind_budgets.txt
command -v valgrind >/dev/null || { echo "callgrind-budget: valgrind missing (apt-get install valgrind)" >&2; exit 127; }
[ -x "$driver" ] || { echo "callgrind-budget: no $driver (build the bench target)" >&2; exit 2; }

ir() {  # ir <op> <n>: total instructions of one run; fails, saying why, when the driver does
  local out
  if ! out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$driver" "$1" "$2" 2>&1); then
    echo "callgrind-budget: '$driver $1 $2' failed:" >&2
    echo "$out" | grep -v '^==' >&2
    return 1
  fi
  echo "$out" | awk '/Collected/ {print $4}'
}
n1=20000
n2=220000
fail=0
printf '%-28s %10s %8s %s\n' op "instr/op" budget verdict
while read -r op budget; do
  case "$op" in ''|'#'*) continue ;; esac
  if ! a=$(ir "$op" $n1) || ! b=$(ir "$op" $n2) || [ -z "$a" ] || [ -z "$b" ]; then
    printf '%-28s %10s %8s %s\n' "$op" "?" "$budget" "FAILED to measure"
    fail=1
    continue
  fi
  per=$(awk -v a="$a" -v b="$b" -v n=$((n2 - n1)) 'BEGIN {printf "%.2f", (b - a) / n}')
  if awk -v p="$per" -v q="$budget" 'BEGIN {exit !(p > q)}'; then
    verdict=$(awk -v p="$per" -v q="$budget" 'BEGIN {printf "OVER by %.2f (%.1f%%)", p - q, 100 * (p - q) / q}')
    fail=1
  else
    verdict=ok
  fi
  printf '%-28s %10s %8s %s\n' "$op" "$per" "$budget" "$verdict"
done <"$budgets"
exit $fail
