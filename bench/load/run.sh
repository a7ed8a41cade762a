#!/usr/bin/env bash
# Load test with Locust (bench/load/locustfile.py), in the spirit of the old systems' JMeter
# plans: users sign up, log in, list their tasks, poll a task, upload 16 MiB files (the body of
# bench/api/run.sh's 16 MiB figure) and submit URL conversions of a small generated clip
# served on loopback, reads dominating the mix. Per target, the users step up (USER_STEPS),
# each step a headless Locust run of STEP_SECONDS that ramps its users up over RAMP_SECONDS;
# the database counts the URL conversions that finished in each step's window. Targets:
#   serve        one `reelforge serve` (SQLite, local files, default workers)
#   distributed  PostgreSQL (a throw-away cluster), 2 `reelforge api` + 2 `reelforge worker`
#                (REELFORGE_WORKERS=1 each) sharing a file:// store, behind nginx with the
#                shipped deploy/nginx.conf (without nginx: the users spread over the two APIs)
# At the end bench/load/report.py prints, per target and step, req/s, p50/p95/p99 and failures
# per request type, conversions per minute, the saturation point (first step where a p95 is
# over 500 ms or more than 1 % of requests fail) and our figures against the old systems'.
#
# Knobs: USER_STEPS (default "10 25 50 100"), STEP_SECONDS (60), RAMP_SECONDS (15), TARGETS
# ("serve distributed"), LOCUST_PROCESSES (1), RESULTS, NO_BUILD, NO_NGINX, QUIET_WAIT (lib.sh),
# and the users' LOAD_* settings described at the top of locustfile.py.
#
#   bench/load/run.sh
#   USER_STEPS="10 25 50 100" STEP_SECONDS=60 TARGETS="serve distributed" bench/load/run.sh
#   USER_STEPS="2 5" STEP_SECONDS=20 bench/load/run.sh          # smoke run
#   TARGETS=distributed RAMP_SECONDS=20 LOCUST_PROCESSES=2 bench/load/run.sh
#   LOAD_WAIT="0.1 0.5" LOAD_WEIGHTS="get=20,upload=0" bench/load/run.sh   # see locustfile.py
#   LOAD_ROUTES=legacy bench/load/run.sh     # seed A's routes (/auth/..., /tasks) instead of /api
#   NO_BUILD=1 bench/load/run.sh             # use target/release/reelforge as it is
#   NO_NGINX=1 TARGETS=distributed bench/load/run.sh   # users spread over the APIs, no balancer
#   bench/load/report.py bench/out/load-YYYYmmddTHHMMSSZ      # the report again, from the CSVs
#
# Everything (service, PostgreSQL, nginx, ffmpeg, Locust) shares this machine's cores, so the
# figures are "service + load generator on one box". Locust is one Python process unless
# LOCUST_PROCESSES says more; it can be the bottleneck before the service (report.py says when
# a step's rate is what the users' think time allows, not a capacity). The CSVs, Locust logs
# and per-step figures stay in RESULTS (default bench/out/load-<UTC time>, git-ignored).

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE="$ROOT/bench/load"

USER_STEPS="${USER_STEPS:-10 25 50 100}"
STEP_SECONDS="${STEP_SECONDS:-60}"
RAMP_SECONDS="${RAMP_SECONDS:-15}"
TARGETS="${TARGETS:-serve distributed}"
LOCUST_PROCESSES="${LOCUST_PROCESSES:-1}"
RESULTS="${RESULTS:-$CACHE/load-$(date -u +%Y%m%dT%H%M%SZ)}"
VENV="${LOAD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/reelforge/load-venv}"
export LOAD_RUN="r$(date +%s)" # user names stay unique if a database is ever reused

for t in $TARGETS; do
    case $t in serve | distributed) ;; *) echo "TARGETS: unknown target $t (serve, distributed)" >&2; exit 1 ;; esac
done
for u in $USER_STEPS; do
    [[ $u =~ ^[1-9][0-9]*$ ]] || { echo "USER_STEPS: $u is not a user count" >&2; exit 1; }
done
[[ $STEP_SECONDS =~ ^[1-9][0-9]*$ ]] && [[ $RAMP_SECONDS =~ ^[0-9]+$ ]] ||
    { echo "STEP_SECONDS and RAMP_SECONDS are whole seconds" >&2; exit 1; }
