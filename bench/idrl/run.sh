#!/usr/bin/env bash
# idrl benchmark: wall time of the service's default `idrl` processing of a 60 s 1080p30 clip
# against ONE hand-written ffmpeg command producing the same three parts with the same encoder
# settings, measured in the same run; plus SSIM of output part 2 against its source span.
#
#   bench/idrl/run.sh                      # default: mandelbrot source, 1 run
#   SOURCE=testsrc2 bench/idrl/run.sh      # the cheap-to-encode test pattern instead
#   BENCH_PRESETS="medium medium:24 ultrafast" bench/idrl/run.sh  # reference at other PRESET[:CRF]
#
# Source choice: lavfi `mandelbrot` (a continuous zoom: every pixel moves every frame, with fine
# detail along the set's edge and flat areas inside) costs x264 about 2.5-3x more per frame than
# `testsrc2` (large flat areas, little texture), which is far easier than camera footage. Random
# `noise` overlays were rejected: incompressible grain makes x264 6-7x slower than testsrc2 at
# ~65 Mbit/s, unlike real footage, and makes SSIM meaningless. The source is generated once
# (x264 20 Mbit/s VBV, 2 s GOP, AAC 44.1 kHz stereo: like a phone camera file) and cached
# in bench/out/.
#
# Figures printed (key: value). Exit status 0 even when targets are missed: this measures.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

SOURCE="${SOURCE:-mandelbrot}"
DURATION=60
W=1920 H=1080 FPS=24 SEG=20 BUMPER=1
PRESET=veryfast CRF=19 ABR=128k
LOGO="$ROOT/assets/logo.png"

case "$SOURCE" in
    mandelbrot) VSRC="mandelbrot=s=${W}x${H}:r=30" ;;
    testsrc2) VSRC="testsrc2=s=${W}x${H}:r=30" ;;
    *) echo "SOURCE must be mandelbrot or testsrc2" >&2; exit 2 ;;
esac
SRC="$CACHE/idrl_src_${SOURCE}_${DURATION}s_1080p30.mp4"

build_release
wait_quiet
machine_line

if [ ! -s "$SRC" ]; then
    log "generating $SRC (once; cached)"
    ffmpeg -nostdin -hide_banner -loglevel error \
        -f lavfi -i "$VSRC" -f lavfi -i "sine=frequency=440:sample_rate=44100:beep_factor=4" \
        -t "$DURATION" -map 0:v -map 1:a \
        -c:v libx264 -preset veryfast -b:v 20M -maxrate 25M -bufsize 50M -g 60 -pix_fmt yuv420p \
        -c:a aac -b:a 192k -ac 2 -movflags +faststart -y "$SRC.tmp.mp4"
    mv "$SRC.tmp.mp4" "$SRC"
fi
echo "source: $SOURCE $(ffprobe -v error -show_entries format=duration,bit_rate -of csv=p=0 "$SRC" | awk -F, '{printf "%.2f s, %.1f Mbit/s", $1, $2/1e6}')"

# ---------------------------------------------------------------- service
start_service REELFORGE_FETCH_ALLOW=127.0.0.1
api_login

mkdir -p "$WORK/www"
ln -s "$SRC" "$WORK/www/bench_clip.mp4"
HPORT=$(free_port)
bg_start python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$HPORT" >"$WORK/http.log" 2>&1
HTTP_PID=$LAST_PID
wait_http "http://127.0.0.1:$HPORT/" 20

