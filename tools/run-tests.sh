#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing, then
#   1. Release build: every test (unit, concurrency, install/find_package, interop);
#   2. ThreadSanitizer build: the concurrency tests;
#   3. AddressSanitizer + UBSan build: the unit and concurrency tests;
#   4. clang Debug build with -Wthread-safety as an error (the store's lock annotations,
#      store/internal/mutex.h) and assertions on: the unit and concurrency tests.
# Usage: tools/run-tests.sh [--quick]   (--quick: the Release build only)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
jobs=$(nproc)

run() {  # run <build-dir> <ctest label regex or ''> <cmake args...>
  local dir=$1 labels=$2
  shift 2
  echo "=== $dir: configure and build"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== $dir: test${labels:+ (labels: $labels)}"
  if [ -n "$labels" ]; then
    ctest --test-dir "$dir" -L "$labels" --output-on-failure -j "$jobs" --timeout 900
  else
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 900
  fi
}

start=$(date +%s)
run build "" -DCMAKE_BUILD_TYPE=Release
if [ "${1:-}" != "--quick" ]; then
  common=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETRICS_BUILD_BENCH=OFF -DMETRICS_BUILD_SERVER=OFF)
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run build-tsan "concurrency" "${common[@]}" -DMETRICS_SANITIZE=thread
  UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1" ASAN_OPTIONS="detect_leaks=1" \
    run build-asan "unit|concurrency" "${common[@]}" -DMETRICS_SANITIZE=address,undefined
  echo "=== build-clang: configure and build (clang, Debug, -Werror=thread-safety)"
  cmake -S . -B build-clang -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug -DMETRICS_BUILD_BENCH=OFF -DMETRICS_BUILD_SERVER=OFF \
    "-DCMAKE_CXX_FLAGS=-Wthread-safety -Werror=thread-safety" >/dev/null
  cmake --build build-clang -j "$jobs"
  echo "=== build-clang: test (labels: unit|concurrency)"
  ctest --test-dir build-clang -L "unit|concurrency" --output-on-failure -j "$jobs" --timeout 900
fi
echo "=== all test runs passed in $(( $(date +%s) - start )) s"
