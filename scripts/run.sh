#!/usr/bin/env bash
# Run Reelforge on this machine: API + workers in one process (`reelforge serve`), with the
# embedded defaults (SQLite database and local files under ./data).
#
#   bash scripts/run.sh                        # http://127.0.0.1:8080
#   bash scripts/run.sh --listen 0.0.0.0:8080  # any `reelforge serve` flag is passed through
#
# On a fresh Debian/Ubuntu machine (with Rust installed through rustup) it first installs
# what is missing, and only that:
#   - ffmpeg + ffprobe       (Debian package `ffmpeg`): the workers run them;
#   - a C compiler           (`gcc`): aws-lc-sys (TLS crypto) and SQLite are compiled from C
#                            sources; aws-lc-sys uses its cc builder with pre-generated
#                            bindings on x86_64/aarch64 Linux, so cmake/clang are NOT needed;
#   - CA certificates        (`ca-certificates`): https URL fetches verify servers against them.
# Then it builds the release binary (`cargo build --release --locked`) and execs it.
# Running it again skips whatever is already there; cargo rebuilds only what changed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

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
        "${sudo[@]}" apt-get update -q
        apt_updated=1
    fi
    say "apt-get install -y $*"
    "${sudo[@]}" apt-get install -y -q "$@"
}

# --- system packages ---------------------------------------------------------------------
missing=()
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    missing+=(ffmpeg)
fi
if ! command -v cc >/dev/null 2>&1; then
    missing+=(gcc libc6-dev)
fi
if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
    missing+=(ca-certificates)
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
else
    say "ffmpeg, ffprobe, a C compiler and CA certificates are present"
fi

# --- Rust ---------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust with rustup (https://rustup.rs), then run this again"

say "building the release binary (cargo build --release --locked; the first build takes a few minutes)"
cargo build --release --locked

# Where cargo put it: CARGO_TARGET_DIR when set (a shared build cache), else ./target.
bin=${CARGO_TARGET_DIR:-target}/release/reelforge
say "starting: $bin serve $*"
exec "$bin" serve "$@"
