#!/usr/bin/env bash
# Installs, with apt-get, every Debian 12 package the project builds, tests and benchmarks with.
# Idempotent: packages already present are left alone. Needs root (or sudo) on a fresh machine.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ pkg-config git ca-certificates curl
  libabsl-dev libconcurrentqueue-dev libcpp-httplib-dev zlib1g-dev libssl-dev openssl nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus-cpp-dev prometheus prometheus-pushgateway python3 python3-prometheus-client
  clang clang-format valgrind wrk
  protobuf-compiler libprotobuf-dev chromium python3-matplotlib
  postgresql libpq-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
# The prometheus packages try to start their daemons; on a machine without an init system that is harmless.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
