#!/usr/bin/env bash
# The web UI in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright for
# Python through its executable path; no browser is ever downloaded), against
# `reelforge serve` on a free loopback port with a throw-away data dir and one worker.
#
#   bash tests/browser/run.sh [path/to/reelforge] [pytest arguments…]
#       (default binary: target/debug/reelforge; e.g. `-k resume -x`)
#
# Needs REELFORGE_BROWSER_VENV (a virtualenv with playwright, pytest and aiosmtpd;
# scripts/test.sh makes one), REELFORGE_TEST_WEBHOOK_PY (a python with `standardwebhooks`,
# for the webhook receiver: scripts/test.sh need_webhooks), ffmpeg (the clips are generated)
# and chromium (REELFORGE_CHROMIUM to use another path). Without one of them the tests that
# need it are skipped, or fail under CI.
# Screenshots and the server log go to REELFORGE_BROWSER_ARTIFACTS (default: a temporary
# dir, printed at the end).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

venv=${REELFORGE_BROWSER_VENV:?set REELFORGE_BROWSER_VENV (scripts/test.sh does)}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    export REELFORGE_BIN=$1
    shift
fi
# Playwright must use the system browser, never fetch one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# No __pycache__ left in the work tree.
export PYTHONDONTWRITEBYTECODE=1
# A hung browser or server must not hold the whole run: every wait has its own timeout, and
# this bounds the run.
exec timeout --kill-after=30 1200 \
    "$venv/bin/python" -m pytest -c tests/browser/pytest.ini --rootdir tests/browser \
    tests/browser "$@"
