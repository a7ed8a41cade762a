#!/usr/bin/env bash
# API benchmark, against `reelforge serve` with REELFORGE_WORKERS=0 (nothing is processed, the
# submitted tasks stay `queued`), once per database backend: SQLite, then PostgreSQL (a
# throw-away cluster started for the run, durable defaults). The same scenarios on each:
#   1. wrk, 64 connections for 20 s, on authenticated GET /api/tasks/{id}: requests/s,
#      p50/p99 latency, errors (non-2xx/3xx responses + socket errors);
#   2. the same load on authenticated GET /api/tasks (a page of 20), then on GET /healthz (no
#      auth, no database) as the reference from the same run: each read's ratio to it
#      (issue 14: GET task >= 0.35x, served from the read cache when nothing changed);
#   3. streamed upload of a 1 GiB file (curl -F file=@big.bin): the server's peak RSS growth;
#   4. wrk, 16 connections for 20 s, every request a 16 MiB multipart upload to POST /api/tasks
#      (the conversion tool's upload scenario): uploads/s, p50/p95/p99, errors.
# A summary line per backend puts them side by side.
#
#   bench/api/run.sh
#   DURATION=30s CONNECTIONS=64 THREADS=2 bench/api/run.sh
#   BACKENDS=postgres bench/api/run.sh          # one backend only
#   UPLOAD_CONNECTIONS=16 PART_MIB=16 UPLOAD_DURATION=20s bench/api/run.sh
#   PROFILE=1 bench/api/run.sh    # also perf-record the server under the GET load, top symbols
#
# wrk runs on the same 2-core machine as the server, so the client takes a share of the CPU:
# the figures are those of server + load generator sharing two cores. The uploads land on the
# same disk as the database.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
UPLOAD_MIB="${UPLOAD_MIB:-1024}"
BACKENDS="${BACKENDS:-sqlite postgres}"
UPLOAD_CONNECTIONS="${UPLOAD_CONNECTIONS:-16}"
UPLOAD_DURATION="${UPLOAD_DURATION:-$DURATION}"
PART_MIB="${PART_MIB:-16}"
BOUNDARY="reelforgebench7MA4YWxkTrZu0gW"

need wrk
need curl
build_release
case " $BACKENDS " in *" postgres "*) start_postgres ;; esac
wait_quiet
machine_line

status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$RF_PID/status"; }

