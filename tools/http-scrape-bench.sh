#!/usr/bin/env bash
# Times scrapes over HTTP of the same 10,000 counter series + 100 histograms from our exporter and
# from prometheus-cpp's Exposer (build/bench/http_scrape_peers), plain and gzip, with curl on
# loopback, and prints the median of N scrapes each and the ratios.
#   tools/http-scrape-bench.sh [N=50] [SERIES=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
series=${2:-10000}
bin=build/bench/http_scrape_peers
[ -x "$bin" ] || { echo "missing $bin: build with prometheus-cpp installed" >&2; exit 1; }

fifo=$(mktemp -u)
mkfifo "$fifo"
"$bin" "$series" <"$fifo" >"$fifo.out" &
pid=$!
exec 3>"$fifo"  # keeps the peers' stdin open; closing it stops them
trap 'exec 3>&-; wait $pid 2>/dev/null; rm -f "$fifo" "$fifo.out"' EXIT
for _ in $(seq 100); do grep -q ours= "$fifo.out" 2>/dev/null && break; sleep 0.1; done
read -r ours prom < <(sed 's/ours=\([0-9]*\) promcpp=\([0-9]*\)/\1 \2/' "$fifo.out")

median() {  # median <port> <curl args...>: median seconds of n scrapes
  local port=$1
  shift
  for _ in $(seq "$n"); do
    curl -s -o /dev/null -w '%{time_total}\n' "$@" "http://127.0.0.1:$port/metrics"
  done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
printf '%-8s %12s %12s %8s\n' mode ours_ms promcpp_ms ratio
for mode in plain gzip; do
  args=()
  [ "$mode" = gzip ] && args=(-H 'Accept-Encoding: gzip')
  o=$(median "$ours" "${args[@]}")
  p=$(median "$prom" "${args[@]}")
  awk -v m="$mode" -v o="$o" -v p="$p" 'BEGIN {printf "%-8s %12.2f %12.2f %7.1fx\n", m, o*1000, p*1000, p/o}'
done
