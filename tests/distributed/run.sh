#!/usr/bin/env bash
# The distributed test (scale-out), all on loopback, no manual step:
#
#   PostgreSQL (a throw-away cluster) + S3 object storage (moto)
#   nginx with the SHIPPED deploy/nginx.conf (its two site includes rewritten for ports only)
#   2 × `reelforge api` behind nginx, 3 × `reelforge worker` (one job each)
#   a python http.server serving generated clips (allowed with REELFORGE_FETCH_ALLOW)
#
# 30 idrl tasks go in through nginx, half by URL and half by upload. While they run: one
# worker holding a job is SIGKILLed, one API process is SIGKILLed, PostgreSQL is restarted
# once while submissions are in flight. Then client.py checks: every task succeeded; each has
# exactly one output set in storage and nothing else is stored; attempts > 1 only for the
# interrupted tasks; no 5xx or connection error reached the client outside the seconds
# PostgreSQL was down; the surviving processes are alive and ready. One summary line; exit 1 on any
# violation.
#
#   bash tests/distributed/run.sh            # builds the debug binary with cargo
#   REELFORGE_BIN=path/to/reelforge bash tests/distributed/run.sh
#   KEEP=1 …                                 # keep the work dir (logs) afterwards
#
# Needs: nginx, ffmpeg, PostgreSQL server binaries, python3, curl (scripts/test.sh installs
# them, moto included). Storage: DIST_STORAGE=s3 (moto, the default) or file (one shared
# directory).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$(pwd)
here=$repo/tests/distributed

TOTAL=${DIST_TASKS:-30}
PG_DOWN_SECONDS=${DIST_PG_DOWN_SECONDS:-3}
DEADLINE=${DIST_DEADLINE_SECONDS:-600}

say() { printf 'distributed: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
now() { date +%s.%N; }

for prog in nginx ffmpeg python3 curl; do
    command -v "$prog" >/dev/null 2>&1 || die "$prog is not installed"
done

bin=${REELFORGE_BIN:-}
if [ -z "$bin" ]; then
    say "cargo build --bin reelforge"
    cargo build --locked --quiet --bin reelforge
    target=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target/debug/reelforge
fi
[ -x "$bin" ] || die "no reelforge binary at $bin"

# --- Work dir, processes, clean-up ------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/reelforge-dist.XXXXXX")
pids=() # every process this script started (stopped by pid at exit)
apt_install() { die "missing $* (scripts/test.sh installs what this test needs)"; }
# need_postgres, stop_postgres, as_pg_user, pg_dir, pg_ctl_bin, pg_bindir
# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [ -z "$pg_dir" ] || cp "$pg_dir/server.log" "$work/postgres.log" 2>/dev/null || true
    stop_postgres
    if [ $rc -ne 0 ] || [ -n "${KEEP:-}" ]; then
        say "logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N free loopback ports (bound and released together, so they are distinct).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r lb_port media_port api1_port api2_port w1_port w2_port w3_port <<<"$(free_ports 7)"
declare -A port_of=([api1]=$api1_port [api2]=$api2_port [w1]=$w1_port [w2]=$w2_port [w3]=$w3_port)
declare -A pid_of=()

# Poll a condition (a command) every 50 ms until it holds or the deadline passes.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what"
        sleep 0.05
    done
}
alive() { kill -0 "$1" 2>/dev/null; }

# A private copy: a concurrent `cargo build` of the same target dir cannot swap it mid-run.
cp "$bin" "$work/reelforge"
bin=$work/reelforge

# --- PostgreSQL ---------------------------------------------------------------------------------
# A cluster of its own (scripts/lib/postgres.sh), never the one REELFORGE_TEST_PG_URL names:
# this test restarts it. need_postgres sets its own exit traps; ours are set again after it.
unset REELFORGE_TEST_PG_URL
need_postgres
trap cleanup EXIT
trap 'exit 130' INT TERM
pg_admin_url=$REELFORGE_TEST_PG_URL
unset REELFORGE_TEST_PG_URL
"$(pg_bindir)/psql" -X -q "$pg_admin_url" -c 'CREATE DATABASE reelforge' >/dev/null
db_url="${pg_admin_url%/*}/reelforge"
# The server's options as need_postgres started it (port, socket dir…), to start it again.
pg_opts=$(sed -E 's/^[^ ]+ "-D" "[^"]*" ?//' "$pg_dir/data/postmaster.opts")

# --- Shared storage ---------------------------------------------------------------------------------
# DIST_STORAGE=s3 (default): a moto S3 server on loopback with a bucket made here (the s3://
# storage backend, REELFORGE_S3_ENDPOINT). The program is REELFORGE_TEST_MOTO (what
# scripts/test.sh's need_moto exports) or moto_server on the PATH.
# DIST_STORAGE=file: one directory shared by every process.
s3_endpoint=
storage_kind=${DIST_STORAGE:-s3}
case $storage_kind in
file)
    STORAGE="file://$work/objects"
    mkdir -p "$work/objects"
    ;;
