#!/usr/bin/env bash
# convert / compress benchmark: the service's wall time for a conversion submitted as an upload
# against THE SAME ffmpeg command run by hand, measured in the same run.
#
#   bench/convert/run.sh                       # all cases, RUNS=3 (medians reported)
#   RUNS=1 CASES="mkv mp4" bench/convert/run.sh
#   WAIT=poll bench/convert/run.sh             # poll GET /api/tasks/{id} instead of the event stream
#
# Source: 30 s 1280x720 30 fps H.264 yuv420p (lavfi `mandelbrot`, as bench/idrl: every pixel moves,
# fine detail on the set's edge; x264 veryfast 8 Mbit/s VBV, 2 s GOP) + AAC 44.1 kHz stereo,
# generated once and cached in bench/out/.
#
# Cases (multipart upload: `file` + `profile`/`options`, or the legacy `newFormat` field):
#   webm      convert {"format":"webm"}                      VP9 + Opus
#   avi       convert {"format":"avi"}                       MPEG-4 Part 2 + MP3
#   wmv       convert {"format":"wmv"}                       WMV2 + WMA2
#   mkv       newFormat=mkv                                  remux: the command must hold `-c copy`
#   compress  compress {"quality":"medium"}                  x264 in the input's container (mp4)
#   mp4       convert {"format":"mp4","quality":"medium"}    x264 re-encode: the remux's baseline
#
# service wall = POST (upload included) -> the task is seen `succeeded`. By default the wait is the
# task's event stream (GET /api/tasks/{id}/events, closed at the final state: no polling delay and
# no curl process every few ms competing with ffmpeg for the 2 cores), then one GET
# /api/tasks/{id} reads the finished task; WAIT=poll polls GET /api/tasks/{id} every POLL s.
#
# Reference: the exact command the service ran, read from the task's `commands` (scratch paths
# made relative: `... -i file:input ... file:out/clip.webm`), re-run with bash in a fresh temp dir
# holding a copy of the source as `input` and an empty `out/`, stdout (ffmpeg -progress) to a file.
#
# Also printed per case: the service's own ffmpeg process time (its "process exited" debug log
# line, RUST_LOG=reelforge::process=debug) and the task's started_at -> finished_at, each against
# the reference; output sizes (service vs reference: same bytes expected with the same command).
#
# Before every case the script waits (up to CASE_QUIET_WAIT s, default 90) for a quiet machine,
# and each line carries the CPU used by other processes during both measurements. A run is clean
# when they used < CLEAN_PCT % (default 5) of the machine in both; the summary gives medians over
# the clean runs (over all runs, n_clean=0, when none was).
#
# Figures printed (key: value). Exit status 0 even when targets are missed: this measures.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUNS="${RUNS:-3}"
CASES="${CASES:-webm avi wmv mkv compress mp4}"
WAIT="${WAIT:-events}"
POLL="${POLL:-0.1}"
DURATION=30
W=1280 H=720
SRC="$CACHE/convert_src_mandelbrot_${DURATION}s_720p30.mp4"

build_release
wait_quiet
machine_line

if [ ! -s "$SRC" ]; then
    log "generating $SRC (once; cached)"
    ffmpeg -nostdin -hide_banner -loglevel error \
        -f lavfi -i "mandelbrot=s=${W}x${H}:r=30" \
        -f lavfi -i "sine=frequency=440:sample_rate=44100:beep_factor=4" \
        -t "$DURATION" -map 0:v -map 1:a \
        -c:v libx264 -preset veryfast -b:v 8M -maxrate 10M -bufsize 20M -g 60 -pix_fmt yuv420p \
        -c:a aac -b:a 160k -ac 2 -movflags +faststart -y "$SRC.tmp.mp4"
    mv "$SRC.tmp.mp4" "$SRC"
fi
SRC_SIZE=$(stat -c %s "$SRC")
echo "source: mandelbrot $(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height,pix_fmt,r_frame_rate -of csv=p=0 "$SRC") + $(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels -of csv=p=0 "$SRC"), $(ffprobe -v error -show_entries format=duration,bit_rate -of csv=p=0 "$SRC" | awk -F, '{printf "%.2f s, %.1f Mbit/s", $1, $2/1e6}'), $(python3 -c "print(f'{$SRC_SIZE/1e6:.2f}')") MB"
echo "wait: $WAIT  runs: $RUNS  cases: $CASES"

# ---------------------------------------------------------------- service
start_service RUST_LOG="warn,reelforge::process=debug"
api_login
AUTH=(-H "Authorization: Bearer $TOKEN")

