#!/usr/bin/env python3
"""Per-task fixed overhead, for bench/overhead/run.sh (stdlib only).

    measure.py URL TOKEN CLIP DB ROUNDS PROFILE_JSON...

For each profile body (e.g. '{"profile":"thumbnail","options":{"count":1}}'), ROUNDS times in
turn: upload CLIP as a task (multipart POST /api/tasks), follow its events stream until it
ends, and read from the SQLite database its created/started/finished times and the ffmpeg
commands the worker ran. The reference, measured in the same run on the same machine: those
commands replayed directly in a scratch folder (`input`, `out/`), plus one ffprobe of the
input and one of each output (what the worker probes). Prints the medians per profile:
client submit latency, queue wait (created -> claimed), run (claimed -> finished), the
reference, the overhead = run - reference, and how many processes a task starts times the
cost of one bare launch (measured first): the part of the run that fewer launches could save.
"""

import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

LOGO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "assets", "logo.png")


def upload(url, token, clip, body):
    boundary = uuid.uuid4().hex
    with open(clip, "rb") as f:
        data = f.read()
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n".encode() + data + b"\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="profile"\r\n\r\n{body["profile"]}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="options"\r\n\r\n{json.dumps(body.get("options", {}))}\r\n'.encode(),
        f"--{boundary}--\r\n".encode(),
    ]
    req = urllib.request.Request(f"{url}/api/tasks", data=b"".join(parts), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["id"]


def follow(url, token, task):
    """Read the task's event stream until the server ends it (when the task ends)."""
    req = urllib.request.Request(f"{url}/api/tasks/{task}/events", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        for _ in r:
            pass


def probe(path):
    subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path],
                   check=True, stdout=subprocess.DEVNULL)


def launch_floor():
    """Seconds for the cheapest ffprobe and ffmpeg runs (a launch and nothing else much):
    what each process a task starts costs at least."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(["ffprobe", "-v", "error", "-version"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "nullsrc=s=16x16:d=0.04",
                        "-f", "null", "-"], check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) / 2)
    return statistics.median(times)


def replay(clip, commands):
    """Seconds to run the worker's commands directly, with the probes it does, and the
    number of processes that took."""
    d = tempfile.mkdtemp(prefix="overhead-")
    try:
        shutil.copyfile(clip, os.path.join(d, "input"))
        # idrl's cards: the service's default logo, which the worker writes beside the input.
        shutil.copyfile(LOGO, os.path.join(d, "logo.png"))
        os.mkdir(os.path.join(d, "out"))
        t0 = time.perf_counter()
        probe(os.path.join(d, "input"))
        for c in commands:
            subprocess.run(shlex.split(c), cwd=d, check=True, stdout=subprocess.DEVNULL)
        outputs = os.listdir(os.path.join(d, "out"))
        for name in outputs:
            probe(os.path.join(d, "out", name))
        return time.perf_counter() - t0, 1 + len(commands) + len(outputs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    url, token, clip, db, rounds, *bodies = sys.argv[1:]
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    floor = launch_floor()
    print(f"one process launch (ffprobe -version / ffmpeg on a null frame): {floor * 1000:.0f} ms")
    print(f"{'profile':<34} {'submit':>8} {'wait':>8} {'run':>8} {'direct':>8} {'overhead':>9} "
          f"{'run/direct':>10} {'launches':>9}")
    for raw in bodies:
        body = json.loads(raw)
        rows = []
        for _ in range(int(rounds)):
            t0 = time.perf_counter()
            task = upload(url, token, clip, body)
            submit = time.perf_counter() - t0
            follow(url, token, task)
            status, created, started, finished, commands = con.execute(
                "SELECT status, created_at, started_at, finished_at, commands FROM tasks WHERE id = ?",
                (task,)).fetchone()
            if status != "succeeded":
                raise SystemExit(f"task {task} ended {status}")
            direct, launches = replay(clip, json.loads(commands))
            rows.append((submit, (started - created) / 1000, (finished - started) / 1000, direct, launches))
        med = [statistics.median(col) for col in zip(*rows)]
        name = body["profile"] + " " + json.dumps(body.get("options", {}), separators=(",", ":"))
        print(f"{name:<34} {med[0] * 1000:7.0f}ms {med[1] * 1000:7.0f}ms {med[2] * 1000:7.0f}ms "
              f"{med[3] * 1000:7.0f}ms {(med[2] - med[3]) * 1000:8.0f}ms {med[2] / med[3]:9.2f}x "
              f"{med[4]:3.0f} = {med[4] * floor * 1000:.0f}ms")


if __name__ == "__main__":
    main()