s3)
    moto=${REELFORGE_TEST_MOTO:-$(command -v moto_server || true)}
    [ -n "$moto" ] && [ -x "$moto" ] || die "moto_server is not installed (pip install 'moto[server]'; scripts/test.sh does)"
    read -r s3_port <<<"$(free_ports 1)"
    "$moto" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
    pids+=("$!")
    s3_endpoint="http://127.0.0.1:$s3_port"
    wait_for "moto" 60 curl -fsS -o /dev/null "$s3_endpoint/moto-api/"
    curl -fsS -X PUT -o /dev/null "$s3_endpoint/reelforge-dist" || die "could not create the bucket"
    STORAGE="s3://reelforge-dist/objects"
    export REELFORGE_S3_ENDPOINT=$s3_endpoint AWS_ACCESS_KEY_ID=distributed-test \
        AWS_SECRET_ACCESS_KEY=distributed-test AWS_REGION=us-east-1
    ;;
*) die "DIST_STORAGE must be file or s3" ;;
esac

# --- Shared settings ------------------------------------------------------------------------------
export REELFORGE_DATABASE_URL=$db_url
export REELFORGE_STORAGE_URL=$STORAGE
REELFORGE_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export REELFORGE_JWT_SECRET
export REELFORGE_FETCH_ALLOW=127.0.0.1
export REELFORGE_TRUSTED_PROXIES=127.0.0.1
export REELFORGE_WORKERS=1
# A shorter lease than the default 30 s: the killed worker's job is taken over sooner. Still
# well above the PostgreSQL outage, so running jobs keep their leases through it.
export REELFORGE_LEASE=15s
export RUST_LOG=${RUST_LOG:-info,sqlx=warn}

"$bin" migrate --data-dir "$work/migrate" >"$work/migrate.log" 2>&1 || die "migrate failed: $(tail -n 5 "$work/migrate.log")"

# start NAME ROLE: a reelforge process with its own data and scratch dir, on port_of[NAME].
# Workers listen on --worker-listen (/healthz, /readyz, /metrics only), API processes on --listen.
start() {
    local name=$1 role=$2 listen=--listen
    [ "$role" = worker ] && listen=--worker-listen
    mkdir -p "$work/$name"
    "$bin" "$role" --data-dir "$work/$name" "$listen" "127.0.0.1:${port_of[$name]}" \
        >"$work/$name.log" 2>&1 &
    pids+=("$!")
    pid_of[$name]=$!
}
start api1 api
start api2 api
for w in w1 w2 w3; do start "$w" worker; done
for name in api1 api2 w1 w2 w3; do
    wait_for "$name" 60 curl -fsS "http://127.0.0.1:${port_of[$name]}/readyz"
done

# --- nginx: the shipped config, its includes with loopback addresses ---------------------------------
mkdir -p "$work/nginx"
cp deploy/nginx.conf "$work/nginx/nginx.conf"
sed -e "s/\\bapi1:8080\\b/127.0.0.1:$api1_port/" -e "s/\\bapi2:8080\\b/127.0.0.1:$api2_port/" \
    deploy/nginx-upstream.conf >"$work/nginx/nginx-upstream.conf"
sed -e "s/^listen 8080;/listen 127.0.0.1:$lb_port;/" deploy/nginx-listen.conf >"$work/nginx/nginx-listen.conf"
grep -q "127.0.0.1:$api2_port" "$work/nginx/nginx-upstream.conf" &&
    grep -q "127.0.0.1:$lb_port" "$work/nginx/nginx-listen.conf" ||
    die "deploy/nginx-upstream.conf or nginx-listen.conf no longer has the lines this test rewrites"
nginx_args=(-p "$work/nginx/" -c "$work/nginx/nginx.conf" -g "daemon off; pid $work/nginx/nginx.pid;")
nginx -t -q "${nginx_args[@]}" || die "nginx -t failed on the shipped config"
nginx "${nginx_args[@]}" >"$work/nginx/access.log" 2>"$work/nginx/error.log" &
pids+=("$!")
base="http://127.0.0.1:$lb_port"
wait_for "nginx" 30 curl -fsS "$base/readyz"

# --- Media: short generated clips served over HTTP --------------------------------------------------
mkdir -p "$work/media"
for d in 5 6 7; do
    ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=320x240:rate=24:duration=$d" \
        -f lavfi -i "sine=frequency=$((300 + d * 50)):duration=$d" -c:v libx264 -preset ultrafast \
        -pix_fmt yuv420p -c:a aac -shortest "$work/media/clip$d.mp4"
done
python3 -m http.server "$media_port" --bind 127.0.0.1 --directory "$work/media" \
    >"$work/media.log" 2>&1 &
pids+=("$!")
wait_for "media server" 30 curl -fsS -o /dev/null "http://127.0.0.1:$media_port/clip5.mp4"

client_cmd=(python3 "$here/client.py" --work "$work" --base "$base" --media "$work/media"
    --media-url "http://127.0.0.1:$media_port" --options '{"segment_seconds": 3, "max_height": 180}')