AUTH=(-H "Authorization: Bearer $TOKEN")
log "submitting the idrl task (defaults)"
B0=$(cpu_busy_s); O0=$(python3 -c "print($(proc_cpu_s "$RF_PID") + $(proc_cpu_s "$HTTP_PID") + $(proc_cpu_s $$))")
T0=$(now)
CREATED=$(curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$HPORT/bench_clip.mp4\"}" "$RF_URL/api/tasks")
TASK_ID=$(json_get id <<<"$CREATED")
STATUS=queued
# Poll cheaply (curl + bash regex, no interpreter per poll) every 0.2 s.
while :; do
    BODY=$(curl -fsS "${AUTH[@]}" "$RF_URL/api/tasks/$TASK_ID")
    [[ $BODY =~ \"status\":\"([a-z]+)\" ]] && STATUS=${BASH_REMATCH[1]}
    case "$STATUS" in succeeded | failed | cancelled) break ;; esac
    sleep 0.2
done
T1=$(now)
B1=$(cpu_busy_s); O1=$(python3 -c "print($(proc_cpu_s "$RF_PID") + $(proc_cpu_s "$HTTP_PID") + $(proc_cpu_s $$))")
if [ "$STATUS" != succeeded ]; then
    echo "service task ended $STATUS:" >&2
    echo "$BODY" >&2
    tail -50 "$RF_LOG" >&2
    exit 1
fi
SERVICE_WALL=$(elapsed "$T0" "$T1")
SERVER_SIDE=$(python3 -c '
import json, sys
from datetime import datetime
t = json.load(sys.stdin)
p = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
c, s, f = p(t["created_at"]), p(t["started_at"]), p(t["finished_at"])
print("%.3f %.3f" % ((f - c).total_seconds(), (f - s).total_seconds()))' <<<"$BODY")
NPARTS=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["outputs"]))' <<<"$BODY")
mkdir -p "$WORK/svc"
for i in $(seq 0 $((NPARTS - 1))); do
    name=$(json_get "outputs.$i.name" <<<"$BODY")
    curl -fsS "${AUTH[@]}" -o "$WORK/svc/$name" "$RF_URL/api/tasks/$TASK_ID/outputs/$name"
done
SVC_PART2="$WORK/svc/$(json_get outputs.1.name <<<"$BODY")"

# ---------------------------------------------------------------- reference
# One ffmpeg run: decode once, fps -> split into the three 20 s spans, each framed by the
# same logo bumper (logo scaled to fit, centred on black, 1 s, silent) and encoded to its own
# MP4 with the service's EncodeSettings (x264 veryfast crf 19 yuv420p 24 fps, AAC 128k 48 kHz
# stereo, +faststart). Written by hand, not derived from the planner.
# Sets REF_WALL_S and REF_OTHER (CPU used by other processes meanwhile).
timed_reference() { # timed_reference PRESET OUTDIR
    local b0 b1 o0 o1 r0 r1
    b0=$(cpu_busy_s); o0=$(proc_cpu_s $$); r0=$(now)
    reference "$@"
    r1=$(now); b1=$(cpu_busy_s); o1=$(proc_cpu_s $$)
    REF_WALL_S=$(elapsed "$r0" "$r1")
    REF_OTHER=$(other_cpu "$b0" "$b1" "$o0" "$o1" "$REF_WALL_S")
}
reference() { # reference PRESET OUTDIR
    local preset=$1 out=$2 g
    mkdir -p "$out"
    g="[0:v]fps=$FPS,setsar=1,format=yuv420p,split=3[v0][v1][v2];"
    g+="[v0]trim=start=0:end=20,setpts=PTS-STARTPTS[m0];"
    g+="[v1]trim=start=20:end=40,setpts=PTS-STARTPTS[m1];"
    g+="[v2]trim=start=40:end=60,setpts=PTS-STARTPTS[m2];"
    g+="[0:a]aresample=48000:async=1:first_pts=0,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,asplit=3[a0][a1][a2];"
    g+="[a0]atrim=start=0:end=20,asetpts=PTS-STARTPTS[n0];"
    g+="[a1]atrim=start=20:end=40,asetpts=PTS-STARTPTS[n1];"
    g+="[a2]atrim=start=40:end=60,asetpts=PTS-STARTPTS[n2];"
    g+="color=c=black:s=${W}x${H}:r=$FPS:d=$BUMPER,format=yuv420p[bg];"
    g+="[1:v]scale=${W}:${H}:force_original_aspect_ratio=decrease[logo];"
    g+="[bg][logo]overlay=x=(W-w)/2:y=(H-h)/2,setsar=1,format=yuv420p,split=6[b0][b1][b2][b3][b4][b5];"
    g+="anullsrc=r=48000:cl=stereo,atrim=duration=$BUMPER,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,asplit=6[s0][s1][s2][s3][s4][s5];"
    g+="[b0][s0][m0][n0][b1][s1]concat=n=3:v=1:a=1[o1v][o1a];"
    g+="[b2][s2][m1][n1][b3][s3]concat=n=3:v=1:a=1[o2v][o2a];"
    g+="[b4][s4][m2][n2][b5][s5]concat=n=3:v=1:a=1[o3v][o3a]"
    local enc=(-c:v libx264 -preset "$preset" -crf "$CRF" -pix_fmt yuv420p -r "$FPS"
        -c:a aac -b:a "$ABR" -ar 48000 -ac 2 -movflags +faststart)
    ffmpeg -nostdin -hide_banner -loglevel error -i "$SRC" -i "$LOGO" \
        -filter_complex "$g" \
        -map '[o1v]' -map '[o1a]' "${enc[@]}" -y "$out/ref_part_001.mp4" \
        -map '[o2v]' -map '[o2a]' "${enc[@]}" -y "$out/ref_part_002.mp4" \
        -map '[o3v]' -map '[o3a]' "${enc[@]}" -y "$out/ref_part_003.mp4"
}

