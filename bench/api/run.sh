#!/usr/bin/env bash
# API benchmark, against `reelforge serve` with REELFORGE_WORKERS=0 (nothing is processed, the
# submitted task stays `queued`):
#   1. streamed upload of a 1 GiB file (curl -F file=@big.bin): the server's peak RSS growth;
#   2. wrk, 64 connections for 20 s, on authenticated GET /api/tasks/{id}: requests/s,
#      p50/p99 latency, errors (non-2xx/3xx responses + socket errors);
#   3. the same load on GET /healthz (no auth, no database) as a reference from the same run.
#
#   bench/api/run.sh
#   DURATION=30s CONNECTIONS=64 THREADS=2 bench/api/run.sh
#   PROFILE=1 bench/api/run.sh    # also perf-record the server under the GET load, top symbols
#
# wrk runs on the same 2-core machine as the server, so the client takes a share of the CPU:
# the figures are those of server + load generator sharing two cores.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
UPLOAD_MIB="${UPLOAD_MIB:-1024}"

build_release
wait_quiet
machine_line

start_service REELFORGE_WORKERS=0 REELFORGE_FETCH_ALLOW=127.0.0.1
api_login
AUTH=(-H "Authorization: Bearer $TOKEN")

status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$RF_PID/status"; }

# ---------------------------------------------------------------- 1 GiB upload
truncate -s "${UPLOAD_MIB}M" "$WORK/big.bin" # sparse zeros: the disk read is free, the bytes are real
RSS0=$(status_kib VmRSS)
HWM0=$(status_kib VmHWM)
# Reset the peak so VmHWM afterwards is the upload's own peak (Linux >= 4.0).
if echo 5 >"/proc/$RF_PID/clear_refs" 2>/dev/null; then HWM_RESET=yes; else HWM_RESET=no; fi
# Also sample VmRSS every 50 ms as a cross-check.
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
log "uploading ${UPLOAD_MIB} MiB"
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
echo "upload: HTTP $UPLOAD_CODE, ${UPLOAD_MIB} MiB in ${UPLOAD_S} s ($(python3 -c "print(f'{$UPLOAD_MIB / $UPLOAD_S:.0f}')") MiB/s)"
echo "upload_rss_kib: before VmRSS=$RSS0 VmHWM=$HWM0 | after VmRSS=$RSS1 VmHWM=$HWM1 (peak reset before upload: $HWM_RESET) | sampled max VmRSS=$SAMPLED"
echo "upload_peak_rss_growth_mib: $(python3 -c "print(f'{($HWM1 - $PEAK_BASE) / 1024:.1f}')")  (target < 64)"
echo "upload_rss_retained_mib: $(python3 -c "print(f'{($RSS1 - $RSS0) / 1024:.1f}')")"
[ "$UPLOAD_CODE" = 201 ] || { echo "upload failed: $UPLOAD" >&2; tail -20 "$RF_LOG" >&2; }
rm -f "$WORK/big.bin"

# ---------------------------------------------------------------- the task to read
CREATED=$(curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' \
    -d '{"url":"http://127.0.0.1:9/never-fetched.mp4"}' "$RF_URL/api/tasks")
TASK_ID=$(json_get id <<<"$CREATED")
sleep 1
STATUS=$(curl -fsS "${AUTH[@]}" "$RF_URL/api/tasks/$TASK_ID" | json_get status)
echo "task: $TASK_ID status=$STATUS (REELFORGE_WORKERS=0: expected queued)"
curl -fsS "${AUTH[@]}" -o "$WORK/one.json" -w 'one response: HTTP %{http_code}, %{size_download} bytes\n' \
    "$RF_URL/api/tasks/$TASK_ID"

# ---------------------------------------------------------------- wrk
cat >"$WORK/auth.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF

# run_wrk NAME URL [wrk args...] -> prints the figures, keeps the raw output in $WORK/wrk_NAME.txt
# Context switches of all the server's threads (voluntary + involuntary).
ctx_switches() { cat /proc/"$RF_PID"/task/*/status 2>/dev/null | awk '/_ctxt_switches:/ {n += $2} END {print n}'; }
# Per thread name: "name switches" lines (summed over threads of that name).
ctx_by_thread() {
    local t
    for t in /proc/"$RF_PID"/task/*; do
        awk '/^Name:/ {name = $2} /_ctxt_switches:/ {n += $2} END {print name, n}' "$t/status" 2>/dev/null
    done | awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' | sort
}

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
PY
    c1=$(ctx_switches)
    ctx_by_thread >"$WORK/ctx1"
    echo "$name: contention: other processes used $(other_cpu "$b0" "$b1" "$o0" "$o1" "$(elapsed "$w0" "$w1")")"
    echo "$name: server context switches per request: $(ratio "$((c1 - c0))" "$(cat "$WORK/wrk_$name.txt.n")") ($(join -a2 -e0 -o 2.1,1.2,2.2 "$WORK/ctx0" "$WORK/ctx1" |
        awk -v n="$(cat "$WORK/wrk_$name.txt.n")" '{d = ($3 - $2) / n; if (d >= 0.01) {printf "%s%s %.2f", sep, $1, d; sep = ", "}}'))"
}

log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /api/tasks/{id} (authenticated)"
run_wrk get_task "$RF_URL/api/tasks/$TASK_ID" -s "$WORK/auth.lua"
log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /healthz (reference: no auth, no database)"
run_wrk healthz "$RF_URL/healthz"
echo "targets (GET /api/tasks/{id}): >= 10000 requests/s, p99 <= 20 ms, zero errors"
echo "get_task / healthz throughput: $(ratio "$(cat "$WORK/wrk_get_task.txt.rps")" "$(cat "$WORK/wrk_healthz.txt.rps")")"
echo "server VmRSS after load: $(status_kib VmRSS) KiB, threads: $(status_kib Threads)"
echo "loadavg_after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- optional profile
if [ -n "${PROFILE:-}" ]; then
    log "perf record of the server under the GET load (10 s)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d12s -s "$WORK/auth.lua" "$RF_URL/api/tasks/$TASK_ID" >/dev/null 2>&1 &
    WRK_PID=$!
    BG_PIDS+=("$WRK_PID")
    sleep 1
    perf record -q -F 499 -g -p "$RF_PID" -o "$WORK/perf.data" -- sleep 10 >/dev/null 2>&1 || true
    wait "$WRK_PID" 2>/dev/null || true
    echo "perf: share by DSO (server process, GET /api/tasks/{id} load)"
    perf report -i "$WORK/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | sed 's/ *$//' | head -8
    echo "perf: top symbols by self time"
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-150 | head -25
fi
