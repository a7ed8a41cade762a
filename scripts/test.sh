#!/usr/bin/env bash
# Run the whole test suite: formatting, lints, and every test target.
#
#   bash scripts/test.sh                  # what CI runs (through .ci/run)
#   bash scripts/test.sh -- some_filter   # extra arguments go to `cargo test`
#
# 1. Installs what the tests need when it is missing (see "Services" below).
# 2. cargo fmt --check
# 3. scripts/sqlx-prepare.sh --check: the committed query caches (crates/*/.sqlx) still match
#    the statements and migrations (checked against live databases made from migrations/)
# 4. cargo clippy --workspace --all-targets --locked -- -D warnings
# 4b. scripts/check-monitoring.sh: promtool check and unit-test the alert rules
# 5. cargo test --workspace --locked --no-fail-fast -- --test-threads=2   (unit, integration,
#    doc tests; the repository suite runs on SQLite and on a throw-away PostgreSQL cluster;
#    tests/e2e/newcomer.rs runs README.md's tour from the file itself)
# 6. the HTTP API suite (tests/api) again with REELFORGE_TEST_APP_DB=postgres
# 7. the API contract (tests/contract/run.sh): openapi-spec-validator and a bounded
#    schemathesis run against the debug binary
# 8. the browser tests (tests/browser/run.sh): the web UI in headless Chromium (Playwright,
#    pytest) against the debug binary
# 9. the distributed test (tests/distributed/run.sh): nginx, 2 API and 3 worker processes on
#    its own PostgreSQL cluster, with a worker, an API process and PostgreSQL knocked over
# Every step runs even if an earlier one failed, so one run shows every problem; the script
# exits non-zero if any step failed. Tests that need a server (HTTP, S3, SMTP) start
# their own throw-away instance on a free loopback port and stop it; PostgreSQL is the
# exception: this script starts one throw-away cluster for the whole run (need_postgres).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

if [ -n "${CI:-}" ] && [ "${CI}" != "false" ]; then
    # Plain logs, and no incremental-compilation state in a fresh clone that is thrown away.
    export CARGO_TERM_COLOR=never
    export CARGO_INCREMENTAL=0
fi

# Install Debian packages (one apt-get update per run), as root or through sudo.
apt_updated=
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "missing $*; this is not a Debian-like system, install it by hand"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing $*; run as root or install sudo"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        "${sudo[@]}" apt-get update -q </dev/null
        apt_updated=1
    fi
    say "apt-get install -y $*"
    "${sudo[@]}" apt-get install -y -q "$@" </dev/null
}

# --- Toolchain ------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust with rustup (https://rustup.rs), then run this again"
for component in rustfmt clippy; do
    sub=${component/rustfmt/fmt}
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 || die "cargo $sub is missing and rustup is not installed"
        say "rustup component add $component"
        rustup component add "$component"
    fi
done
if ! command -v cc >/dev/null 2>&1; then
    # aws-lc-sys and SQLite compile C sources (cc builder; cmake is not needed).
    apt_install gcc libc6-dev
fi

