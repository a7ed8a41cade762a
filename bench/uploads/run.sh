#!/usr/bin/env bash
# Resumable (tus) against plain multipart uploads, in the same run, on local storage and on an
# S3 test server (moto): throughput of a 1 GiB file, and the server's peak RSS growth while
# it arrives. The tus upload goes in 8 MiB PATCH requests on one kept-alive connection
# (bench/uploads/tus_client.py, Python's standard library), the multipart one in one request
# (curl -F).
#
#   bench/uploads/run.sh
#   UPLOAD_MIB=256 CHUNK_MIB=8 BACKENDS=local bench/uploads/run.sh
#
# Prints per backend: seconds and MiB/s of each, their ratio (tus / multipart; the target is
# ≥ 0.8), and each upload's peak RSS growth over the idle server (the target is < 64 MiB).
# The file is random bytes made once (not sparse: zero pages would be cheaper to read).

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

UPLOAD_MIB="${UPLOAD_MIB:-1024}"
CHUNK_MIB="${CHUNK_MIB:-8}"
BACKENDS="${BACKENDS:-local s3}"

need curl
need python3
build_release
machine_line

random_file "$UPLOAD_MIB"

status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$RF_PID/status"; }
# Reset the kernel's peak-RSS mark (VmHWM) so it measures one upload.
reset_peak() { echo 5 >"/proc/$RF_PID/clear_refs"; }

multipart_upload() {
    curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -F "file=@$FILE;filename=big.bin" -F profile=thumbnail "$RF_URL/api/tasks"
}

tus_upload() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/tus_client.py" "$RF_URL" "$TOKEN" "$FILE" \
        "$((CHUNK_MIB * 1024 * 1024))"
}

# measure NAME FUNCTION: seconds and peak RSS growth (KiB) of one upload.
measure() {
    local name=$1 fn=$2 rss0 start end code hwm
    rss0=$(status_kib VmRSS)
    reset_peak
    start=$(now)
    code=$($fn)
    end=$(now)
    [ "$code" = 201 ] || { echo "$name upload failed: $code" >&2; cat "$RF_LOG" >&2; exit 1; }
    hwm=$(status_kib VmHWM)
    SECONDS_TAKEN=$(elapsed "$start" "$end")
    GROWTH_MIB=$(python3 -c "print(f'{($hwm - $rss0) / 1024:.1f}')")
    echo "$B $name: ${SECONDS_TAKEN}s, $(python3 -c "print(f'{$SIZE / 1048576 / $SECONDS_TAKEN:.1f}')") MiB/s, peak RSS growth ${GROWTH_MIB} MiB"
}

start_moto() {
    local program port
    program=${REELFORGE_TEST_MOTO:-$(command -v moto_server || true)}
    [ -n "$program" ] || { echo "moto_server is needed for the s3 backend (scripts/test.sh installs it)" >&2; exit 1; }
    port=$(free_port)
    bg_start "$program" -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1
    MOTO_URL="http://127.0.0.1:$port"
    wait_http "$MOTO_URL/" 60
    curl -fsS -X PUT "$MOTO_URL/bench" >/dev/null
}

for B in $BACKENDS; do
    RF_DATA="$WORK/data-$B"
    case $B in
    local) start_service REELFORGE_WORKERS=0 REELFORGE_MAX_UPLOAD=2GiB ;;
    s3)
        start_moto
        start_service REELFORGE_WORKERS=0 REELFORGE_MAX_UPLOAD=2GiB \
            REELFORGE_STORAGE_URL=s3://bench/rf REELFORGE_S3_ENDPOINT="$MOTO_URL" \
            AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
        ;;
    *) echo "unknown backend $B" >&2; exit 1 ;;
    esac
    api_login
    measure multipart multipart_upload
    M_S=$SECONDS_TAKEN M_RSS=$GROWTH_MIB
    measure "tus (${CHUNK_MIB} MiB chunks)" tus_upload
    T_S=$SECONDS_TAKEN T_RSS=$GROWTH_MIB
    echo "$B summary: ${UPLOAD_MIB} MiB, tus/multipart throughput $(ratio "$M_S" "$T_S")x (target >= 0.8), peak RSS growth multipart ${M_RSS} MiB, tus ${T_RSS} MiB (target < 64)"
    kill "$RF_PID" 2>/dev/null || true
    wait "$RF_PID" 2>/dev/null || true
done