form_of() { # form_of CASE -> curl -F arguments, one per line
    case "$1" in
        webm) printf '%s\n' profile=convert 'options={"format":"webm"}' ;;
        avi) printf '%s\n' profile=convert 'options={"format":"avi"}' ;;
        wmv) printf '%s\n' profile=convert 'options={"format":"wmv"}' ;;
        mkv) printf '%s\n' newFormat=mkv ;;
        compress) printf '%s\n' profile=compress 'options={"quality":"medium"}' ;;
        mp4) printf '%s\n' profile=convert 'options={"format":"mp4","quality":"medium"}' ;;
        *) echo "unknown case $1" >&2; exit 2 ;;
    esac
}

# wait_final ID: until the task is final; sets BODY (the finished task) and STATUS.
wait_final() {
    local id=$1
    STATUS=queued
    if [ "$WAIT" = events ]; then
        curl -fsS -N "${AUTH[@]}" -o /dev/null --max-time 1800 "$RF_URL/api/tasks/$id/events" || true
    fi
    while :; do
        BODY=$(curl -fsS "${AUTH[@]}" "$RF_URL/api/tasks/$id")
        [[ $BODY =~ \"status\":\"([a-z]+)\" ]] && STATUS=${BASH_REMATCH[1]}
        case "$STATUS" in succeeded | failed | cancelled) return 0 ;; esac
        sleep "$POLL"
    done
}

# proc_log_s FROM_LINE PROGRAM: sum of PROGRAM's (ffmpeg, ffprobe) run times logged after line
# FROM_LINE of the service log.
proc_log_s() {
    tail -n +"$(($1 + 1))" "$RF_LOG" | python3 -c '
import re, sys
units = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
total, n = 0.0, 0
for line in sys.stdin:
    if "process exited" not in line:
        continue
    prog = re.search(r"program=\"([^\"]*)\"", line)
    m = re.search(r"elapsed=([0-9.]+)(s|ms|µs|us|ns)\b", line)
    if prog and m and prog.group(1).rsplit("/", 1)[-1] == sys.argv[1]:
        total += float(m.group(1)) * units[m.group(2)]
        n += 1
print(f"{total:.3f}" if n else "nan")' "$2"
}

# Per case, space-separated samples of every run (ALL_*) and of the clean runs only (other
# processes used < CLEAN_PCT % of the machine during both the service and the reference run).
CLEAN_PCT="${CLEAN_PCT:-5}"
declare -A ALL_SVC ALL_REF ALL_FFM ALL_SRV SVC REF FFM SRV NCLEAN SIZE_SVC SIZE_REF
for c in $CASES; do
    ALL_SVC[$c]=""; ALL_REF[$c]=""; ALL_FFM[$c]=""; ALL_SRV[$c]=""
    SVC[$c]=""; REF[$c]=""; FFM[$c]=""; SRV[$c]=""; NCLEAN[$c]=0
done
pct_of() { sed -n 's/.*(\([0-9]*\)% of the machine).*/\1/p' <<<"$1"; }

run_case() { # run_case CASE RUN
    local c=$1 run=$2 form=() cmds=() f b0 b1 o0 o1 t0 t1 created id lines wall
    while IFS= read -r f; do form+=(-F "$f"); done < <(form_of "$c")
    QUIET_WAIT=${CASE_QUIET_WAIT:-90} wait_quiet
    lines=$(wc -l <"$RF_LOG")

    # -- service
    b0=$(cpu_busy_s); o0=$(python3 -c "print($(proc_cpu_s "$RF_PID") + $(proc_cpu_s $$))")
    t0=$(now)
    created=$(curl -fsS "${AUTH[@]}" -F "file=@$SRC;filename=clip.mp4;type=video/mp4" "${form[@]}" \
        "$RF_URL/api/tasks")
    id=$(json_get id <<<"$created")
    wait_final "$id"
    t1=$(now)
    b1=$(cpu_busy_s); o1=$(python3 -c "print($(proc_cpu_s "$RF_PID") + $(proc_cpu_s $$))")
    if [ "$STATUS" != succeeded ]; then
        echo "case $c: service task ended $STATUS:" >&2
        echo "$BODY" >&2
        tail -30 "$RF_LOG" >&2
        exit 1
    fi
    wall=$(elapsed "$t0" "$t1")
    local svc_other ffm probe srv ncmd out_name out_size result
    svc_other=$(other_cpu "$b0" "$b1" "$o0" "$o1" "$wall")
    ffm=$(proc_log_s "$lines" ffmpeg)
    probe=$(proc_log_s "$lines" ffprobe)
    read -r srv ncmd out_name out_size result < <(python3 -c '
import json, sys
from datetime import datetime
t = json.load(sys.stdin)
p = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
o = t["outputs"][0] if t["outputs"] else {"name": "-", "size": 0}
r = t.get("result")
print("%.3f" % (p(t["finished_at"]) - p(t["started_at"])).total_seconds(), len(t["commands"]),
      o["name"], o["size"], json.dumps(r, separators=(",", ":")) if r else "-")' <<<"$BODY")
    mapfile -t cmds < <(python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["commands"]))' <<<"$BODY")
    if [ "$c" = mkv ] && [[ " ${cmds[*]} " != *" -c copy "* ]]; then
        echo "case mkv: the service did not remux (no -c copy): ${cmds[*]}" >&2
        exit 1
    fi
    [ "$run" = 1 ] && printf 'command %s: %s\n' "$c" "${cmds[@]}"

    # -- reference: the same command(s), by hand, in a dir shaped like the scratch dir
    local dir="$WORK/ref_$c" r0 r1 ref ref_other ref_size
    rm -rf "$dir"; mkdir -p "$dir/out"
    cp "$SRC" "$dir/input"
    b0=$(cpu_busy_s); o0=$(proc_cpu_s $$)
    r0=$(now)
    for cmd in "${cmds[@]}"; do
        (cd "$dir" && bash -c "$cmd" >>"$dir/progress.txt")
    done
    r1=$(now)
    b1=$(cpu_busy_s); o1=$(proc_cpu_s $$)
    ref=$(elapsed "$r0" "$r1")
    ref_other=$(other_cpu "$b0" "$b1" "$o0" "$o1" "$ref")
    ref_size=$(du -cb "$dir"/out/* | tail -1 | cut -f1)
    rm -rf "$dir"

    ALL_SVC[$c]+="$wall "; ALL_REF[$c]+="$ref "; ALL_FFM[$c]+="$ffm "; ALL_SRV[$c]+="$srv "
    local clean=no
    if [ "$(pct_of "$svc_other")" -lt "$CLEAN_PCT" ] && [ "$(pct_of "$ref_other")" -lt "$CLEAN_PCT" ]; then
        clean=yes
        SVC[$c]+="$wall "; REF[$c]+="$ref "; FFM[$c]+="$ffm "; SRV[$c]+="$srv "
        NCLEAN[$c]=$((NCLEAN[$c] + 1))
    fi
    SIZE_SVC[$c]=$out_size; SIZE_REF[$c]=$ref_size
    echo "run $run $c: service_wall_s=$wall reference_wall_s=$ref ratio=$(ratio "$wall" "$ref")" \
        "service_ffmpeg_s=$ffm ffmpeg_ratio=$(ratio "$ffm" "$ref") service_ffprobe_s=$probe started_to_finished_s=$srv" \
        "output=$out_name/${out_size}B reference_output=${ref_size}B runs=$ncmd result=$result" \
        "contention: service \"$svc_other\", reference \"$ref_other\" clean=$clean"
}

for run in $(seq 1 "$RUNS"); do
    for c in $CASES; do
        run_case "$c" "$run"
    done
done

# ---------------------------------------------------------------- summary (medians)
# median "SPACE-SEPARATED SAMPLES"
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo
echo "summary: medians over the clean runs (other processes < $CLEAN_PCT % of the machine in both phases;"
echo "  over all runs when none was clean: n_clean=0). ratio = service / reference, target <= 1.10."
printf '%-9s %7s %9s %9s %7s %10s %9s %8s %9s %7s %7s\n' case n_clean svc_wall ref_wall ratio svc_ffmpeg ffm_ratio srv_s realtime out_MB ref_MB
declare -A MED
for c in $CASES; do
    if [ "${NCLEAN[$c]}" = 0 ]; then
        SVC[$c]=${ALL_SVC[$c]}; REF[$c]=${ALL_REF[$c]}; FFM[$c]=${ALL_FFM[$c]}; SRV[$c]=${ALL_SRV[$c]}
    fi
    sw=$(median "${SVC[$c]}"); rw=$(median "${REF[$c]}"); fw=$(median "${FFM[$c]}"); sv=$(median "${SRV[$c]}")
    MED[$c]=$sw
    printf '%-9s %7s %9.3f %9.3f %7s %10.3f %9s %8.3f %8sx %7s %7s\n' "$c" "${NCLEAN[$c]}/$RUNS" "$sw" "$rw" "$(ratio "$sw" "$rw")" \
        "$fw" "$(ratio "$fw" "$rw")" "$sv" "$(ratio "$DURATION" "$sw")" \
        "$(python3 -c "print(f'{${SIZE_SVC[$c]}/1e6:.2f}')")" "$(python3 -c "print(f'{${SIZE_REF[$c]}/1e6:.2f}')")"
done
if [ -n "${MED[mkv]:-}" ] && [ -n "${MED[mp4]:-}" ]; then
    echo "remux_wall / mp4_reencode_wall (service): $(ratio "${MED[mkv]}" "${MED[mp4]}")  (target < 0.10)"
    echo "remux_ffmpeg / mp4_reencode_ffmpeg (service's ffmpeg runs): $(ratio "$(median "${FFM[mkv]}")" "$(median "${FFM[mp4]}")")"
fi