[ "$RAMP_SECONDS" -lt "$STEP_SECONDS" ] || { echo "RAMP_SECONDS must be under STEP_SECONDS" >&2; exit 1; }

need curl
need ffmpeg
need python3
case " $TARGETS " in *" distributed "*) need psql postgresql-client ;; esac

# --- Locust, in a venv kept between runs ---------------------------------------------------------
if ! "$VENV/bin/locust" --version >/dev/null 2>&1; then
    log "installing Locust into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'locust>=2.20,<3'
fi
LOCUST_VERSION=$("$VENV/bin/locust" --version 2>&1 | awk 'NR == 1 {print $1, $2}')
log "$LOCUST_VERSION"

if [ -n "${NO_BUILD:-}" ]; then
    [ -x "$BIN" ] || { echo "NO_BUILD is set but there is no binary at $BIN" >&2; exit 1; }
    log "NO_BUILD: using $BIN as it is"
else
    build_release
fi
# A private copy: another engineer's `cargo build --release` cannot swap it mid-run.
cp "$BIN" "$WORK/reelforge"
BIN="$WORK/reelforge"

# --- The clip conversions fetch, on a loopback static server --------------------------------------
CLIP="$CACHE/load_4s_320x240.mp4"
if [ ! -s "$CLIP" ]; then
    log "generating $CLIP"
    ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=320x240:rate=24" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t 4 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$CLIP"
fi
mkdir -p "$WORK/media"
cp "$CLIP" "$WORK/media/clip.mp4"
MEDIA_PORT=$(free_port)
bg_start python3 -m http.server "$MEDIA_PORT" --bind 127.0.0.1 --directory "$WORK/media" >"$WORK/media.log" 2>&1
export LOAD_CLIP_URL="http://127.0.0.1:$MEDIA_PORT/clip.mp4"
wait_http "$LOAD_CLIP_URL" 30 || { echo "the clip server did not start: $(tail -n 5 "$WORK/media.log")" >&2; exit 1; }

# Settings every target shares. The fetch allow-list lets conversions reach the clip server (the
# SSRF guard refuses loopback otherwise). Trusting 127.0.0.1 as a proxy makes the users'
# X-Forwarded-For count, so each user is its own client address for the login and signup limits
# (see locustfile.py); behind nginx, nginx is that proxy and appends its own hop.
COMMON_ENV=(REELFORGE_FETCH_ALLOW=127.0.0.1 REELFORGE_TRUSTED_PROXIES=127.0.0.1)

mkdir -p "$RESULTS"
wait_quiet
{
    machine_line
    echo "load generator: $LOCUST_VERSION, processes=$LOCUST_PROCESSES"
    echo "settings: USER_STEPS=\"$USER_STEPS\" STEP_SECONDS=$STEP_SECONDS RAMP_SECONDS=$RAMP_SECONDS TARGETS=\"$TARGETS\" LOAD_ROUTES=${LOAD_ROUTES:-api} LOAD_WAIT=\"${LOAD_WAIT:-0.5 1.5}\" LOAD_WEIGHTS=\"${LOAD_WEIGHTS:-get=10,list=3,convert=1,upload=1,login=1}\""
    echo "clip: 4 s 320x240 H.264+AAC, $(stat -c %s "$CLIP") bytes, served at $LOAD_CLIP_URL"
} | tee "$RESULTS/run.txt"

# --- Targets ---------------------------------------------------------------------------------------
# Each start_* sets TARGET_URL (where Locust goes), TARGET_PIDS (the processes that must stay
# alive), TARGET_LOGS, DB_KIND/DB_REF (where the conversions are counted) and LOCUST_HOSTS.

# While a target starts, say which one if the script stops (start_service exits by itself, with
# the server's log, when /healthz never answers).
STARTING=
trap '[ -z "$STARTING" ] || echo "target $STARTING failed to start" >&2; cleanup' EXIT

# wait_ready TARGET NAME URL PID: URL/readyz answers 200 within 60 s, or stop at once if PID exited.
wait_ready() {
    local target=$1 name=$2 url=$3 pid=$4 i
    for ((i = 0; i < 600; i++)); do
        curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die_target "$target" "$name exited while starting"
        sleep 0.1
    done
    die_target "$target" "$name did not become ready within 60 s ($url/readyz)"
}

