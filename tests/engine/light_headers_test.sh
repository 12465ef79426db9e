#!/usr/bin/env bash
# What a user of engine/registry.h compiles: the handles and the per-thread lookup caches, never
# the family's series index (its btree and mutex, engine/internal/family.h).
# Usage: light_headers_test.sh CXX SOURCE_DIR
set -euo pipefail
cxx=$1 src=$2
out=$(echo '#include "engine/registry.h"' | "$cxx" -std=c++20 -I"$src" -E -x c++ -)
fail=0
for needle in 'class FamilyImpl {' 'btree_map' 'engine/internal/family.h"'; do
  if grep -qF "$needle" <<<"$out"; then
    echo "engine/registry.h brings in '$needle'" >&2
    fail=1
  fi
done
echo "engine/registry.h preprocesses to $(wc -l <<<"$out") lines"
exit $fail
