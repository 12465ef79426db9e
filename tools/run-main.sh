#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds (Release) and runs the
# event-store server with its embedded store in ./data, a synthetic load of 200 events/s, the status
# page and /metrics:
#   http://127.0.0.1:8080/          the status page (open it in a browser)
#   http://127.0.0.1:8080/metrics   (Ctrl-C stops it cleanly)
# Arguments replace the defaults below (see build/server/eventstore-server --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target eventstore-server
if [ $# -eq 0 ]; then
  set -- --data-dir ./data --listen 127.0.0.1:8080 --demo-rate 200
  echo "run-main: status page http://127.0.0.1:8080/ , metrics http://127.0.0.1:8080/metrics" >&2
fi
exec build/server/eventstore-server "$@"
