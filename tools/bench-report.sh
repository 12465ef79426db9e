#!/usr/bin/env bash
# Writes bench/RESULTS.md: one table of ours vs prometheus-cpp vs the baselines (every ratio from
# one run of build/bench/metrics_bench, medians of repetitions), memory per series, the event
# store's figures, and the callgrind instruction counts with their CI budgets.
#   tools/bench-report.sh [--reps N] [--min-time S] [--quick] [--out FILE] [BUILD_DIR=build]
# --quick: 1 repetition at 0.01 s per benchmark (checks the pipeline; figures are rough).
# Builds the Release bench targets in BUILD_DIR first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=5 min_time=0.2 out=bench/RESULTS.md build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --min-time) min_time=$2; shift 2 ;;
    --quick) reps=1 min_time=0.01; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    -*) echo "bench-report: unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
if [ ! -x "$build/bench/metrics_bench" ] || [ ! -x "$build/bench/metrics_callgrind_driver" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target metrics_bench metrics_callgrind_driver
fi
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
[ "$type" = Release ] || echo "bench-report: warning: $build is a '$type' build, not Release" >&2

cg=$(mktemp)
trap 'rm -f "$cg"' EXIT
# Over-budget ops are reported in the table, not fatal here (CI's ctest enforces the budgets).
tools/callgrind-budget.sh "$build" >"$cg" 2>&1 || true
python3 tools/bench-report.py --binary "$build/bench/metrics_bench" --reps "$reps" \
  --min-time "$min_time" --callgrind "$cg" --out "$out"
