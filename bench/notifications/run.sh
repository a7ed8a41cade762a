#!/usr/bin/env bash
# Notification latency, from the commit of a task's event to the webhook receiver, on both
# backends: `reelforge serve` on SQLite (the deliverers in the same process as the API), and
# `reelforge api` + `reelforge worker` on PostgreSQL (the event committed by the API process
# wakes the worker process's deliverers through LISTEN/NOTIFY). The receiver verifies every
# signature (tests/webhooks/receiver.py, the `standardwebhooks` package).
#
#   bench/notifications/run.sh
#   EVENTS=500 GAP=0.02 BACKENDS=sqlite bench/notifications/run.sh
#
# Prints per backend p50, p99 and max in milliseconds and p99 against the target (< 1 s).

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

EVENTS="${EVENTS:-300}"
GAP="${GAP:-0.05}"
BACKENDS="${BACKENDS:-sqlite postgres}"
HERE="$(dirname "${BASH_SOURCE[0]}")"
PY="${REELFORGE_TEST_WEBHOOK_PY:-${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/webhook-venv/bin/python}"
if ! "$PY" -c 'import standardwebhooks' 2>/dev/null; then
    log "making the receiver's venv"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q 'standardwebhooks>=1.0,<2'
    PY="$WORK/venv/bin/python"
fi

need curl
need python3
build_release
machine_line

start_receiver() {
    RX_LOG="$WORK/received-$1.jsonl"
    : >"$RX_LOG"
    bg_start "$PY" "$ROOT/tests/webhooks/receiver.py" "$RX_LOG" 127.0.0.3 >"$WORK/rx-$1.out"
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q '^listening on ' "$WORK/rx-$1.out" 2>/dev/null && break
        sleep 0.1
    done
    RX_PORT=$(sed -n 's/^listening on //p' "$WORK/rx-$1.out")
    HOOK="http://127.0.0.3:$RX_PORT/hook/bench"
}

for B in $BACKENDS; do
    start_receiver "$B"
    case $B in
    sqlite)
        RF_DATA="$WORK/data-sqlite"
        start_service REELFORGE_WORKERS=0 REELFORGE_FETCH_ALLOW=127.0.0.3
        API=$RF_URL
        ;;
    postgres)
        start_postgres
        psql_do postgres -c "CREATE DATABASE bench"
        common=(REELFORGE_DATABASE_URL="${PG_URL%/*}/bench" REELFORGE_FETCH_ALLOW=127.0.0.3
            REELFORGE_STORAGE_URL="file://$WORK/objects" REELFORGE_JWT_SECRET=bench-secret-0123456789abcdef0123
            REELFORGE_WORKERS=0 RUST_LOG=warn)
        port=$(free_port)
        mkdir -p "$WORK/api" "$WORK/worker"
        bg_start env "${common[@]}" REELFORGE_DATA_DIR="$WORK/api" REELFORGE_LISTEN="127.0.0.1:$port" \
            "$BIN" api >"$WORK/api.log" 2>&1
        API="http://127.0.0.1:$port"
        wait_http "$API/healthz" 60
        wport=$(free_port)
        bg_start env "${common[@]}" REELFORGE_DATA_DIR="$WORK/worker" \
            REELFORGE_WORKER_LISTEN="127.0.0.1:$wport" "$BIN" worker >"$WORK/worker.log" 2>&1
        wait_http "http://127.0.0.1:$wport/healthz" 60
        ;;
    esac
    log "$B: $EVENTS events, ${GAP}s apart"
    echo "$B: $(python3 "$HERE/latency.py" "$API" "$HOOK" "$RX_LOG" "$EVENTS" "$GAP")"
done