die_target() {
    local target=$1 what=$2 logfile
    echo "target $target failed: $what" >&2
    for logfile in "${TARGET_LOGS[@]:-}"; do
        [ -n "$logfile" ] && [ -s "$logfile" ] || continue
        echo "--- last lines of $logfile" >&2
        tail -n 15 "$logfile" >&2
    done
    STARTING= # said already
    exit 1
}

start_serve() {
    RF_DATA="$WORK/serve"
    TARGET_LOGS=("$RF_DATA.log")
    log "serve: starting reelforge serve (SQLite, default workers)"
    # start_service stops the script with the server's log if /healthz never answers.
    start_service "${COMMON_ENV[@]}"
    wait_ready serve "reelforge serve" "$RF_URL" "$RF_PID"
    TARGET_URL=$RF_URL
    TARGET_PIDS=("$RF_PID")
    DB_KIND=sqlite
    DB_REF="$RF_DATA/reelforge.db"
    LOCUST_HOSTS=
}

start_distributed() {
    local dir=$WORK/dist name port
    mkdir -p "$dir/objects"
    TARGET_LOGS=()
    TARGET_PIDS=()
    [ -n "${PG_URL:-}" ] || start_postgres
    psql_do postgres -c "CREATE DATABASE load" >/dev/null
    DB_KIND=postgres
    DB_REF=load
    local env=(REELFORGE_DATABASE_URL="${PG_URL%/*}/load" REELFORGE_STORAGE_URL="file://$dir/objects"
        REELFORGE_JWT_SECRET="load-bench-$(date +%s%N)" RUST_LOG="${RUST_LOG:-warn}" "${COMMON_ENV[@]}")
    # Migrate once up front, so the two API processes do not race to do it.
    env "${env[@]}" REELFORGE_DATA_DIR="$dir/migrate" "$BIN" migrate >"$dir/migrate.log" 2>&1 ||
        { TARGET_LOGS=("$dir/migrate.log"); die_target distributed "reelforge migrate failed"; }
    declare -gA DIST_URL=()
    declare -gA DIST_PID=()
    for name in api1 api2 worker1 worker2; do
        port=$(free_port)
        mkdir -p "$dir/$name"
        TARGET_LOGS+=("$dir/$name.log")
        if [[ $name == api* ]]; then
            bg_start env "${env[@]}" REELFORGE_DATA_DIR="$dir/$name" REELFORGE_LISTEN="127.0.0.1:$port" \
                "$BIN" api >"$dir/$name.log" 2>&1
        else
            # A worker listens only for /healthz and /readyz: how we know it started.
            bg_start env "${env[@]}" REELFORGE_DATA_DIR="$dir/$name" REELFORGE_WORKERS=1 \
                REELFORGE_WORKER_LISTEN="127.0.0.1:$port" "$BIN" worker >"$dir/$name.log" 2>&1
        fi
        TARGET_PIDS+=("$LAST_PID")
        DIST_PID[$name]=$LAST_PID
        DIST_URL[$name]="http://127.0.0.1:$port"
    done
    for name in api1 api2 worker1 worker2; do
        wait_ready distributed "$name" "${DIST_URL[$name]}" "${DIST_PID[$name]}"
    done
    log "distributed: api1 ${DIST_URL[api1]}, api2 ${DIST_URL[api2]}, 2 workers (PostgreSQL, file:// store)"

    local nginx_bin=
    [ -n "${NO_NGINX:-}" ] || nginx_bin=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
    if [ -z "$nginx_bin" ]; then
        log "distributed: no nginx (not installed, or NO_NGINX): the users spread over the two API processes instead"
        TARGET_URL=${DIST_URL[api1]}
        LOCUST_HOSTS="${DIST_URL[api1]} ${DIST_URL[api2]}"
        return
    fi
    # The shipped config, its two site includes rewritten for loopback ports only, as
    # tests/distributed/run.sh does.
    local lb_port ngx=$dir/nginx
    lb_port=$(free_port)
    mkdir -p "$ngx"
    cp "$ROOT/deploy/nginx.conf" "$ngx/nginx.conf"
    sed -e "s/\\bapi1:8080\\b/${DIST_URL[api1]#http://}/" -e "s/\\bapi2:8080\\b/${DIST_URL[api2]#http://}/" \
        "$ROOT/deploy/nginx-upstream.conf" >"$ngx/nginx-upstream.conf"
    sed -e "s/^listen 8080;/listen 127.0.0.1:$lb_port;/" "$ROOT/deploy/nginx-listen.conf" >"$ngx/nginx-listen.conf"
    grep -q "${DIST_URL[api2]#http://}" "$ngx/nginx-upstream.conf" && grep -q "127.0.0.1:$lb_port" "$ngx/nginx-listen.conf" ||
        die_target distributed "deploy/nginx-upstream.conf or nginx-listen.conf no longer has the lines this script rewrites"
    local nginx_args=(-p "$ngx/" -c "$ngx/nginx.conf" -g "daemon off; pid $ngx/nginx.pid;")
    "$nginx_bin" -t -q "${nginx_args[@]}" 2>"$ngx/test.log" || { TARGET_LOGS=("$ngx/test.log"); die_target distributed "nginx -t failed"; }
    TARGET_LOGS+=("$ngx/error.log")
    # The access log (one line per request, on stdout) goes to a file: upstream timings if needed.
    bg_start "$nginx_bin" "${nginx_args[@]}" >"$ngx/access.log" 2>"$ngx/error.log"
    TARGET_PIDS+=("$LAST_PID")
    TARGET_URL="http://127.0.0.1:$lb_port"
    wait_ready distributed nginx "$TARGET_URL" "$LAST_PID"
    log "distributed: nginx (least_conn) on $TARGET_URL"
    LOCUST_HOSTS=
}

