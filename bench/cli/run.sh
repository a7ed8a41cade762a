#!/usr/bin/env bash
# The command-line client against curl, in the same run: a 1 GiB file uploaded by
# `reelforge submit` (tus, one streamed PATCH, through the CLI's progress reporting) and by
# `curl -F` (one multipart POST /api/tasks) to a `reelforge serve` on local storage with no
# workers (nothing but the upload is measured). Rounds alternate the two, and the median
# of each is compared.
#
#   bench/cli/run.sh
#   UPLOAD_MIB=256 ROUNDS=5 bench/cli/run.sh
#
# Prints each round's seconds and MiB/s, then the ratio of the medians (CLI throughput /
# curl throughput; the target is >= 0.8). The file is random bytes made once.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

UPLOAD_MIB="${UPLOAD_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"

need curl
need python3
build_release
machine_line

random_file "$UPLOAD_MIB"

start_service REELFORGE_WORKERS=0 REELFORGE_MAX_UPLOAD=2GiB
api_login

# The CLI's own home: no credential file, the login token through REELFORGE_TOKEN.
CLI_HOME=$WORK/home
mkdir -p "$CLI_HOME"

curl_upload() {
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -F "file=@$FILE;filename=big.bin" -F profile=thumbnail "$RF_URL/api/tasks")
    [ "$code" = 201 ] || { echo "curl upload failed: $code" >&2; exit 1; }
}

cli_upload() {
    local id
    id=$(HOME=$CLI_HOME XDG_CONFIG_HOME=$CLI_HOME/config XDG_CACHE_HOME=$CLI_HOME/cache \
        REELFORGE_TOKEN=$TOKEN "$BIN" submit "$FILE" --profile thumbnail --server "$RF_URL" 2>"$WORK/cli.err") ||
        { cat "$WORK/cli.err" >&2; exit 1; }
    [ ${#id} -eq 36 ] || { echo "the CLI printed no task id: $id" >&2; exit 1; }
}

# timed NAME FUNCTION: appends the seconds of one upload to the array NAME_S.
declare -a CURL_S=() CLI_S=()
timed() {
    local name=$1 fn=$2 start end s
    # The previous upload's gigabyte still being written back would slow this one.
    sync
    start=$(now)
    $fn
    end=$(now)
    s=$(elapsed "$start" "$end")
    echo "round $r $name: ${s}s, $(python3 -c "print(f'{$SIZE / 1048576 / $s:.1f}')") MiB/s"
    case $name in curl) CURL_S+=("$s") ;; cli) CLI_S+=("$s") ;; esac
}

median() { python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }

wait_quiet
for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which goes first, so neither always meets a warmer page cache.
    if ((r % 2)); then timed curl curl_upload; timed cli cli_upload
    else timed cli cli_upload; timed curl curl_upload; fi
    # Each upload's file is kept by its task; drop them so the disk does not fill.
    rm -rf "$WORK"/data/objects/tasks 2>/dev/null || true
done
M_CURL=$(median "${CURL_S[@]}")
M_CLI=$(median "${CLI_S[@]}")
echo "summary: ${UPLOAD_MIB} MiB x ${ROUNDS} rounds, median curl ${M_CURL}s, cli ${M_CLI}s, cli/curl throughput $(ratio "$M_CURL" "$M_CLI")x (target >= 0.8)"
