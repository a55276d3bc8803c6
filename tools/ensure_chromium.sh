#!/usr/bin/env bash
# The browser test drives Debian's Chromium (no browser download). Under CI it must run, so CI
# installs the package; elsewhere we install only if we can without asking, else the test skips.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
elif [ "${CI:-}" = "true" ]; then
  echo "CI needs Debian's chromium for the browser test and cannot install it (not root / no apt-get)" >&2
  exit 1
else
  echo "NOTICE: no Chromium here and no way to install it; the browser test will be skipped." >&2
fi
