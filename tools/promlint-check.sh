#!/usr/bin/env bash
# Lints a Prometheus text exposition with `promtool check metrics`.
#   tools/promlint-check.sh URL    scrape it (curl) and lint the body
#   tools/promlint-check.sh FILE   lint a file
#   tools/promlint-check.sh -      lint standard input
# Exits 0 when promtool finds nothing, non-zero with promtool's findings otherwise, and 127 with a
# clear message when promtool (Debian package: prometheus) or curl is missing.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 URL|FILE|-" >&2
  exit 2
fi
PROMTOOL=${PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}
if [ ! -x "$PROMTOOL" ]; then
  echo "promlint-check: promtool not found; install it with: apt-get install prometheus" >&2
  exit 127
fi

input=$(mktemp)
trap 'rm -f "$input"' EXIT
case "$1" in
  http://* | https://*)
    if ! command -v curl >/dev/null; then
      echo "promlint-check: curl not found; install it with: apt-get install curl" >&2
      exit 127
    fi
    # Ask for text 0.0.4 explicitly: promtool reads the text format.
    if ! curl -fsS -H 'Accept: text/plain;version=0.0.4' "$1" -o "$input"; then
      echo "promlint-check: could not scrape $1" >&2
      exit 1
    fi
    ;;
  -) cat >"$input" ;;
  *)
    if [ ! -r "$1" ]; then
      echo "promlint-check: cannot read $1" >&2
      exit 2
    fi
    cp "$1" "$input"
    ;;
esac

findings=$("$PROMTOOL" check metrics <"$input" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
  echo "promlint-check: promtool check metrics failed (exit $rc):"
  echo "$findings"
  exit $rc
fi
[ -n "$findings" ] && echo "$findings"
echo "promlint-check: OK ($(grep -vc '^#' "$input") samples)"
exit 0