stop_target() {
    local pid
    for pid in "${TARGET_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${TARGET_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

check_alive() {
    local target=$1 pid
    for pid in "${TARGET_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die_target "$target" "process $pid exited during the load"
    done
}

# conversion_counts T0 T1: JSON with the URL tasks (every URL task here is a conversion) created
# and finished in [T0, T1) (epoch seconds), the open ones now, and upload tasks left behind.
conversion_counts() {
    local t0=$1 t1=$2
    if [ "$DB_KIND" = sqlite ]; then
        python3 - "$DB_REF" "$t0" "$t1" <<'PY'
import json, sqlite3, sys
db, t0, t1 = sys.argv[1], float(sys.argv[2]) * 1000, float(sys.argv[3]) * 1000  # ms in SQLite
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
url = "json_extract(source, '$.kind') = 'url'"
one = lambda q, *a: c.execute(q, a).fetchone()[0]
print(json.dumps({
    "submitted": one(f"SELECT count(*) FROM tasks WHERE {url} AND created_at >= ? AND created_at < ?", t0, t1),
    "succeeded": one(f"SELECT count(*) FROM tasks WHERE {url} AND status = 'succeeded' AND finished_at >= ? AND finished_at < ?", t0, t1),
    "failed": one(f"SELECT count(*) FROM tasks WHERE {url} AND status = 'failed' AND finished_at >= ? AND finished_at < ?", t0, t1),
    "run_seconds": one(f"SELECT avg(finished_at - started_at) / 1000.0 FROM tasks WHERE {url} AND status = 'succeeded' AND finished_at >= ? AND finished_at < ?", t0, t1),
    "open": one(f"SELECT count(*) FROM tasks WHERE {url} AND status IN ('queued', 'running')"),
    "uploads_left": one("SELECT count(*) FROM tasks WHERE json_extract(source, '$.kind') = 'upload'"),
    "errors": dict(c.execute(f"SELECT coalesce(error_code, '?'), count(*) FROM tasks WHERE {url} AND status = 'failed' AND finished_at >= ? AND finished_at < ? GROUP BY 1", (t0, t1)).fetchall()),
}))
PY
    else
        psql_do "$DB_REF" -At -v t0="$t0" -v t1="$t1" <<'SQL'
WITH w AS (SELECT to_timestamp(:t0) AS t0, to_timestamp(:t1) AS t1),
url AS (SELECT t.* FROM tasks t WHERE t.source->>'kind' = 'url')
SELECT json_build_object(
  'submitted', (SELECT count(*) FROM url, w WHERE created_at >= w.t0 AND created_at < w.t1),
  'succeeded', (SELECT count(*) FROM url, w WHERE status = 'succeeded' AND finished_at >= w.t0 AND finished_at < w.t1),
  'failed', (SELECT count(*) FROM url, w WHERE status = 'failed' AND finished_at >= w.t0 AND finished_at < w.t1),
  'run_seconds', (SELECT avg(EXTRACT(EPOCH FROM finished_at - started_at)) FROM url, w WHERE status = 'succeeded' AND finished_at >= w.t0 AND finished_at < w.t1),
  'open', (SELECT count(*) FROM url WHERE status IN ('queued', 'running')),
  'uploads_left', (SELECT count(*) FROM tasks WHERE source->>'kind' = 'upload'),
  'errors', (SELECT coalesce(json_object_agg(code, n), '{}') FROM (SELECT coalesce(error_code, '?') AS code, count(*) AS n FROM url, w WHERE status = 'failed' AND finished_at >= w.t0 AND finished_at < w.t1 GROUP BY 1) e)
);
SQL
    fi
}

# run_step TARGET USERS: one headless Locust run; its CSVs and a .meta.json land in RESULTS.
run_step() {
    local target=$1 users=$2 prefix spawn t0 t1 b0 b1 open0 rc=0 busy counts
    prefix="$RESULTS/$target-u$(printf '%04d' "$users")"
    # The ramp: every user started within RAMP_SECONDS (at least one a second).
    spawn=$(python3 -c "print(max(1.0, $users / max(1, $RAMP_SECONDS)))")
    local extra=()
    [ "$LOCUST_PROCESSES" -gt 1 ] && extra=(--processes "$LOCUST_PROCESSES")
    open0=$(conversion_counts 0 0 | python3 -c 'import json, sys; print(json.load(sys.stdin)["open"])')
    log "$target: $users users (spawn rate $spawn/s) for ${STEP_SECONDS} s; $open0 conversions open before"
    t0=$(now); b0=$(cpu_busy_s)
    LOAD_HOSTS="$LOCUST_HOSTS" "$VENV/bin/locust" -f "$HERE/locustfile.py" --headless --host "$TARGET_URL" \
        --users "$users" --spawn-rate "$spawn" --run-time "${STEP_SECONDS}s" --stop-timeout 15 \
        --csv "$prefix" --csv-full-history --only-summary --loglevel WARNING \
        --exit-code-on-error 0 "${extra[@]}" >"$prefix.log" 2>&1 || rc=$?
    t1=$(now); b1=$(cpu_busy_s)
    if [ "$rc" -ne 0 ] || [ ! -s "${prefix}_stats.csv" ]; then
        echo "Locust failed ($target, $users users, exit $rc):" >&2
        tail -n 30 "$prefix.log" >&2
        exit 1
    fi
    check_alive "$target"
    busy=$(python3 -c "import os; print(round(100 * ($b1 - $b0) / (($t1 - $t0) * os.cpu_count())))")
    # Locust warns when its own process is over 90 % CPU: then it, not the service, set the pace.
    local gen_cpu=false
    grep -q 'CPU usage above' "$prefix.log" && gen_cpu=true
    counts=$(conversion_counts "$t0" "$t1")
    python3 - "$prefix.meta.json" "$target" "$users" "$spawn" "$t0" "$t1" "$busy" "$open0" "$counts" \
        "$STEP_SECONDS" "$RAMP_SECONDS" "${LOAD_WAIT:-0.5 1.5}" "$gen_cpu" <<'PY'
import json, sys
path, target, users, spawn, t0, t1, busy, open0, counts, step_s, ramp_s, wait, gen_cpu = sys.argv[1:]
json.dump({"target": target, "users": int(users), "spawn_rate": float(spawn), "t0": float(t0),
           "t1": float(t1), "machine_busy_pct": int(busy), "open_before": int(open0),
           "locust_cpu_over_90": gen_cpu == "true",
           "step_seconds": int(step_s), "ramp_seconds": int(ramp_s), "wait": wait,
           "conversions": json.loads(counts)}, open(path, "w"), indent=1)
PY
    log "$target: $users users done: machine ${busy}% busy; conversions $(python3 -c '
import json, sys
c = json.loads(sys.argv[1])
print(" ".join(f"{k}={c[k]}" for k in ("submitted", "succeeded", "failed", "open")), "errors=%s" % (c["errors"] or {}))' "$counts")"
}

for target in $TARGETS; do
    STARTING=$target
    "start_$target"
    STARTING=
    for users in $USER_STEPS; do
        run_step "$target" "$users"
    done
    stop_target
done

echo "loadavg_after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/run.txt"
python3 "$HERE/report.py" "$RESULTS" | tee "$RESULTS/report.txt"
log "results in $RESULTS"
