#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the console's browser tests.
#
#   scripts/chromium.sh    install Debian's 'chromium' and 'chromium-driver' when missing, then
#                          print the browser's path and the driver's path on two lines of stdout
#
# Only Debian's packages are used (CI reaches package registries, not browser download CDNs).
set -euo pipefail

find_browser() {
  command -v chromium || command -v chromium-browser || true
}

find_driver() {
  command -v chromedriver || { [ -x /usr/lib/chromium/chromedriver ] && echo /usr/lib/chromium/chromedriver; } || true
}

if [ -z "$(find_browser)" ] || [ -z "$(find_driver)" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium or its driver is not installed and installing them needs root: run" \
      "'apt-get install chromium chromium-driver' as root, then this script again." >&2
    exit 1
  fi
  echo "installing Chromium and chromium-driver (Debian's packages)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
fi

browser="$(find_browser)"
driver="$(find_driver)"
if [ -z "$browser" ] || [ -z "$driver" ]; then
  echo "apt-get installed chromium and chromium-driver but the browser or the driver is missing" >&2
  exit 1
fi
echo "$browser"
echo "$driver"
