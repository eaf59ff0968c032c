#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the dashboard's browser tests; install it from Debian's packages when
# missing. Never downloads a browser any other way. Exit status is 0 even if the install fails: the browser tests
# decide (they skip locally, and fail under CI=true, when no chromium is found).
set -u
CHROMIUM=${TOKENBANK_TEST_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "browser: $CHROMIUM is missing and apt-get is not available; browser tests will skip (or fail under CI=true)" >&2
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
echo "browser: installing Debian's chromium"
if "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null; then
  echo "browser: $("$CHROMIUM" --version 2>/dev/null || echo installed)"
else
  echo "browser: could not install chromium; browser tests will skip (or fail under CI=true)" >&2
fi
exit 0
