#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds (Release) and runs it.
# Arguments are passed to the program.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
exec build/server/metrics-demo "$@"