client() { "${client_cmd[@]}" "$@"; }
# In the background, with $! the python process itself (so that clean-up can stop it).
client_bg() { "${client_cmd[@]}" "$@" & }

# --- The run -------------------------------------------------------------------------------------------
start_time=$SECONDS
client login
half=$((TOTAL / 2))
client submit --first 0 --count "$half"
# A poller keeps GETs flowing through nginx for the whole run (and waits for the end).
client_bg wait --total "$TOTAL" --deadline "$DEADLINE"
poller=$!
pids+=("$poller")

# 1. SIGKILL a worker that holds a job: one with an ffmpeg child; its scratch path names the
# task. The worker is stopped (SIGSTOP) first and the child checked again, so that the job
# cannot finish between the look and the kill.
victim=
busy_worker() {
    local w pid child
    for w in w1 w2 w3; do
        pid=${pid_of[$w]}
        child=$(pgrep -P "$pid" -x ffmpeg | head -n 1) || continue
        [ -n "$child" ] || continue
        victim_task=$(tr '\0' '\n' <"/proc/$child/cmdline" 2>/dev/null; readlink "/proc/$child/cwd" 2>/dev/null) || true
        victim_task=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$victim_task" | head -n 1) || true
        [ -n "$victim_task" ] || continue
        kill -STOP "$pid"
        if [ "$(awk '{print $3}' "/proc/$child/stat" 2>/dev/null)" = "" ] ||
            [ "$(awk '{print $3}' "/proc/$child/stat" 2>/dev/null)" = "Z" ]; then
            kill -CONT "$pid" # the run ended meanwhile: look again
            continue
        fi
        victim=$w
        victim_child=$child
        return 0
    done
    return 1
}
end=$((SECONDS + 120))
until busy_worker; do
    [ $SECONDS -lt $end ] || die "no worker ran ffmpeg within 120 s"
    sleep 0.05
done
victim_pid=${pid_of[$victim]}
kill -KILL "$victim_pid"
kill -KILL "$victim_child" 2>/dev/null || true # the orphaned ffmpeg would finish into scratch
echo "$victim_task" >>"$work/interrupted"
say "SIGKILLed worker $victim (pid $victim_pid) while it ran task $victim_task"

# 2. SIGKILL an API process (the poller's GETs are in flight through nginx).
kill -KILL "${pid_of[api1]}"
say "SIGKILLed api1 (pid ${pid_of[api1]})"

# 3. Submit the second half and restart PostgreSQL while those submissions are in flight.
client_bg submit --first "$half" --count "$((TOTAL - half))" --interval 0.25
submitter=$!
pids+=("$submitter")
submitted_at_least() { [ "$(wc -l <"$work/tasks.jsonl")" -ge "$1" ]; }
wait_for "the second batch to start" 60 submitted_at_least $((half + 2))
client snapshot
pg_down=$(now)
as_pg_user "$pg_ctl_bin" -D "$pg_dir/data" -m fast -w stop >/dev/null
say "PostgreSQL stopped; down for ${PG_DOWN_SECONDS}s"
sleep "$PG_DOWN_SECONDS" # the outage itself, not a wait for a condition
as_pg_user "$pg_ctl_bin" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 -o "$pg_opts" start >/dev/null ||
    die "PostgreSQL did not restart: $(tail -n 5 "$pg_dir/server.log")"
pg_up=$(now)
echo "$pg_down $pg_up" >"$work/pg-window"
say "PostgreSQL up again"

wait "$submitter" || die "the second batch of submissions failed"
# The last task waits behind the others: follow its events through nginx; they must arrive
# as they happen (client.py cmd_events).
client_bg events --index $((TOTAL - 1))
watcher=$!
pids+=("$watcher")
wait "$poller" || die "the tasks did not all finish"
wait "$watcher" || die "the event stream through nginx did not behave"
elapsed=$((SECONDS - start_time))

# --- Checks ----------------------------------------------------------------------------------------------
# The survivors of the kills outlived the PostgreSQL restart and are ready again, unrestarted.
alive_count=0
for name in api2 w1 w2 w3; do
    [ "$name" != "$victim" ] || continue
    if alive "${pid_of[$name]}" && curl -fsS -o /dev/null "http://127.0.0.1:${port_of[$name]}/readyz"; then
        alive_count=$((alive_count + 1))
    else
        say "VIOLATION: $name (pid ${pid_of[$name]}) died or is not ready"
    fi
done
rc=0
# Requests nginx moved to the other API after a connection error (the killed one).
failovers=$(grep -c 'upstream=[0-9.:]*, ' "$work/nginx/access.log" || true)
read -r -a events_result <"$work/events-result"
client check --total "$TOTAL" --storage "$STORAGE" ${s3_endpoint:+--s3-endpoint "$s3_endpoint"} \
    --extra "storage=$storage_kind" "nginx_failovers=$failovers" "${events_result[@]}" "survivors_ready=$alive_count/3" \
    "seconds=$elapsed" || rc=$?
[ "$alive_count" -eq 3 ] || rc=1
exit $rc