# --- Services the tests need -----------------------------------------------------------------
# One function per external program or server. Each installs what is missing and exports
# what the tests read; the tests themselves start and stop any server they use.
need_ffmpeg() { # tests/media (real ffmpeg runs) and the planner's end-to-end checks
    if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
        apt_install ffmpeg
    fi
}
# PostgreSQL: need_postgres (scripts/lib/postgres.sh) exports REELFORGE_TEST_PG_URL.
# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh
# S3 storage tests (tests/storage) read REELFORGE_TEST_MOTO: the moto_server program (moto 5,
# an S3-compatible server); each test starts its own on a free loopback port and kills it.
# Already set, or moto_server on the PATH, is used as is; otherwise moto goes into a virtual
# environment under the user's cache dir (Debian's python3 refuses a system-wide pip install).
need_moto() {
    if [ -n "${REELFORGE_TEST_MOTO:-}" ]; then
        say "S3 tests use REELFORGE_TEST_MOTO=$REELFORGE_TEST_MOTO from the environment"
        return
    fi
    local program
    program=$(command -v moto_server 2>/dev/null || true)
    if [ -z "$program" ] || ! "$program" --help >/dev/null 2>&1; then
        local venv=${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/moto-venv
        program=$venv/bin/moto_server
        "$program" --help >/dev/null 2>&1 || make_venv "$venv" 'moto[server]>=5,<6'
        "$program" --help >/dev/null 2>&1 || die "moto_server does not run: $program"
    fi
    export REELFORGE_TEST_MOTO=$program
    say "S3 tests use $program"
}
# A fresh virtual environment at $1 with the pip packages $2… (Debian's python3 refuses a
# system-wide pip install).
make_venv() {
    local venv=$1
    shift
    command -v python3 >/dev/null 2>&1 || apt_install python3
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
    say "pip install $* into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$@" </dev/null
}
# The API contract run (tests/contract/run.sh): schemathesis and openapi-spec-validator in a
# virtual environment under the user's cache dir, and curl to fetch the document.
need_contract() {
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/contract-venv
    if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1 ||
        ! "$venv/bin/openapi-spec-validator" --version >/dev/null 2>&1; then
        make_venv "$venv" 'schemathesis>=4.32,<5' 'openapi-spec-validator>=0.9,<0.10'
    fi
    command -v curl >/dev/null 2>&1 || apt_install curl
    export REELFORGE_CONTRACT_VENV=$venv
}
# The independent tus client (crates/reelforge-testkit/src/tus.rs runs tests/tus/tuspy_upload.py):
# tuspy in a virtual environment; REELFORGE_TEST_TUSPY names its python.
need_tuspy() {
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/tus-venv
    if ! "$venv/bin/python" -c 'import tusclient' >/dev/null 2>&1; then
        make_venv "$venv" 'tuspy>=1.1,<2'
    fi
    export REELFORGE_TEST_TUSPY=$venv/bin/python
}
# The webhook receiver of the tests (crates/reelforge-testkit/src/webhooks.rs runs
# tests/webhooks/receiver.py): the `standardwebhooks` package verifies every delivery, an
# implementation independent of ours. REELFORGE_TEST_WEBHOOK_PY names its python.
need_webhooks() {
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/webhook-venv
    if ! "$venv/bin/python" -c 'import standardwebhooks' >/dev/null 2>&1; then
        make_venv "$venv" 'standardwebhooks>=1.0,<2'
    fi
    export REELFORGE_TEST_WEBHOOK_PY=$venv/bin/python
}
# The browser tests (tests/browser/run.sh): Debian's chromium, driven by Playwright for Python
# through its executable path (never `playwright install`: no browser is downloaded), and
# pytest, in a virtual environment under the user's cache dir. REELFORGE_BROWSER_VENV names it.
need_browser() {
    if ! /usr/bin/chromium --version >/dev/null 2>&1; then
        apt_install chromium
    fi
    # Under CI the tests fail (never skip) when the browser still does not run.
    local version
    version=$(/usr/bin/chromium --version 2>/dev/null) || version="no browser: /usr/bin/chromium does not run"
    say "browser tests: $version"
    # aiosmtpd: the SMTP sink of the e-mail tests (tests/browser/test_notifications.py).
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/browser-venv
    if ! "$venv/bin/python" -c 'import playwright.sync_api, pytest' >/dev/null 2>&1; then
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 make_venv "$venv" 'playwright>=1.50,<2' 'pytest>=8' \
            'aiosmtpd>=1.4,<2'
    elif ! "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
        "$venv/bin/pip" install -q 'aiosmtpd>=1.4,<2' </dev/null
    fi
    export REELFORGE_BROWSER_VENV=$venv
    export REELFORGE_CHROMIUM=/usr/bin/chromium
}
# The SMTP server of the mail tests (crates/reelforge-testkit/src/smtp.rs runs
# tests/mail/smtp_server.py): aiosmtpd in a virtual environment, REELFORGE_TEST_SMTP_PY names
# its python; the openssl command makes each run's throw-away CA and server certificate.
need_smtp() {
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/mail-venv
    if ! "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
        make_venv "$venv" 'aiosmtpd>=1.4,<2'
    fi
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    export REELFORGE_TEST_SMTP_PY=$venv/bin/python
}
need_strace() { # tests/e2e/hostile.rs traces every ffmpeg/ffprobe run
    command -v strace >/dev/null 2>&1 || apt_install strace
}
need_sqlite3() { # scripts/sqlx-prepare.sh builds the SQLite schema with it
    command -v sqlite3 >/dev/null 2>&1 || apt_install sqlite3
}
need_nginx() { # tests/distributed: the shipped deploy/nginx.conf, and curl + python3 for its client
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        apt_install nginx
    fi
    command -v nginx >/dev/null 2>&1 || export PATH="$PATH:/usr/sbin"
    command -v curl >/dev/null 2>&1 || apt_install curl
    command -v python3 >/dev/null 2>&1 || apt_install python3
}
need_promtool() { # deploy/monitoring: the alert rules checked and unit-tested (Debian `prometheus`)
    command -v promtool >/dev/null 2>&1 || apt_install prometheus
}
need_script() { # tests/cli runs the client under a pseudo-terminal with util-linux `script`
    command -v script >/dev/null 2>&1 || apt_install bsdutils
}
need_tour() { # tests/e2e/newcomer.rs runs the README's tour, which uses curl, jq and python3
    local missing=()
    for program in curl jq python3; do
        command -v "$program" >/dev/null 2>&1 || missing+=("$program")
    done
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}
need_ffmpeg
need_tour
need_strace
need_script
need_promtool
need_sqlite3
need_postgres
need_moto
need_tuspy
need_webhooks
need_smtp
need_nginx
need_contract
need_browser

# --- Checks --------------------------------------------------------------------------------------
failed=()
timings=()
step() {
    local name=$1
    shift
    say "==> $name: $*"
    local start=$SECONDS rc=0
    "$@" </dev/null || rc=$?
    timings+=("$(printf '%-8s %4ss  %s' "$name" $((SECONDS - start)) "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")")")
    if [ $rc -ne 0 ]; then
        failed+=("$name")
    fi
}

# Extra arguments (e.g. a test-name filter) go to `cargo test` after `--`.
test_args=(--test-threads=2)
if [ "${1:-}" = "--" ]; then
    shift
fi
test_args+=("$@")

step fmt cargo fmt --check
# The committed query caches (crates/*/.sqlx) against the migrations, on the server above.
step sqlx bash scripts/sqlx-prepare.sh --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# The alert rules (deploy/monitoring): valid, and each alert's promtool unit tests pass.
step monitor bash scripts/check-monitoring.sh
step test cargo test --workspace --locked --no-fail-fast -- "${test_args[@]}"
# The HTTP API suite again with its servers on PostgreSQL (the repository suite in
# tests/api/queue.rs already ran on both backends above).
step test-pg env REELFORGE_TEST_APP_DB=postgres \
    cargo test --locked --no-fail-fast --test api -- --skip queue:: "${test_args[@]}"
# The OpenAPI document is valid, and schemathesis finds no schema-valid request refused, no
# undocumented status and no server error (the debug binary, on a throw-away data dir).
step contract bash tests/contract/run.sh
# The web UI in headless Chromium against the debug binary (one worker, a throw-away data dir).
step browser bash tests/browser/run.sh
# Processes on loopback: its own PostgreSQL cluster (it restarts it), nginx, the debug binary.
step distributed bash tests/distributed/run.sh

say "summary:"
for t in "${timings[@]}"; do
    printf '  %s\n' "$t" >&2
done
if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "all checks passed"
