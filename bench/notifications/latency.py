"""Notification latency: from a task event's commit to the webhook receiver.

    python3 latency.py API_URL RECEIVER_HOOK_URL RECEIVER_LOG N [GAP_SECONDS]

Signs up, registers an endpoint for `task.cancelled`, then N times: submits a task (by URL,
to an allowed address; no worker runs it) and cancels it, GAP_SECONDS apart. The cancel
commits the event; the receiver (tests/webhooks/receiver.py) logs when each delivery
arrives. Latency = arrival - the event's `timestamp` (both this machine's clock). Prints
p50, p99 and max in milliseconds, and p99 against the 1 s target.
"""

import json
import statistics
import sys
import time
import urllib.request
from datetime import datetime

API, HOOK, LOG, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
GAP = float(sys.argv[5]) if len(sys.argv) > 5 else 0.05


def call(method, path, body=None, token=None):
    req = urllib.request.Request(API + path, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


def main():
    user = f"bench{int(time.time() * 1000) % 10**9}"
    call("POST", "/api/auth/signup", {"username": user, "email": f"{user}@example.com",
                                      "password1": "Bench1234", "password2": "Bench1234"})
    token = call("POST", "/api/auth/login", {"username": user, "password": "Bench1234"})["token"]
    ep = call("POST", "/api/webhooks", {"url": HOOK, "events": ["task.cancelled"]}, token)
    secret = ep["secret"]
    hook = HOOK.rsplit("/", 1)[1]
    control = HOOK.split("/hook/")[0] + "/_control/secrets"
    req = urllib.request.Request(control, json.dumps({"hook": hook, "secrets": [secret]}).encode(),
                                 {"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    ids = []
    for _ in range(N):
        task = call("POST", "/api/tasks", {"url": "http://127.0.0.3:9/clip.mp4"}, token)
        call("POST", f"/api/tasks/{task['id']}/cancel", None, token)
        ids.append(task["id"])
        time.sleep(GAP)
    deadline = time.time() + 60
    got = {}
    while time.time() < deadline:
        got = {}
        with open(LOG, encoding="utf-8") as f:
            for line in f:
                e = json.loads(line)
                body = json.loads(e["body"])
                if e["hook"] == hook and body.get("type") == "task.cancelled":
                    got.setdefault(body["data"]["id"], (e, body))
        if len(got) >= N:
            break
        time.sleep(0.2)
    missing = [i for i in ids if i not in got]
    if missing:
        sys.exit(f"{len(missing)} of {N} deliveries missing")
    bad = [e for e, _ in got.values() if not e["verified"]]
    if bad:
        sys.exit(f"{len(bad)} deliveries failed signature verification")
    ms = []
    for e, body in got.values():
        sent = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
        ms.append((e["received_at"] - sent) * 1000)
    ms.sort()
    p50 = statistics.median(ms)
    p99 = ms[max(0, int(round(0.99 * len(ms))) - 1)]
    print(f"n={N} p50={p50:.1f}ms p99={p99:.1f}ms max={ms[-1]:.1f}ms "
          f"p99/target(1000ms)={p99 / 1000:.3f}")


if __name__ == "__main__":
    main()
