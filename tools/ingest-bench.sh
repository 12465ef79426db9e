#!/usr/bin/env bash
# HTTP ingest benchmark of eventstore-server as users would drive it: Debian's wrk over keep-alive
# connections, the server fsyncing every batch, 100-byte event payloads, and a bare cpp-httplib
# handler (build/bench/bare-httplib-server) measured in the same run as the ceiling.
#   tools/ingest-bench.sh [--quick] [--pg] [--out FILE] [BUILD_DIR=build]
# Runs, each against a fresh server on a fresh data dir and a free loopback port:
#   (a)   64 connections, 1 event per request     (tools/wrk/ingest-single.lua)
#   (b)   16 connections, 20 events per request   (tools/wrk/ingest-batch20.lua)
#   (a, b) again with the server's --no-metrics, for metrics on vs off
#   (c)   (a)'s wrk command against the bare handler
#   --pg: (a) and (b) again with --pg-url, each on a fresh database of a PostgreSQL 15 cluster the
#         script starts in its temp dir (fsync on, unix socket; as `postgres` when run as root)
# wrk -t2 --latency --timeout 10s, 10 s per run (--quick: 3 s). Prints a markdown section
# "## HTTP ingest (wrk, keep-alive)"; --out FILE replaces it inside FILE between
# <!-- ingest:begin --> and <!-- ingest:end --> (appended when absent), e.g. --out bench/RESULTS.md.
# Exit 1 if a correctness check fails (then --out FILE is left alone): any non-2xx response, or
# events stored (the server's final position) outside [acked, acked + connections x events/request],
# or /metrics' sum(events_stored_total) != the final position.
# Environment:
#   INGEST_SERVER_FLAGS     extra server flags (default "--http-threads 64"; "" for a binary
#                           without that flag)
#   INGEST_SKIP_NO_METRICS  1: skip the --no-metrics runs (a binary without that flag)
#   INGEST_STREAMS          streams per wrk thread that requests cycle over (default 1000)
#   TMPDIR                  where the data dirs go (fsync cost depends on that file system)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 pg=0 out="" build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --pg) pg=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "ingest-bench: --out needs a FILE" >&2; exit 2; }; out=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) echo "ingest-bench: unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
duration=10
[ "$quick" = 1 ] && duration=3
# ${VAR-default}, not ${VAR:-default}: an empty INGEST_SERVER_FLAGS means "no extra flags".
server_flags=${INGEST_SERVER_FLAGS---http-threads 64}
read -r -a extra_flags <<<"$server_flags"
skip_no_metrics=${INGEST_SKIP_NO_METRICS:-0}
streams=${INGEST_STREAMS:-1000}

log() { echo "ingest-bench: $*" >&2; }