log "reference ffmpeg ($PRESET)"
timed_reference "$PRESET" "$WORK/ref"
REF_WALL=$REF_WALL_S

# ---------------------------------------------------------------- quality
# SSIM of an output part 2 against source 20-40 s: skip the 1 s bumper in the output, read the
# source span exactly as the service does (-ss 20 -t 20, then fps, scale to the output frame).
ssim_part2() { # ssim_part2 FILE -> "All" SSIM
    ffmpeg -nostdin -hide_banner -i "$1" -ss 20 -t 20 -i "$SRC" -filter_complex \
        "[0:v]trim=start=$BUMPER:duration=20,setpts=PTS-STARTPTS[o];[1:v]fps=$FPS,scale=$W:$H,format=yuv420p,setpts=PTS-STARTPTS[s];[o][s]ssim" \
        -f null - 2>&1 | sed -n 's/.*SSIM .*All:\([0-9.]*\).*/\1/p' | tail -1
}
describe() { # describe FILE -> "duration size"
    local d s
    d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$1")
    s=$(stat -c %s "$1")
    printf '%s=%.3fs/%.2fMB' "$(basename "$1")" "$d" "$(python3 -c "print($s/1e6)")"
}
SVC_SSIM=$(ssim_part2 "$SVC_PART2")
REF_SSIM=$(ssim_part2 "$WORK/ref/ref_part_002.mp4")
SVC_SIZE=$(du -cb "$WORK"/svc/*.mp4 | tail -1 | cut -f1)
REF_SIZE=$(du -cb "$WORK"/ref/*.mp4 | tail -1 | cut -f1)

echo "service_outputs: $(for f in "$WORK"/svc/*.mp4; do describe "$f"; echo -n ' '; done)"
echo "reference_outputs: $(for f in "$WORK"/ref/*.mp4; do describe "$f"; echo -n ' '; done)"
echo "service_server_side_s (created->finished, started->finished): $SERVER_SIDE"
echo "service_wall_s: $SERVICE_WALL"
echo "reference_wall_s: $REF_WALL"
echo "service_wall / reference_wall: $(ratio "$SERVICE_WALL" "$REF_WALL")  (target <= 1.10)"
echo "realtime_factor (60 s / service_wall): $(ratio "$DURATION" "$SERVICE_WALL")x"
echo "ssim_part2_service: $SVC_SSIM  (target >= 0.99)"
echo "ssim_part2_reference_$PRESET: $REF_SSIM"
echo "total_output_MB service/reference: $(python3 -c "print(f'{$SVC_SIZE/1e6:.2f} / {$REF_SIZE/1e6:.2f}')")"
echo "contention: other processes used $(other_cpu "$B0" "$B1" "$O0" "$O1" "$SERVICE_WALL") during the service run, $REF_OTHER during the reference run"

# ---------------------------------------------------------------- optional: presets
# Entries are PRESET or PRESET:CRF (CRF is not comparable across presets: medium at crf 22
# spends more bits than veryfast at crf 22, so compare presets at matched SSIM too).
for entry in ${BENCH_PRESETS:-}; do
    p=${entry%%:*}
    c=$CRF
    [[ $entry == *:* ]] && c=${entry#*:}
    log "reference ffmpeg ($p crf $c)"
    CRF_SAVED=$CRF; CRF=$c
    timed_reference "$p" "$WORK/ref_$entry"
    CRF=$CRF_SAVED
    wall=$REF_WALL_S
    size=$(du -cb "$WORK/ref_$entry"/*.mp4 | tail -1 | cut -f1)
    echo "preset $p crf $c: wall_s=$wall vs_$PRESET=$(ratio "$wall" "$REF_WALL")x total_MB=$(python3 -c "print(f'{$size/1e6:.2f}')") size_vs_$PRESET=$(ratio "$size" "$REF_SIZE")x ssim_part2=$(ssim_part2 "$WORK/ref_$entry/ref_part_002.mp4") other_cpu=\"$REF_OTHER\""
done
