# Shared helpers for the benchmarks in bench/*/run.sh. Source it; do not run it.
#
# Provides: ROOT, BIN, WORK (temp dir removed at exit), need, free_port, build_release, random_file,
# start_service (sets RF_PID, RF_URL), wait_http, api_login (sets TOKEN), json_get,
# start_postgres (a throw-away cluster; sets PG_URL, PG_BIN, PG_LOG), psql_do,
# and an EXIT trap that stops every background process started through bg_start (and the
# PostgreSQL cluster).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/reelforge"
# Inputs worth keeping between runs (the generated source clip) live here (git-ignored).
CACHE="${BENCH_CACHE:-$ROOT/bench/out}"
mkdir -p "$CACHE"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/reelforge-bench.XXXXXX")"
BG_PIDS=()

# need PROGRAM [DEBIAN_PACKAGE]: install the package when the program is missing (a fresh
# machine has no wrk), or stop with a line saying what to install.
need() {
    local program=$1 package=${2:-$1}
    command -v "$program" >/dev/null 2>&1 && return
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        echo "installing $package (for $program)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    fi
    command -v "$program" >/dev/null 2>&1 || { echo "$program is needed (Debian: apt-get install $package)" >&2; exit 1; }
}

cleanup() {
    local pid
    stop_postgres
    for pid in "${BG_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BG_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${KEEP_WORK:-}" ]; then
        echo "work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL: one throw-away cluster per benchmark run ---------------------------------------
PG_DIR=
PG_AS=()
stop_postgres() {
    [ -n "$PG_DIR" ] || return 0
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    PG_DIR=
}