server=$build/server/eventstore-server
bare=$build/bench/bare-httplib-server
# Build only what is missing (never a full build: other work may share this machine and build dir).
missing=()
[ -x "$server" ] || missing+=(eventstore-server)
[ -x "$bare" ] || missing+=(bare-httplib-server)
if [ ${#missing[@]} -gt 0 ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  log "building ${missing[*]} in $build"
  cmake --build "$build" --target "${missing[@]}"
fi
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
for tool in curl python3 timeout; do
  command -v "$tool" >/dev/null || { log "needs $tool"; exit 2; }
done

# Before anything of ours runs: the load average says how busy the machine already was.
started_at=$(date -Iseconds)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ingest-bench.XXXXXX")
server_pid=""
pg_dir="" pg_as=()
cleanup() {
  if [ -n "$pg_dir" ]; then
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  # Stop a server still running (the script failed or was interrupted mid-run), then drop the
  # data dirs; the SIGKILL fallback bounds the wait.
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fs_type=$(df --output=fstype "$tmp" | tail -n 1)  # stat -f says "ext2/ext3" for ext4

results=$tmp/results.txt   # one line per run: key=value fields, read by tools/ingest-report.py
: >"$results"
failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }

# start_server NAME CMD...: starts CMD in the background (stdout and stderr to $tmp/NAME.out and
# .err), waits for its "listening <port>" line and sets server_pid and port.
start_server() {
  local name=$1
  shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  server_pid=$!
  port=""
  for _ in $(seq 200); do  # up to 10 s (recovery of an empty dir takes milliseconds)
    port=$(sed -n 's/^listening \([0-9][0-9]*\)$/\1/p' "$tmp/$name.out")
    [ -n "$port" ] && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" || true
      server_pid=""
      log "$name: $1 exited before listening:"
      cat "$tmp/$name.err" >&2
      if grep -q 'unknown flag' "$tmp/$name.err"; then
        log "a binary without --http-threads / --no-metrics: run with" \
          'INGEST_SERVER_FLAGS="" INGEST_SKIP_NO_METRICS=1'
      fi
      exit 1
    fi
    sleep 0.05
  done
  log "$name: no 'listening <port>' from $1 within 10 s"
  exit 1
}

# stop_server NAME: SIGTERM (the server drains, fsyncs and prints its final line), waits up to 60 s,
# then SIGKILL; fails the script unless the server exited 0.
stop_server() {
  local name=$1 rc=0
  kill -TERM "$server_pid"
  for _ in $(seq 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$server_pid" 2>/dev/null; then
    log "$name: server still running 60 s after SIGTERM; killing it"
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" || rc=$?
  server_pid=""
  if [ "$rc" -ne 0 ]; then
    log "$name: server exited with $rc:"
    tail -n 20 "$tmp/$name.err" >&2
    exit 1
  fi
}

# run_wrk NAME CONNECTIONS SCRIPT: sets the wrk_* variables from the script's done() line.
run_wrk() {
  local name=$1 conns=$2 script=$3 line
  # wrk ends itself after -d; timeout bounds a wedged client (e.g. a server that stopped reading).
  if ! timeout --kill-after=5 $((duration + 30)) wrk -t2 -c"$conns" -d"${duration}s" --timeout 10s \
      --latency -s "$script" "http://127.0.0.1:$port/" -- "$streams" >"$tmp/$name.wrk" 2>&1; then
    log "$name: wrk failed:"
    cat "$tmp/$name.wrk" >&2
    exit 1
  fi
  line=$(grep '^ingest-result ' "$tmp/$name.wrk" | tail -n 1)
  [ -n "$line" ] || { log "$name: no ingest-result line from wrk:"; cat "$tmp/$name.wrk" >&2; exit 1; }
  # "ingest-result k=v k=v ..." -> wrk_k=v; the values are integers printed by our done().
  wrk_requests="" wrk_duration_us="" wrk_non2xx="" wrk_connect="" wrk_read="" wrk_write=""
  wrk_timeout="" wrk_p50_us="" wrk_p99_us=""
  local kv
  for kv in ${line#ingest-result }; do
    case "$kv" in
      [a-z0-9_]*=[0-9]*) printf -v "wrk_${kv%%=*}" '%s' "${kv#*=}" ;;
      *) log "$name: unexpected field '$kv' from wrk"; exit 1 ;;
    esac
  done
  for kv in "$wrk_requests" "$wrk_duration_us" "$wrk_non2xx" "$wrk_connect" "$wrk_read" \
      "$wrk_write" "$wrk_timeout" "$wrk_p50_us" "$wrk_p99_us"; do
    [ -n "$kv" ] || { log "$name: incomplete ingest-result line from wrk: $line"; exit 1; }
  done
}

# metrics_sum: sum(events_stored_total) over its event_type series, from one scrape.
metrics_sum() {
  curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" |
    awk '/^events_stored_total\{/ {s += $NF} END {printf "%.0f\n", s}'
}

# settled_metrics_sum: wrk stops with up to one request per connection in flight, which the server
# still completes after wrk has gone; scrape until two scrapes 0.25 s apart agree (bounded, 5 s).
settled_metrics_sum() {
  local prev cur
  prev=$(metrics_sum)
  for _ in $(seq 20); do
    sleep 0.25
    cur=$(metrics_sum)
    [ "$cur" = "$prev" ] && break
    prev=$cur
  done
  echo "$cur"
}

# run_scenario NAME LABEL KIND CONNECTIONS EVENTS_PER_REQUEST SCRIPT
#   KIND: ours (metrics on), ours-nometrics (--no-metrics), bare (the cpp-httplib ceiling).
run_scenario() {
  local name=$1 label=$2 kind=$3 conns=$4 epr=$5 script=$6
  local cmd stored msum="" acked check=ok data=""
  case "$kind" in
    ours|ours-nometrics)
      data=$(mktemp -d "$tmp/data-$name.XXXXXX")
      cmd=("$server" --data-dir "$data" --listen 127.0.0.1:0 --fsync every-batch "${extra_flags[@]}")
      [ "$kind" = ours-nometrics ] && cmd+=(--no-metrics)
      ;;
    bare) cmd=("$bare" --listen 127.0.0.1:0 --threads 64) ;;
    pg)
      local db=${name//-/_}
      "${pg_as[@]}" "$pg_bin/psql" -q -h "$pg_dir" -p "$pg_port" -U postgres -d postgres \
        -c "CREATE DATABASE $db" >/dev/null
      cmd=("$server" --pg-url "host=$pg_dir port=$pg_port user=postgres dbname=$db"
        --listen 127.0.0.1:0 "${extra_flags[@]}")
      ;;
  esac
  log "$label: ${cmd[*]}; wrk -t2 -c$conns -d${duration}s $(basename "$script")"
  start_server "$name" "${cmd[@]}"
  run_wrk "$name" "$conns" "$script"
  if [ "$kind" = ours ] || [ "$kind" = pg ]; then msum=$(settled_metrics_sum); fi
  stop_server "$name"
  case "$kind" in
    bare) stored=$(sed -n 's/^bare-httplib-server: stopped after \([0-9]*\) requests$/\1/p' "$tmp/$name.err") ;;
    *) stored=$(sed -n 's/^eventstore-server: stopped cleanly at position \([0-9]*\)$/\1/p' "$tmp/$name.err") ;;
  esac
  stored=$(tail -n 1 <<<"$stored")
  if [ -z "$stored" ]; then
    log "$name: no final 'stopped ...' line on the server's stderr:"
    tail -n 20 "$tmp/$name.err" >&2
    exit 1
  fi
  # Each run's data dir goes as soon as it is read: 10 s of batched ingest is hundreds of MB.
  if [ -n "$data" ]; then rm -rf "$data"; fi

  # acked: events the server acknowledged. wrk stops with at most one request per connection in
  # flight, whose events may be stored without their 201 having been counted, hence the slack.
  # For the bare handler the "stored" count is requests it answered, against the same bound.
  acked=$(((wrk_requests - wrk_non2xx) * epr))
  local slack=$((conns * epr))
  log "$label: $wrk_requests requests ($wrk_non2xx non-2xx, socket errors connect $wrk_connect" \
    "read $wrk_read write $wrk_write timeout $wrk_timeout); acked $acked, stored $stored" \
    "(allowed $acked..$((acked + slack)))${msum:+, /metrics sum(events_stored_total) $msum}"
  if [ "$wrk_requests" -eq 0 ]; then
    fail "$label: no request completed"; check=FAIL
  fi
  if [ "$wrk_non2xx" -ne 0 ]; then
    fail "$label: $wrk_non2xx non-2xx responses"; check=FAIL
  fi
  if [ "$stored" -lt "$acked" ] || [ "$stored" -gt $((acked + slack)) ]; then
    fail "$label: stored $stored outside [$acked, $((acked + slack))]"; check=FAIL
  fi
  if [ -n "$msum" ] && [ "$msum" != "$stored" ]; then
    fail "$label: /metrics sum(events_stored_total) $msum != final position $stored"; check=FAIL
  fi
  echo "name=$name kind=$kind conns=$conns epr=$epr requests=$wrk_requests duration_us=$wrk_duration_us" \
    "non2xx=$wrk_non2xx connect=$wrk_connect read=$wrk_read write=$wrk_write timeout=$wrk_timeout" \
    "p50_us=$wrk_p50_us p99_us=$wrk_p99_us stored=$stored acked=$acked metrics_sum=${msum:--}" \
    "check=$check" >>"$results"
}

