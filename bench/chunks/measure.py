"""Runs the plans of bench/chunks/run.sh: whole, chunked on 1 slot, chunked on 2 slots.

argv: PLAN_JSON WORK_DIR RUNS. Every ffmpeg gets `-threads 1` after its video encoder (one
thread per encode), and runs in WORK_DIR; outputs are removed between rounds.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def one_thread(argv):
    """One decoding thread (before the first -i) and one encoding thread (after the first
    encoder)."""
    out = list(argv)
    for i, a in enumerate(out):
        if a in ("-c:v", "-c:a"):
            out[i + 2:i + 2] = ["-threads", "1"]
            break
    first_input = out.index("-i")
    out[first_input:first_input] = ["-threads", "1"]
    return out


def run(argv, cwd):
    start = time.monotonic()
    subprocess.run(["ffmpeg", *argv], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def fresh(work):
    for sub in ("chunks", "out"):
        shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
        os.makedirs(os.path.join(work, sub))


def chunked(plan, work, slots):
    fresh(work)
    pieces = [one_thread(a) for a in plan["chunks"]]
    if plan.get("audio"):
        pieces.append(one_thread(plan["audio"]))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=slots) as pool:
        times = list(pool.map(lambda a: run(a, work), pieces))
    with open(os.path.join(work, "chunks", "chunks.ffconcat"), "w") as f:
        f.write(plan["list"])
    join = run(plan["join"], work)
    return time.monotonic() - start, times, join


def main():
    plan_path, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    plan = json.load(open(plan_path))
    if not plan["chunks"]:
        sys.exit("the input was not split: no chunks in the plan")
    print(f"chunks: {len(plan['chunks'])} of {[round(s, 2) for s in plan['seconds']]} s")
    whole, one, two = [], [], []
    for r in range(rounds):
        fresh(work)
        whole.append(run(one_thread(plan["whole"]), work))
        t1, pieces, join = chunked(plan, work, 1)
        one.append(t1)
        t2, _, join2 = chunked(plan, work, 2)
        two.append(t2)
        print(f"round {r + 1}: whole {whole[-1]:.2f} s  chunked/1 {t1:.2f} s  "
              f"chunked/2 {t2:.2f} s  join {join:.2f}/{join2:.2f} s  "
              f"runs {[round(p, 2) for p in pieces]}", flush=True)
    w, c1, c2 = (statistics.median(x) for x in (whole, one, two))
    print(f"whole_s: {w:.2f}")
    print(f"chunked_1slot_s: {c1:.2f}")
    print(f"chunked_2slots_s: {c2:.2f}")
    print(f"cost_of_splitting (chunked/1 / whole, target <= 1.05): {c1 / w:.3f}")
    print(f"speedup_2slots (whole / chunked/2, target >= 1.8): {w / c2:.3f}")


main()
