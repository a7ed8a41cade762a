#!/usr/bin/env bash
# Per-task fixed overhead (issue 14): what a tiny task costs beyond its ffmpeg work. One
# `reelforge serve` (SQLite, local files, one worker slot); ROUNDS tasks per profile, one at a
# time, each a 2 s 160x90 clip uploaded then followed on its events stream. Per profile, the
# medians of: the upload's answer time, the queue wait (created -> claimed), the run (claimed
# -> finished: fetch into scratch, probe, the ffmpeg commands, probing the outputs, storing,
# recording), and the reference measured in the same run: the worker's recorded ffmpeg
# commands replayed directly with the same probes (measure.py). overhead = run - direct.
#
#   bench/overhead/run.sh
#   ROUNDS=30 bench/overhead/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROUNDS="${ROUNDS:-15}"
need ffmpeg
need curl
build_release
CLIP="$CACHE/overhead_2s_160x90.mp4"
if [ ! -s "$CLIP" ]; then
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=160x90:rate=24" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 2 -c:v libx264 -preset veryfast \
        -pix_fmt yuv420p -c:a aac -shortest "$CLIP"
fi
RF_DATA="$WORK/serve"
start_service REELFORGE_WORKERS=1
api_login
wait_quiet
machine_line
echo "clip: 2 s 160x90 H.264+AAC, $ROUNDS tasks per profile, one at a time (medians)"
python3 "$ROOT/bench/overhead/measure.py" "$RF_URL" "$TOKEN" "$CLIP" "$RF_DATA/reelforge.db" "$ROUNDS" \
    '{"profile":"thumbnail","options":{"count":1}}' \
    '{"profile":"convert","options":{"format":"webm"}}' \
    '{"profile":"idrl","options":{}}'
