#!/usr/bin/env bash
# tools/bench-report.sh end to end at --quick: it must write every row of the comparison table
# with both sides measured and a ratio, and the callgrind section. (The figures themselves are
# not judged here: the machines are shared; the callgrind_budgets test judges instructions.)
set -euo pipefail
src=$1 build=$2
out=$(mktemp)
trap 'rm -f "$out" "$out"-*.svg' EXIT
"$src/tools/bench-report.sh" --quick --out "$out" "$build" 2>/dev/null
fail=0
expect() {  # expect <regex> <what>
  if ! grep -Eq -- "$1" "$out"; then echo "MISSING: $2 (/$1/)"; fail=1; fi
}
num='[0-9.]+ (ns|µs|ms)'
ratio='\*\*[0-9.]+×\*\*'
for t in 1 2; do
  expect "^\| Counter increment \(bound handle\) \| $t \| $num \| $num \| $num \| $num \| $ratio" "counter row, ${t}T"
  expect "^\| Label lookup \+ increment .* \| $t \| $num \| $num \| .* \| $ratio" "label lookup row, ${t}T"
  expect "^\| Histogram observe \(prometheus-cpp with 10 buckets\) \| $t \| $num \| $num \| .* \| $ratio" "histogram row, ${t}T"
done
expect "^\| Scrape 10,000 counter series .* \| $num \| $num \| \| \| $ratio" "scrape 10k row"
expect "^\| our protobuf \(own wire encoder\) \| $num \| $ratio" "protobuf scrape row"
expect "^\| protobuf via libprotobuf messages \| $num \| $ratio" "libprotobuf scrape row"
expect "^- CPU: .+ — [0-9]+ CPUs" "CPU model line"
expect "^- Date: 20[0-9]{2}-" "date line"
expect "^\| counter series \(heap\) \| [0-9,]+ B" "counter memory row"
expect "^\| \`BM_Store_Append_InstrumentationOnly<1>\` \| $num" "store instrumentation row"
expect "^store_event +[0-9.]+ +[0-9]+ " "callgrind store_event line"
# The charts (python3-matplotlib): drawn next to the report and linked from it.
for chart in hot-path memory; do
  f="$out-$chart.svg"
  if [ ! -s "$f" ] || ! grep -q '<svg' "$f"; then echo "MISSING: chart $f"; fail=1; fi
  expect "^!\[[^]]*\]\($(basename "$f")\)" "link to the $chart chart"
done
[ $fail -eq 0 ] || { echo "--- report:"; cat "$out"; exit 1; }
echo "bench-report: all rows present"
