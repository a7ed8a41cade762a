#!/usr/bin/env bash
# Worker scaling: tasks per minute with 1, 2 and 3 `reelforge worker` processes
# (REELFORGE_WORKERS=1 each: one job per process) behind one `reelforge api` process, on
# PostgreSQL and a shared file:// store. Each round gets a fresh database and store, uploads
# TASKS idrl tasks of a generated 6 s 320x180 clip (default options) through the API while no
# worker runs, then starts the workers on that backlog and waits until every task has ended.
# The time of a round is taken from the database: the first claim (min started_at) to the last
# finish (max finished_at), so neither the uploads nor the processes' start-up count.
#
#   bench/scaling/run.sh
#   TASKS=40 WORKER_COUNTS="1 2 3 4" bench/scaling/run.sh
#
# On a 2-core machine the curve flattens after 2 workers: a task on these short clips is mostly
# fixed costs run one after the other (ffprobe, ffmpeg start-up, x264 on a small frame, storing,
# probing the outputs, database round trips), so a second process fills the other core; a third
# has no idle core left. See docs/benchmarks.md.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TASKS="${TASKS:-30}"
WORKER_COUNTS="${WORKER_COUNTS:-1 2 3}"
SECRET="scaling-bench-secret-$(date +%s%N)"

build_release
CLIP="$CACHE/scaling_6s_320x180.mp4"
if [ ! -s "$CLIP" ]; then
    log "generating $CLIP"
    ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=320x180:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t 6 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$CLIP"
fi
start_postgres
wait_quiet
machine_line
echo "clip: 6 s 320x180 H.264+AAC, $TASKS idrl tasks per round, one job per worker process"

# start_role ROLE NAME DB: a reelforge process with its own data dir; sets LAST_PID.
start_role() {
    local role=$1 name=$2 db=$3
    mkdir -p "$WORK/$db/$name"
    bg_start env REELFORGE_DATA_DIR="$WORK/$db/$name" REELFORGE_LISTEN="127.0.0.1:${PORT:-0}" \
        REELFORGE_DATABASE_URL="${PG_URL%/*}/$db" REELFORGE_STORAGE_URL="file://$WORK/$db/objects" \
        REELFORGE_JWT_SECRET="$SECRET" REELFORGE_WORKERS=1 RUST_LOG="${RUST_LOG:-warn}" \
        "$BIN" "$role" >"$WORK/$db/$name.log" 2>&1
}

stop_pids() {
    local pid
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

declare -A PER_MIN
for n in $WORKER_COUNTS; do
    db="scale_$n"
    psql_do postgres -c "CREATE DATABASE $db"
    PORT=$(free_port)
    RF_URL="http://127.0.0.1:$PORT"
    start_role api api "$db"
    pids=("$LAST_PID")
    wait_http "$RF_URL/healthz" 60 || { cat "$WORK/$db/api.log" >&2; exit 1; }
    api_login
    for ((t = 1; t <= TASKS; t++)); do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
            -F "file=@$CLIP;filename=clip$t.mp4" "$RF_URL/api/tasks")
        [ "$code" = 201 ] || { echo "submit $t: HTTP $code" >&2; exit 1; }
    done
    b0=$(cpu_busy_s)
    w0=$(now)
    PORT=0
    for ((w = 1; w <= n; w++)); do
        start_role worker "worker$w" "$db"
        pids+=("$LAST_PID")
    done
    while :; do
        open=$(psql_do "$db" -Atc "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')")
        [ "$open" -eq 0 ] && break
        sleep 0.2
    done
    w1=$(now)
    b1=$(cpu_busy_s)
    read -r ok failed span attempts per_task <<<"$(psql_do "$db" -At -F ' ' -c "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status <> 'succeeded'), EXTRACT(EPOCH FROM max(finished_at) - min(started_at)), sum(attempts), round(EXTRACT(EPOCH FROM avg(finished_at - started_at))::numeric, 3) FROM tasks")"
    stop_pids "${pids[@]}"
    per_min=$(python3 -c "print(f'{$ok * 60 / $span:.1f}')")
    PER_MIN[$n]=$per_min
    busy=$(python3 -c "import os; print(f'{100 * ($b1 - $b0) / (($w1 - $w0) * os.cpu_count()):.0f}')")
    echo "workers=$n: $ok succeeded, $failed not, attempts=$attempts, ${span} s from first claim to last finish -> $per_min tasks/min; one task ${per_task} s on average (machine ${busy}% busy)"
    [ "$failed" -eq 0 ] || { echo "some tasks did not succeed" >&2; psql_do "$db" -c "SELECT status, error_code, error_message FROM tasks WHERE status <> 'succeeded'" >&2; }
done

first=${WORKER_COUNTS%% *}
for n in $WORKER_COUNTS; do
    echo "speedup: workers=$n $(ratio "${PER_MIN[$n]}" "${PER_MIN[$first]}")x of workers=$first"
done
echo "loadavg_after: $(cut -d' ' -f1-3 /proc/loadavg)"
