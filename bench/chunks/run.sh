#!/usr/bin/env bash
# Chunked encodes at the media level: the convert planner's chunked runs (media::chunks) against
# the same encode run whole, each ffmpeg limited to one thread, measured in the same run.
#
#   bench/chunks/run.sh                      # RUNS=3 rounds; medians reported
#   LENGTH=20 RUNS=1 bench/chunks/run.sh     # another chunk length (seconds)
#
# Source: 3 min 1280x720 30 fps H.264 (lavfi `mandelbrot`, 2 s GOP, as bench/convert) + AAC
# 44.1 kHz stereo, generated once and cached in bench/out/. The encode: convert
# {"format":"mp4","quality":"medium"} (x264 + AAC), planned by examples/chunk_plan.
#
# Each round, on a quiet machine:
#   whole      the single run, one thread
#   chunked/1  every chunk and the audio one after another on 1 slot, then the join
#   chunked/2  the same runs on 2 slots (each slot takes the next run when free), then the join
# Printed: the seconds of each, chunked/1 ÷ whole (the cost of splitting, target ≤ 1.05) and
# whole ÷ chunked/2 (the speed-up of a second slot, target ≥ 1.8), and each run's seconds for
# the model in docs/benchmarks.md. This is the ceiling the queue's fan-out can reach: no
# claim, no storage, no lease; bench/scaling measures the service.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUNS="${RUNS:-3}"
LENGTH="${LENGTH:-30}"
DURATION=180
SRC="$CACHE/chunks_src_mandelbrot_${DURATION}s_720p30.mp4"

(cd "$ROOT" && cargo build --release --quiet --example chunk_plan)
PLANNER="$ROOT/target/release/examples/chunk_plan"
wait_quiet
machine_line

if [ ! -s "$SRC" ]; then
    log "generating $SRC (once; cached)"
    ffmpeg -nostdin -hide_banner -loglevel error \
        -f lavfi -i "mandelbrot=s=1280x720:r=30" \
        -f lavfi -i "sine=frequency=440:sample_rate=44100:beep_factor=4" \
        -t "$DURATION" -map 0:v -map 1:a \
        -c:v libx264 -preset veryfast -b:v 8M -maxrate 8M -bufsize 16M -g 60 -keyint_min 60 \
        -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 -y "$SRC.tmp.mp4"
    mv "$SRC.tmp.mp4" "$SRC"
fi

mkdir -p "$WORK/chunks" "$WORK/out"
"$PLANNER" "$SRC" "$WORK/chunks" "$WORK/out" '{"format":"mp4","quality":"medium"}' \
    60 "$LENGTH" >"$WORK/plan.json"
python3 "$(dirname "${BASH_SOURCE[0]}")/measure.py" "$WORK/plan.json" "$WORK" "$RUNS"
