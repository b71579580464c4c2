#!/usr/bin/env bash
# The report's browser test (tests/search/report/test_browser.py) opens the HTML report in Debian's
# Chromium. Install it when missing (needs apt-get and root); say so, and go on, when it cannot be.
set -uo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "chromium is missing and cannot be installed here (needs apt-get as root): the report's browser test will fail" >&2
    exit 0
fi
echo "installing Debian's chromium (the report's browser test needs it)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "could not install chromium: the report's browser test will fail" >&2
exit 0