# start_postgres: initdb + pg_ctl start in $WORK/pg (as user postgres when run as root) on a
# free loopback port, with the durable defaults (fsync, synchronous_commit on) unless PG_OPTS
# says otherwise. Sets PG_URL (superuser, database `postgres`), PG_BIN, PG_LOG.
start_postgres() {
    PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
        echo "PostgreSQL server binaries not found (Debian: apt-get install postgresql)" >&2
        exit 1
    fi
    local dir=$WORK/pg port
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chmod 711 "$WORK"
        chown postgres "$dir"
        PG_AS=(runuser -u postgres --)
    fi
    "${PG_AS[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
        --no-instructions >"$dir/initdb.log" 2>&1 ||
        { tail -n 5 "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    PG_LOG=$dir/server.log
    # shellcheck disable=SC2086 # PG_OPTS is a list of server options
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$PG_LOG" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=200 ${PG_OPTS:-}" start >/dev/null ||
        { tail -n 5 "$PG_LOG" >&2; exit 1; }
    PG_DIR=$dir
    PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (fsync=$(psql_do postgres -Atc 'SHOW fsync'), synchronous_commit=$(psql_do postgres -Atc 'SHOW synchronous_commit'))"
}

# psql_do DATABASE [psql args...]: psql against the cluster of start_postgres.
psql_do() {
    local db=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 "${PG_URL%/*}/$db" "$@"
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

now() { date +%s.%N; }
# elapsed START END -> seconds with 3 decimals
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
# ratio A B -> A / B with 3 decimals
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start a background command; its PID is stopped at exit. Sets LAST_PID.
bg_start() {
    "$@" &
    LAST_PID=$!
    BG_PIDS+=("$LAST_PID")
}

build_release() {
    log "cargo build --release (waits for the lock if another build runs)"
    (cd "$ROOT" && cargo build --release --quiet)
    [ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
}

# wait_http URL [seconds]
wait_http() {
    local url=$1 limit=${2:-60} i
    for ((i = 0; i < limit * 10; i++)); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $url" >&2
    return 1
}

# start_service [extra env assignments...]: reelforge serve on a free loopback port with a
# fresh data dir ($RF_DATA, default $WORK/data). Sets RF_PID, RF_URL, RF_LOG.
start_service() {
    local port data=${RF_DATA:-$WORK/data}
    port=$(free_port)
    RF_URL="http://127.0.0.1:$port"
    RF_LOG="$data.log"
    mkdir -p "$data"
    bg_start env REELFORGE_LISTEN="127.0.0.1:$port" REELFORGE_DATA_DIR="$data" \
        RUST_LOG="${RUST_LOG:-warn}" "$@" "$BIN" serve >"$RF_LOG" 2>&1
    RF_PID=$LAST_PID
    if ! wait_http "$RF_URL/healthz" 60; then
        cat "$RF_LOG" >&2
        exit 1
    fi
    log "reelforge serve pid $RF_PID on $RF_URL"
}

# random_file MIB: FILE = $CACHE/upload-MIBm.bin, MIB MiB of random bytes, made once (not
# sparse: zero pages would be cheaper to read). Sets FILE and SIZE.
random_file() {
    FILE="$CACHE/upload-${1}m.bin"
    if [ ! -s "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $(($1 * 1024 * 1024)) ]; then
        log "making $FILE (random bytes)"
        head -c "$(($1 * 1024 * 1024))" /dev/urandom >"$FILE"
    fi
    SIZE=$(stat -c %s "$FILE")
}

# json_get FIELD.PATH < json  (e.g. json_get token, json_get outputs.1.name)
json_get() {
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$1"
}

# api_login: sign up and log in a bench user. Sets TOKEN.
api_login() {
    local body
    curl -fsS -o /dev/null -H 'Content-Type: application/json' \
        -d '{"username":"bench","email":"bench@example.com","password":"Bench-pass-1","password_2":"Bench-pass-1"}' \
        "$RF_URL/api/auth/signup"
    body=$(curl -fsS -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"Bench-pass-1"}' "$RF_URL/api/auth/login")
    TOKEN=$(json_get token <<<"$body")
}

machine_line() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    echo "machine: nproc=$(nproc) cpu=\"$cpu\" mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) loadavg_before=\"$(cut -d' ' -f1-3 /proc/loadavg)\" date=$(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}

# Contention check. cpu_busy_s: machine-wide busy CPU seconds since boot (all cores).
# proc_cpu_s PID: CPU seconds of PID itself plus its reaped children (utime+stime+cutime+cstime).
CLK_TCK=$(getconf CLK_TCK)
cpu_busy_s() { awk -v hz="$CLK_TCK" '$1 == "cpu" {print ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
proc_cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$CLK_TCK" '{print ($12 + $13 + $14 + $15) / hz}'; }
# other_cpu BUSY0 BUSY1 OURS0 OURS1 WALL -> "X CPU-s (Y% of the machine)" used by everything else
other_cpu() {
    python3 -c "import sys, os
b0, b1, o0, o1, w = map(float, sys.argv[1:])
other = max(0.0, (b1 - b0) - (o1 - o0))
print(f'{other:.1f} CPU-s ({100 * other / (w * os.cpu_count()):.0f}% of the machine)')" "$@"
}

# wait_quiet: before measuring, wait (up to QUIET_WAIT s, default 180) until the machine is
# under 25 % busy over 3 s; says so either way. QUIET_WAIT=0 skips the wait.
# wait_below WHAT MAX PAUSE PROBE: until PROBE (a reading over its own 3 s, a whole number)
# is below MAX, at most QUIET_WAIT (180) s, PAUSE s apart; logs each reading.
wait_below() {
    local what=$1 max=$2 pause=$3 probe=$4 limit=${QUIET_WAIT:-180} start n
    start=$(date +%s)
    while :; do
        n=$("$probe")
        if [ "$n" -lt "$max" ]; then
            log "$what quiet ($n over 3 s)"
            return 0
        fi
        if [ $(($(date +%s) - start)) -ge "$limit" ]; then
            log "$what still $n after ${limit} s: measuring anyway (figures may be contended)"
            return 0
        fi
        log "$what $n over 3 s (other builds/tests?): waiting"
        sleep "$pause"
    done
}
cpu_busy_pct_3s() {
    local b0 b1
    b0=$(cpu_busy_s); sleep 3; b1=$(cpu_busy_s)
    python3 -c "import os; print(int(100 * ($b1 - $b0) / (3 * os.cpu_count())))"
}
disk_written_mib() { awk '{s += $10} END {print int(s / 2048)}' /proc/diskstats; }
disk_mib_3s() {
    local w0 w1
    w0=$(disk_written_mib); sleep 3; w1=$(disk_written_mib)
    echo $((w1 - w0))
}
# The machine: under 25 % busy. The disks (after a sync): under 2 MiB/s written, since what an
# earlier scenario left to write back, or to free, would otherwise land in the next one's tail.
wait_quiet() { wait_below "machine (% busy)" 25 7 cpu_busy_pct_3s; }
wait_disk_quiet() {
    sync
    wait_below "disks (MiB written)" 6 0 disk_mib_3s
}
