#!/usr/bin/env bash
# Archive profile benchmark: recompress a ~200 MiB tar.gz of mixed content to zip
# with the service's code (examples/recompress, release build) and with
# `tar xzf` + `zip -r -q -6` run by hand, in the same run, on the same input.
# Target: ours within 1.5x of tar+zip.
#
#   bench/archive/run.sh            # RUNS=3 by default; BENCH_DIR to choose the scratch folder
#
# Both sides deflate at level 6 (Info-ZIP's default, and the level the archive
# module uses for zip). The input is cached in $BENCH_DIR between runs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/reelforge-bench-archive}"
RUNS="${RUNS:-3}"
INPUT="$BENCH_DIR/input.tar.gz"

command -v zip >/dev/null || { apt-get update -qq && apt-get install -y -qq zip >/dev/null; }
command -v python3 >/dev/null || { echo "python3 is needed to generate the input" >&2; exit 1; }

mkdir -p "$BENCH_DIR"

if [ ! -s "$INPUT" ]; then
  echo "generating input in $BENCH_DIR (seeded, once) ..."
  rm -rf "$BENCH_DIR/tree"
  python3 - "$BENCH_DIR/tree" <<'PY'
# Mixed, deterministic content: prose-like text, logs, CSV, JSON, source-like
# text, structured binary records, and incompressible bytes (as in media or
# already-compressed files). About 420 MiB that gzip -6 turns into ~200 MiB.
import itertools, json, os, random, struct, sys

root = sys.argv[1]
rng = random.Random(20240611)
syll = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "den", "ar", "ul",
        "qu", "is", "tro", "mor", "zen", "fa", "gil", "bre", "on", "ex", "ci", "ya"]
words = list({"".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(6000)})
weights = list(itertools.accumulate(1.0 / (i + 1) ** 0.9 for i in range(len(words))))  # Zipf-like, cumulative
levels = ["INFO", "WARN", "DEBUG", "ERROR"]

def sentence():
    return " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(5, 18))).capitalize() + "."

def prose(n):
    out, size = [], 0
    while size < n:
        para = " ".join(sentence() for _ in range(rng.randint(2, 7))) + "\n\n"
        out.append(para); size += len(para)
    return "".join(out)[:n].encode()

def log(n):
    out, size, t = [], 0, 1_700_000_000
    while size < n:
        t += rng.randint(0, 3000)
        line = (f"2024-01-{1 + t % 28:02d}T{t % 86400 // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}Z "
                f"{rng.choice(levels)} worker-{rng.randint(1, 16)} req={rng.getrandbits(48):012x} "
                f"{' '.join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 9)))} took={rng.randint(1, 5000)}ms\n")
        out.append(line); size += len(line)
    return "".join(out)[:n].encode()

def csv(n):
    out, size = ["id,name,amount,lat,lon,flag\n"], 0
    i = 0
    while size < n:
        i += 1
        line = (f"{i},{rng.choice(words)},{rng.uniform(0, 10000):.2f},"
                f"{rng.uniform(-90, 90):.6f},{rng.uniform(-180, 180):.6f},{rng.random() < 0.5}\n")
        out.append(line); size += len(line)
    return "".join(out)[:n].encode()

def jsonl(n):
    out, size = [], 0
    while size < n:
        rec = {"id": rng.getrandbits(32), "user": rng.choice(words), "tags": rng.choices(words, k=3),
               "score": round(rng.random(), 4), "text": sentence()}
        line = json.dumps(rec) + "\n"
        out.append(line); size += len(line)
    return "".join(out)[:n].encode()

def source(n):
    out, size = [], 0
    while size < n:
        name = rng.choice(words)
        body = "".join(f"    let {rng.choice(words)} = {rng.choice(words)}({rng.randint(0, 999)});\n"
                       for _ in range(rng.randint(2, 12)))
        fn = f"/// {sentence()}\npub fn {name}_{rng.randint(0, 99)}(x: u32) -> u32 {{\n{body}    x\n}}\n\n"
        out.append(fn); size += len(fn)
    return "".join(out)[:n].encode()

def records(n):
    count = n // 16
    return b"".join(struct.pack("<IHHf", i, rng.randint(0, 300), rng.randint(0, 3), rng.random())
                    for i in range(count))

def noise(n):
    return rng.randbytes(n)

kinds = [("txt", prose, 0.22), ("log", log, 0.20), ("csv", csv, 0.12), ("jsonl", jsonl, 0.10),
         ("rs", source, 0.08), ("dat", records, 0.08), ("bin", noise, 0.20)]