# --pg: a throwaway PostgreSQL 15 cluster (no TCP listener), one database per run.
pg_bin=/usr/lib/postgresql/15/bin
pg_port=5433
if [ "$pg" = 1 ]; then
  [ -x "$pg_bin/initdb" ] || { log "--pg needs PostgreSQL 15's server (tools/install-deps.sh)"; exit 2; }
  pg_dir=$tmp/pg
  mkdir -p "$pg_dir"
  if [ "$(id -u)" -eq 0 ]; then  # PostgreSQL refuses to run as root
    chown postgres "$tmp" "$pg_dir"
    pg_as=(runuser -u postgres --)
  fi
  "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 >"$tmp/initdb.log" 2>&1 ||
    { log "initdb failed:"; cat "$tmp/initdb.log" >&2; exit 1; }
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=''" start >/dev/null ||
    { log "pg_ctl start failed:"; cat "$pg_dir/server.log" >&2; exit 1; }
fi

# Metrics on and off of one scenario run back to back, so that drift in the machine's load (a
# shared 2-core VM) falls on both sides of that ratio alike; the bare ceiling right after (a).
run_scenario a "(a) 1 event/request" ours 64 1 tools/wrk/ingest-single.lua
if [ "$skip_no_metrics" != 1 ]; then
  run_scenario a-off "(a) --no-metrics" ours-nometrics 64 1 tools/wrk/ingest-single.lua
fi
run_scenario c "(c) bare cpp-httplib" bare 64 1 tools/wrk/ingest-single.lua
run_scenario b "(b) 20 events/request" ours 16 20 tools/wrk/ingest-batch20.lua
if [ "$skip_no_metrics" != 1 ]; then
  run_scenario b-off "(b) --no-metrics" ours-nometrics 16 20 tools/wrk/ingest-batch20.lua
fi

if [ "$pg" = 1 ]; then
  run_scenario a-pg "(a) --pg-url" pg 64 1 tools/wrk/ingest-single.lua
  run_scenario b-pg "(b) --pg-url" pg 16 20 tools/wrk/ingest-batch20.lua
fi

report=(python3 tools/ingest-report.py --results "$results" --date "$started_at"
  --load "$load_at_start" --duration "$duration" --server-flags "$server_flags"
  --fs "$fs_type" --streams "$streams")
if [ "$failures" -ne 0 ]; then
  "${report[@]}"
  log "$failures check(s) failed${out:+; $out left unchanged}"
  exit 1
fi
[ -n "$out" ] && report+=(--out "$out")
"${report[@]}"