# Context switches of all the server's threads (voluntary + involuntary).
ctx_switches() { cat /proc/"$RF_PID"/task/*/status 2>/dev/null | awk '/_ctxt_switches:/ {n += $2} END {print n}'; }
# Per thread name: "name switches" lines (summed over threads of that name).
ctx_by_thread() {
    local t
    for t in /proc/"$RF_PID"/task/*; do
        awk '/^Name:/ {name = $2} /_ctxt_switches:/ {n += $2} END {print name, n}' "$t/status" 2>/dev/null
    done | awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' | sort
}

# run_wrk NAME URL [wrk args...] -> prints the figures, keeps the raw output in $WORK/wrk_NAME.txt
run_wrk() {
    local name=$1 url=$2 c0 c1
    shift 2
    local b0 b1 o0 o1 w0 w1
    c0=$(ctx_switches)
    ctx_by_thread >"$WORK/ctx0"
    b0=$(cpu_busy_s); o0=$(python3 -c "print($(proc_cpu_s "$RF_PID") + $(proc_cpu_s $$))"); w0=$(now)
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$WORK/wrk_$name.txt" 2>&1
    w1=$(now); b1=$(cpu_busy_s); o1=$(python3 -c "print($(proc_cpu_s "$RF_PID") + $(proc_cpu_s $$))")
    python3 - "$name" "$WORK/wrk_$name.txt" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
t = open(path).read()
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
total = int(re.search(r"(\d+) requests in", t).group(1))
p = {k: ms(v) for k, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", t, re.M)}
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", t)) else 0
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
sock_total = sum(map(int, sock.groups())) if sock else 0
print(f"{name}: requests/s={rps:.0f} requests={total} p50_ms={p['50']:.2f} p90_ms={p['90']:.2f} "
      f"p99_ms={p['99']:.2f} non2xx={non2xx} socket_errors={sock_total}"
      + (f" ({sock.group(0)})" if sock else ""))
open(path + ".rps", "w").write(str(rps))
open(path + ".n", "w").write(str(total))
open(path + ".summary", "w").write(f"requests/s={rps:.0f} p99_ms={p['99']:.2f} errors={non2xx + sock_total}")
PY
    c1=$(ctx_switches)
    ctx_by_thread >"$WORK/ctx1"
    echo "$name: contention: other processes used $(other_cpu "$b0" "$b1" "$o0" "$o1" "$(elapsed "$w0" "$w1")")"
    echo "$name: server context switches per request: $(ratio "$((c1 - c0))" "$(cat "$WORK/wrk_$name.txt.n")") ($(join -a2 -e0 -o 2.1,1.2,2.2 "$WORK/ctx0" "$WORK/ctx1" |
        awk -v n="$(cat "$WORK/wrk_$name.txt.n")" '{d = ($3 - $2) / n; if (d >= 0.01) {printf "%s%s %.2f", sep, $1, d; sep = ", "}}'))"
}

# ---------------------------------------------------------------- 1 GiB upload
# upload_rss B: one streamed upload of UPLOAD_MIB; the server's memory before, during, after.
upload_rss() {
    local b=$1
    truncate -s "${UPLOAD_MIB}M" "$WORK/big.bin" # sparse zeros: the disk read is free, the bytes are real
    RSS0=$(status_kib VmRSS)
    HWM0=$(status_kib VmHWM)
    # Reset the peak so VmHWM afterwards is the upload's own peak (Linux >= 4.0).
    if echo 5 >"/proc/$RF_PID/clear_refs" 2>/dev/null; then HWM_RESET=yes; else HWM_RESET=no; fi
    # Also sample VmRSS every 50 ms as a cross-check.
    rm -f "$WORK/upload.done" "$WORK/rss.max"
    (
        max=0
        while kill -0 "$RF_PID" 2>/dev/null && [ ! -e "$WORK/upload.done" ]; do
            r=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$RF_PID/status" 2>/dev/null || echo 0)
            [ "${r:-0}" -gt "$max" ] && max=$r && echo "$max" >"$WORK/rss.max"
            sleep 0.05
        done
    ) &
    SAMPLER=$!
    BG_PIDS+=("$SAMPLER")
    log "$b: uploading ${UPLOAD_MIB} MiB"
    U0=$(now)
    UPLOAD=$(curl -sS -w '\n%{http_code}' "${AUTH[@]}" -F "file=@$WORK/big.bin;filename=big.bin" "$RF_URL/api/tasks")
    U1=$(now)
    touch "$WORK/upload.done"
    wait "$SAMPLER" 2>/dev/null || true
    UPLOAD_CODE=$(tail -1 <<<"$UPLOAD")
    RSS1=$(status_kib VmRSS)
    HWM1=$(status_kib VmHWM)
    SAMPLED=$(cat "$WORK/rss.max" 2>/dev/null || echo "$RSS0")
    UPLOAD_S=$(elapsed "$U0" "$U1")
    if [ "$HWM_RESET" = yes ]; then PEAK_BASE=$RSS0; else PEAK_BASE=$HWM0; fi
    echo "$b upload: HTTP $UPLOAD_CODE, ${UPLOAD_MIB} MiB in ${UPLOAD_S} s ($(python3 -c "print(f'{$UPLOAD_MIB / $UPLOAD_S:.0f}')") MiB/s)"
    echo "$b upload_rss_kib: before VmRSS=$RSS0 VmHWM=$HWM0 | after VmRSS=$RSS1 VmHWM=$HWM1 (peak reset before upload: $HWM_RESET) | sampled max VmRSS=$SAMPLED"
    echo "$b upload_peak_rss_growth_mib: $(python3 -c "print(f'{($HWM1 - $PEAK_BASE) / 1024:.1f}')")  (target < 64)"
    echo "$b upload_rss_retained_mib: $(python3 -c "print(f'{($RSS1 - $RSS0) / 1024:.1f}')")"
    [ "$UPLOAD_CODE" = 201 ] || { echo "upload failed: $UPLOAD" >&2; tail -20 "$RF_LOG" >&2; }
    rm -f "$WORK/big.bin"
    sync # the stored GiB, written back before the next scenario
}

# ---------------------------------------------------------------- 16 MiB multipart uploads
# One multipart body (a PART_MIB file part of random bytes), built once; wrk sends it on every
# request. The Lua done() hook prints p95, which wrk's --latency table lacks.
python3 - "$WORK/upload.body" "$PART_MIB" "$BOUNDARY" <<'PY'
import os, sys
path, mib, b = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with open(path, "wb") as f:
    f.write(b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n")
    f.write(os.urandom(1 << 20) * mib)
    f.write(b"\r\n--" + b + b"--\r\n")
PY

upload_load() {
    local b=$1
    cat >"$WORK/upload-$b.lua" <<LUA
local f = assert(io.open("$WORK/upload.body", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=$BOUNDARY"
wrk.headers["Authorization"] = "Bearer $TOKEN"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("lua: p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f status_errors=%d socket_errors=%d\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
    log "$b: wrk -t$THREADS -c$UPLOAD_CONNECTIONS -d$UPLOAD_DURATION POST /api/tasks (${PART_MIB} MiB multipart uploads)"
    wrk -t"$THREADS" -c"$UPLOAD_CONNECTIONS" -d"$UPLOAD_DURATION" --timeout 60s -s "$WORK/upload-$b.lua" \
        "$RF_URL/api/tasks" >"$WORK/wrk_${b}_upload.txt" 2>&1
    python3 - "$b" "$WORK/wrk_${b}_upload.txt" "$PART_MIB" <<'PY'
import re, sys
b, path, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = open(path).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
total = int(re.search(r"(\d+) requests in", t).group(1))
lua = dict(re.findall(r"(\w+)=([\d.]+)", re.search(r"^lua: (.*)$", t, re.M).group(1)))
errors = int(lua["status_errors"]) + int(lua["socket_errors"])
print(f"{b} upload_{mib}mib: uploads/s={rps:.2f} uploads={total} MiB/s={rps * mib:.0f} "
      f"p50_ms={float(lua['p50_ms']):.0f} p95_ms={float(lua['p95_ms']):.0f} p99_ms={float(lua['p99_ms']):.0f} "
      f"errors={errors} (non-2xx={lua['status_errors']}, socket={lua['socket_errors']})")
open(path + ".summary", "w").write(f"uploads/s={rps:.2f} p95_ms={float(lua['p95_ms']):.0f} errors={errors}")
PY
    local queued
    queued=$(curl -fsS "${AUTH[@]}" "$RF_URL/api/tasks?status=queued&max=1000" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    echo "$b upload: tasks queued after the load (max 1000 counted): $queued"
}

# ---------------------------------------------------------------- one backend
# run_backend B: the service on backend B (sqlite | postgres), every scenario, then stop it.
run_backend() {
    local b=$1 db_env=()
    if [ "$b" = postgres ]; then
        psql_do postgres -c "CREATE DATABASE api_bench"
        db_env=(REELFORGE_DATABASE_URL="${PG_URL%/*}/api_bench")
    fi
    RF_DATA="$WORK/data-$b" start_service REELFORGE_WORKERS=0 REELFORGE_FETCH_ALLOW=127.0.0.1 "${db_env[@]}"
    api_login
    AUTH=(-H "Authorization: Bearer $TOKEN")
    # The reads are measured first, once the disks are quiet (a previous backend's 9 GB of
    # uploads are written back and freed): under writeback, p99 measures the disk, not the
    # request path (GET task on PostgreSQL after the SQLite half: p99 37 ms; alone: 11 ms).
    wait_disk_quiet

    # The task to read.
    CREATED=$(curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' \
        -d '{"url":"http://127.0.0.1:9/never-fetched.mp4"}' "$RF_URL/api/tasks")
    TASK_ID=$(json_get id <<<"$CREATED")
    sleep 1
    STATUS=$(curl -fsS "${AUTH[@]}" "$RF_URL/api/tasks/$TASK_ID" | json_get status)
    echo "$b task: $TASK_ID status=$STATUS (REELFORGE_WORKERS=0: expected queued)"
    curl -fsS "${AUTH[@]}" -o "$WORK/one.json" -w "$b one response: HTTP %{http_code}, %{size_download} bytes\n" \
        "$RF_URL/api/tasks/$TASK_ID"
    cat >"$WORK/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA

    log "$b: wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /api/tasks/{id} (authenticated)"
    run_wrk "${b}_get_task" "$RF_URL/api/tasks/$TASK_ID" -s "$WORK/auth.lua"
    log "$b: wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /api/tasks (authenticated, a page of 20)"
    run_wrk "${b}_list" "$RF_URL/api/tasks" -s "$WORK/auth.lua"
    log "$b: wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /healthz (reference: no auth, no database)"
    run_wrk "${b}_healthz" "$RF_URL/healthz"
    for read in get_task list; do
        echo "$b $read / healthz throughput: $(ratio "$(cat "$WORK/wrk_${b}_$read.txt.rps")" "$(cat "$WORK/wrk_${b}_healthz.txt.rps")")  (target >= 0.35)"
    done
    echo "$b server VmRSS after load: $(status_kib VmRSS) KiB, threads: $(status_kib Threads)"

    # ------------------------------------------------------------ optional profile
    if [ -n "${PROFILE:-}" ]; then
        log "$b: perf record of the server under the GET load (10 s)"
        wrk -t"$THREADS" -c"$CONNECTIONS" -d12s -s "$WORK/auth.lua" "$RF_URL/api/tasks/$TASK_ID" >/dev/null 2>&1 &
        WRK_PID=$!
        BG_PIDS+=("$WRK_PID")
        sleep 1
        perf record -q -F 499 -g -p "$RF_PID" -o "$WORK/perf-$b.data" -- sleep 10 >/dev/null 2>&1 || true
        wait "$WRK_PID" 2>/dev/null || true
        echo "$b perf: share by DSO (server process, GET /api/tasks/{id} load)"
        perf report -i "$WORK/perf-$b.data" --no-children --sort dso -g none --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | sed 's/ *$//' | head -8
        echo "$b perf: top symbols by self time"
        perf report -i "$WORK/perf-$b.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-150 | head -25
    fi

    upload_rss "$b"
    upload_load "$b"

    kill "$RF_PID" 2>/dev/null || true
    wait "$RF_PID" 2>/dev/null || true
    rm -rf "$WORK/data-$b"
}

for backend in $BACKENDS; do
    run_backend "$backend"
done

echo "summary (targets, GET /api/tasks/{id}: >= 0.35x the requests/s of /healthz, p99 <= 20 ms, zero errors):"
for backend in $BACKENDS; do
    rps() { cat "$WORK/wrk_${backend}_$1.txt.rps"; }
    echo "  $backend: GET /api/tasks/{id} $(cat "$WORK/wrk_${backend}_get_task.txt.summary") ($(ratio "$(rps get_task)" "$(rps healthz)")x healthz)" \
        "| GET /api/tasks $(cat "$WORK/wrk_${backend}_list.txt.summary") ($(ratio "$(rps list)" "$(rps healthz)")x)" \
        "| healthz $(cat "$WORK/wrk_${backend}_healthz.txt.summary")" \
        "| ${PART_MIB} MiB uploads x$UPLOAD_CONNECTIONS $(cat "$WORK/wrk_${backend}_upload.txt.summary")"
done
echo "loadavg_after: $(cut -d' ' -f1-3 /proc/loadavg)"