target = 420 * 1024 * 1024
dirs = [""]
for _ in range(60):
    parent = rng.choice(dirs)
    d = os.path.join(parent, rng.choice(words))
    if d.count(os.sep) < 4 and d not in dirs:
        dirs.append(d)
for d in dirs:
    os.makedirs(os.path.join(root, d), exist_ok=True)
os.makedirs(os.path.join(root, "empty", "dir"), exist_ok=True)

for ext, gen, share in kinds:
    budget = int(target * share)
    i = 0
    while budget > 0:
        size = min(budget, int(rng.lognormvariate(11.5, 1.6)) + 100)  # median ~100 KiB
        size = min(size, 24 * 1024 * 1024)
        d = rng.choice(dirs)
        path = os.path.join(root, d, f"{rng.choice(words)}-{i}.{ext}")
        with open(path, "wb") as f:
            f.write(gen(size))
        budget -= size
        i += 1
PY
  tar -C "$BENCH_DIR/tree" -czf "$INPUT" .
  rm -rf "$BENCH_DIR/tree"
fi

echo "building examples/recompress (release) ..."
(cd "$ROOT" && cargo build --release --quiet --example recompress)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
OURS="$TARGET_DIR/release/examples/recompress"

mib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1048576:.1f}')" "$1"; }
now() { date +%s.%N; }

input_size=$(stat -c %s "$INPUT")
files=$(tar -tzf "$INPUT" | grep -vc '/$' || true)
unpacked=$(gzip -l "$INPUT" | awk 'NR==2 {print $2}')
echo "input: $INPUT  $(mib "$input_size") MiB tar.gz, $files files, ~$(mib "$unpacked") MiB unpacked (gzip -l, mod 4 GiB)"
echo "cores: $(nproc)"

ours_times=(); ref_times=()
for run in $(seq 1 "$RUNS"); do
  # ours: detect -> extract into work/x -> zip (deflate 6)
  rm -rf "$BENCH_DIR/work" "$BENCH_DIR/ours.zip"; mkdir -p "$BENCH_DIR/work"
  sync
  t0=$(now)
  "$OURS" "$INPUT" zip "$BENCH_DIR/work" "$BENCH_DIR/ours.zip" >/dev/null
  t1=$(now)
  ours_times+=("$(echo "$t1 - $t0" | bc -l)")

  # reference: tar xzf + zip -r -q -6
  rm -rf "$BENCH_DIR/ref" "$BENCH_DIR/ref.zip"; mkdir -p "$BENCH_DIR/ref"
  sync
  t0=$(now)
  tar -xzf "$INPUT" -C "$BENCH_DIR/ref"
  (cd "$BENCH_DIR/ref" && zip -r -q -6 "$BENCH_DIR/ref.zip" .)
  t1=$(now)
  ref_times+=("$(echo "$t1 - $t0" | bc -l)")
  printf 'run %d: ours %.2f s, tar+zip %.2f s\n' "$run" "${ours_times[-1]}" "${ref_times[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ours_med=$(median "${ours_times[@]}")
ref_med=$(median "${ref_times[@]}")
ours_size=$(stat -c %s "$BENCH_DIR/ours.zip")
ref_size=$(stat -c %s "$BENCH_DIR/ref.zip")

# Same content on both sides.
rm -rf "$BENCH_DIR/check"; mkdir -p "$BENCH_DIR/check"
(cd "$BENCH_DIR/check" && unzip -q "$BENCH_DIR/ours.zip")
if diff -r -q "$BENCH_DIR/check" "$BENCH_DIR/ref" >/dev/null; then same=yes; else same=NO; fi
rm -rf "$BENCH_DIR/check" "$BENCH_DIR/ref" "$BENCH_DIR/work"

echo
echo "== archive: tar.gz -> zip (median of $RUNS) =="
printf 'ours (recompress)     wall %6.2f s   out %7s MiB   %.0f MiB/s of input\n' "$ours_med" "$(mib "$ours_size")" "$(echo "$input_size / 1048576 / $ours_med" | bc -l)"
printf 'tar xzf + zip -r -6   wall %6.2f s   out %7s MiB   %.0f MiB/s of input\n' "$ref_med" "$(mib "$ref_size")" "$(echo "$input_size / 1048576 / $ref_med" | bc -l)"
ratio=$(echo "$ours_med / $ref_med" | bc -l)
printf 'ratio ours/reference  %.2fx  (target <= 1.50x)   same tree after unzip: %s\n' "$ratio" "$same"
if [ "$same" != yes ] || [ "$(echo "$ratio > 1.5" | bc -l)" = 1 ]; then exit 1; fi
