#!/bin/sh
# Container entrypoint: the event-store server with the API on :8080 (dual-stack: Fly's proxy comes
# over IPv4) and /metrics + /healthz on :9091, a port no public service maps (on Fly it is reached
# only over the private network, by Fly's metrics scraper or your own Prometheus).
#
# Secrets arrive as environment variables (`fly secrets set EVENTSTORE_API_TOKENS=...`): tokens
# separated by commas or newlines. They are written to files the server reads (and re-reads on
# SIGHUP), readable by this process only.
set -eu
umask 077
dir=/run/eventstore
mkdir -p "$dir"
set -- --data-dir /data --listen :::8080 --metrics-listen :::9091 "$@"
if [ -n "${EVENTSTORE_API_TOKENS:-}" ]; then
  printf '%s\n' "$EVENTSTORE_API_TOKENS" | tr ',' '\n' > "$dir/api-tokens"
  set -- "$@" --auth-token-file "$dir/api-tokens"
fi
if [ -n "${EVENTSTORE_METRICS_TOKENS:-}" ]; then
  printf '%s\n' "$EVENTSTORE_METRICS_TOKENS" | tr ',' '\n' > "$dir/metrics-tokens"
  set -- "$@" --metrics-auth-token-file "$dir/metrics-tokens"
fi
# exec: the server is PID 1's child no more, it is PID 1, and gets SIGTERM from `fly deploy`.
exec /usr/local/bin/eventstore-server "$@"
