#!/usr/bin/env python3
"""Client and checker of the distributed test (driven by tests/distributed/run.sh).

Every request goes through nginx and is logged, one JSON line per attempt, to
``$WORK/requests-<pid>.jsonl``: time, method, path, status (or ``conn-error``) and
whether it was retried. Standard library only.

Commands (all take ``--work DIR --base URL``):
  login                       sign up and log in; writes DIR/token
  submit --first N --count M  submit tasks N..N+M-1, even indexes by URL, odd by upload;
                              appends {"index","id","kind"} lines to DIR/tasks.jsonl
  wait --total T              poll the task list until T tasks are final (deadline)
  events --index I            follow task I's event stream through nginx (see cmd_events)
  snapshot                    write the ids of the running tasks to DIR/running-at-pg-stop
  check --total T             every assertion of the test; prints the summary line and
                              exits 1 on any violation
"""

import argparse
import json
import os
import sys
import time
import urllib.parse
import uuid
import http.client

RETRY_STATUSES = {500, 502, 503, 504}
FINAL = {"succeeded", "failed", "cancelled"}


class Client:
    def __init__(self, work, base):
        self.work = work
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.log = open(os.path.join(work, f"requests-{os.getpid()}.jsonl"), "a", buffering=1)
        self.token = None
        token_file = os.path.join(work, "token")
        if os.path.exists(token_file):
            with open(token_file) as f:
                self.token = f.read().strip()

    def once(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            conn.close()

    def request(self, method, path, body=None, headers=None, deadline_s=90):
        """Retries connection errors and 5xx with capped exponential backoff. Retrying a POST
        is safe here only when the server did not create the task; `check` proves it (no
        duplicate tasks, no orphan objects)."""
        deadline = time.monotonic() + deadline_s
        delay = 0.1
        while True:
            t = time.time()
            try:
                status, h, data = self.once(method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                status, h, data = "conn-error", {}, str(e).encode()
            retry = status == "conn-error" or status in RETRY_STATUSES
            self.log.write(json.dumps({"t": t, "t_end": time.time(), "method": method,
                                       "path": path.split("?")[0], "status": status,
                                       "retried": retry}) + "\n")
            if not retry:
                return status, h, data
            if time.monotonic() > deadline:
                sys.exit(f"client: {method} {path} still failing after {deadline_s}s: {status} {data[:200]!r}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def json(self, method, path, obj=None, expect=(200,)):
        body = None if obj is None else json.dumps(obj).encode()
        hdrs = {} if obj is None else {"Content-Type": "application/json"}
        status, h, data = self.request(method, path, body, hdrs)
        if status not in expect:
            sys.exit(f"client: {method} {path}: {status} {data[:300]!r}")
        return json.loads(data) if data else None, h


def multipart(fields, file_field, filename, content):
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: video/mp4\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def cmd_login(c, a):
    user = f"dist{uuid.uuid4().hex[:8]}"
    c.json("POST", "/api/auth/signup",
           {"username": user, "email": f"{user}@example.com", "password1": "Secret123",
            "password2": "Secret123"}, expect=(201,))
    body, _ = c.json("POST", "/api/auth/login", {"username": user, "password": "Secret123"})
    with open(os.path.join(a.work, "token"), "w") as f:
        f.write(body["token"])


def cmd_submit(c, a):
    clips = sorted(os.listdir(a.media))
    options = json.loads(a.options)
    with open(os.path.join(a.work, "tasks.jsonl"), "a", buffering=1) as out:
        for i in range(a.first, a.first + a.count):
            clip = clips[i % len(clips)]
            if i % 2 == 0:
                body, _ = c.json("POST", "/api/tasks",
                                 {"url": f"{a.media_url}/{clip}", "profile": "idrl", "options": options},
                                 expect=(201,))
                kind = "url"
            else:
                with open(os.path.join(a.media, clip), "rb") as f:
                    content = f.read()
                payload, ctype = multipart({"profile": "idrl", "options": json.dumps(options)},
                                           "file", f"up{i:02d}_{clip}", content)
                status, _, data = c.request("POST", "/api/tasks", payload, {"Content-Type": ctype})
                if status != 201:
                    sys.exit(f"client: upload {i}: {status} {data[:300]!r}")
                body = json.loads(data)
                kind = "upload"
            out.write(json.dumps({"index": i, "id": body["id"], "kind": kind}) + "\n")
            # Pacing only (spreads the batch over the PostgreSQL outage); not a wait.
            time.sleep(a.interval)


def cmd_events(c, a):
    """Follow one task's Server-Sent Events through nginx until the stream ends: the first
    event must arrive at once, and the others spread over the task's run, ending with its
    final status."""
    tasks = read_jsonl(os.path.join(a.work, "tasks.jsonl"))
    tid = next(t["id"] for t in tasks if t["index"] == a.index)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=120)
    start = time.monotonic()
    conn.request("GET", f"/api/tasks/{tid}/events", headers={"Authorization": f"Bearer {c.token}"})
    r = conn.getresponse()
    t = time.time()
    c.log.write(json.dumps({"t": t, "t_end": t, "method": "GET", "path": "/api/tasks/{id}/events",
                            "status": r.status, "retried": False}) + "\n")
    if r.status != 200:
        sys.exit(f"client: events: {r.status}")
    arrivals, last = [], None
    while True:
        line = r.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            arrivals.append(time.monotonic())
            last = json.loads(line[5:])
    conn.close()
    spread = arrivals[-1] - arrivals[0] if arrivals else 0
    first = arrivals[0] - start if arrivals else float("inf")
    status = (last or {}).get("status")
    with open(os.path.join(a.work, "events-result"), "w") as f:
        f.write(f"events={len(arrivals)} first_event={first:.2f}s events_spread={spread:.1f}s "
                f"events_final={status}\n")
    # The stream opens with the task's current state, while the task is still queued behind
    # the others: a proxy that buffers would hold that first event back until more follow.
    # Two events are enough to show that: the first at once, the final one later. More may
    # come in between, but a run shorter than the API's one-second poll of other processes'
    # changes can go from queued to succeeded in one step.
    if len(arrivals) < 2 or first > 1.0 or spread < 1.0 or status != "succeeded":
        sys.exit(f"client: events through nginx: {len(arrivals)} events, the first after {first:.2f}s, "
                 f"over {spread:.2f}s, final {status}")


def cmd_snapshot(c, a):
    """The tasks running right now (taken just before PostgreSQL is stopped)."""
    page, _ = c.json("GET", "/api/tasks?status=running&max=1000")
    with open(os.path.join(a.work, "running-at-pg-stop"), "w") as f:
        f.writelines(t["id"] + "\n" for t in page)


def list_tasks(c):
    tasks, path = [], "/api/tasks?max=100&order=0"
    while path:
        page, h = c.json("GET", path)
        tasks.extend(page)
        path = None
        link = h.get("Link") or h.get("link")
        if link and 'rel="next"' in link:
            path = link.split(";")[0].strip().strip("<>")
    return tasks


def cmd_wait(c, a):
    deadline = time.monotonic() + a.deadline
    while True:
        tasks = list_tasks(c)
        final = [t for t in tasks if t["status"] in FINAL]
        if len(tasks) >= a.total and len(final) == len(tasks):
            return
        if time.monotonic() > deadline:
            counts = {}
            for t in tasks:
                counts[t["status"]] = counts.get(t["status"], 0) + 1
            sys.exit(f"client: not all {a.total} tasks final after {a.deadline}s: {counts}")
        time.sleep(0.5)


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def list_storage(url, endpoint=None):
    """Every object key in the shared storage (relative to the storage URL), and the
    multipart uploads left unfinished there (S3 only)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        root = urllib.parse.unquote(parsed.path)
        keys = []
        for d, _, files in os.walk(root):
            for name in files:
                rel = os.path.relpath(os.path.join(d, name), root)
                # object_store's local backend writes multipart uploads to `<key>#<n>` temp
                # files and renames them; a leftover one is an orphan too, so it is listed.
                keys.append(rel.replace(os.sep, "/"))
        return keys, []
    if parsed.scheme == "s3":
        return list_s3(endpoint, parsed.netloc, parsed.path.strip("/"))
    sys.exit(f"client: storage listing for {parsed.scheme}:// is not implemented")


def list_s3(endpoint, bucket, prefix):
    """ListObjectsV2 and ListMultipartUploads on the test's own S3-compatible server (moto
    accepts unsigned requests), path-style, paging through continuation tokens."""
    import urllib.request
    import xml.etree.ElementTree as ET
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    base = endpoint.rstrip("/") + "/" + bucket
    pfx = prefix + "/" if prefix else ""

    def get(query):
        with urllib.request.urlopen(f"{base}?{urllib.parse.urlencode(query)}", timeout=30) as r:
            return ET.fromstring(r.read())

    keys, token = [], None
    while True:
        q = {"list-type": "2", "prefix": pfx}
        if token:
            q["continuation-token"] = token
        root = get(q)
        keys.extend(k.text[len(pfx):] for k in root.findall("s3:Contents/s3:Key", ns))
        token = root.findtext("s3:NextContinuationToken", namespaces=ns)
        if root.findtext("s3:IsTruncated", namespaces=ns) != "true" or not token:
            break
    root = get({"uploads": "", "prefix": pfx})
    unfinished = [k.text for k in root.findall("s3:Upload/s3:Key", ns)]
    return keys, unfinished


def cmd_check(c, a):
    violations = []
    submitted = read_jsonl(os.path.join(a.work, "tasks.jsonl"))
    by_id = {s["id"]: s for s in submitted}
    def id_set(name):
        p = os.path.join(a.work, name)
        if not os.path.exists(p):
            return set()
        with open(p) as f:
            return {line.strip() for line in f if line.strip()}
    # The job of the SIGKILLed worker must run again; no other task may. A run that spans
    # the PostgreSQL restart waits its writes out (db::retry_transient) and costs no attempt.
    interrupted = id_set("interrupted")
    running_at_pg_stop = id_set("running-at-pg-stop")
    with open(os.path.join(a.work, "pg-window")) as f:
        pg_down, pg_up = (float(x) for x in f.read().split())
    window = (pg_down, pg_up + a.grace)

    tasks = list_tasks(c)
    ids = {t["id"] for t in tasks}
    if len(submitted) != a.total or len(by_id) != a.total:
        violations.append(f"{len(by_id)} distinct tasks submitted, expected {a.total}")
    if ids != set(by_id):
        violations.append(f"server lists {len(ids)} tasks; not submitted: {sorted(ids - set(by_id))}, "
                          f"missing: {sorted(set(by_id) - ids)}")
    status_counts = {}
    for t in tasks:
        status_counts[t["status"]] = status_counts.get(t["status"], 0) + 1
        if t["status"] != "succeeded":
            violations.append(f"task {t['id']} is {t['status']}: {t.get('error')}")
    retried = {t["id"] for t in tasks if t.get("attempts", 0) > 1}
    for tid in sorted(retried - interrupted):
        during = " (it ran while PostgreSQL restarted)" if tid in running_at_pg_stop else ""
        violations.append(f"task {tid} took {by_task(tasks, tid)['attempts']} attempts but its worker "
                          f"was not killed{during}")
    if not interrupted:
        violations.append("no task was recorded as interrupted (the worker kill did not hit a job)")
    for tid in sorted(interrupted - retried):
        if tid in ids:
            violations.append(f"interrupted task {tid} shows attempts=1")

    # Storage: exactly one output set per task (one run, the names and sizes the task lists),
    # an upload's input, and nothing else.
    keys, unfinished = list_storage(a.storage, a.s3_endpoint)
    if unfinished:
        violations.append(f"{len(unfinished)} unfinished multipart uploads, e.g. {unfinished[:5]}")
    per_task = {}
    orphans = []
    for k in keys:
        parts = k.split("/")
        if len(parts) < 3 or parts[0] != "tasks" or parts[1] not in by_id:
            orphans.append(k)
            continue
        per_task.setdefault(parts[1], []).append(parts[2:])
    duplicates = 0
    outputs_total = 0
    for t in tasks:
        objs = per_task.get(t["id"], [])
        runs = {o[1] for o in objs if o[0] == "out" and len(o) == 3}
        inputs = [o for o in objs if o[0] == "input"]
        other = [o for o in objs if not (o[0] == "out" and len(o) == 3) and o[0] != "input"]
        orphans.extend(f"tasks/{t['id']}/{'/'.join(o)}" for o in other)
        if len(runs) != 1:
            duplicates += max(len(runs) - 1, 0)
            violations.append(f"task {t['id']} has {len(runs)} output sets in storage: {sorted(runs)}")
        stored = {o[2] for o in objs if o[0] == "out" and len(o) == 3}
        listed = {o["name"] for o in t.get("outputs", [])}
        outputs_total += len(listed)
        if not listed:
            violations.append(f"task {t['id']} lists no outputs")
        if stored != listed and len(runs) == 1:
            violations.append(f"task {t['id']}: storage has {sorted(stored)}, the task lists {sorted(listed)}")
        # The upload, or the fetched copy of a URL's media: one input either way.
        if len(inputs) != 1:
            violations.append(f"task {t['id']} ({by_id.get(t['id'], {}).get('kind')}) has {len(inputs)} input objects")
    if orphans:
        violations.append(f"{len(orphans)} orphan objects, e.g. {orphans[:5]}")

    # HTTP: 5xx and connection errors are allowed only for requests that were in flight
    # while PostgreSQL was down (their [start, end] overlaps the window).
    reqs = []
    for name in os.listdir(a.work):
        if name.startswith("requests-") and name.endswith(".jsonl"):
            reqs.extend(read_jsonl(os.path.join(a.work, name)))
    bad = [r for r in reqs if r["status"] == "conn-error" or r["status"] >= 500]
    def in_window(r):
        return r["t"] <= window[1] and r["t_end"] >= window[0]
    inside = [r for r in bad if in_window(r)]
    outside = [r for r in bad if not in_window(r)]
    for r in outside[:10]:
        violations.append(f"{r['status']} outside the PostgreSQL window at +{r['t'] - pg_down:.2f}s: "
                          f"{r['method']} {r['path']}")
    if len(outside) > 10:
        violations.append(f"… and {len(outside) - 10} more errors outside the window")
    retries = sum(1 for r in reqs if r["retried"])

    extra = dict(kv.split("=", 1) for kv in a.extra)
    summary = (f"distributed: tasks={len(tasks)}/{a.total} succeeded={status_counts.get('succeeded', 0)} "
               f"by_url={sum(1 for s in submitted if s['kind'] == 'url')} "
               f"by_upload={sum(1 for s in submitted if s['kind'] == 'upload')} "
               f"interrupted={len(interrupted)} running_at_pg_stop={len(running_at_pg_stop)} "
               f"attempts_gt1={len(retried)} (worker_kill={len(retried & interrupted)} "
               f"pg_restart={len(retried & running_at_pg_stop - interrupted)}) "
               f"objects={len(keys)} outputs={outputs_total} duplicate_sets={duplicates} orphans={len(orphans)} "
               f"requests={len(reqs)} http5xx={sum(1 for r in bad if r['status'] != 'conn-error')} "
               f"conn_errors={sum(1 for r in bad if r['status'] == 'conn-error')} "
               f"in_pg_window={len(inside)} outside={len(outside)} client_retries={retries} "
               f"pg_down={pg_up - pg_down:.1f}s(+{a.grace:g}s) "
               + " ".join(f"{k}={v}" for k, v in extra.items())
               + f" violations={len(violations)}")
    for v in violations:
        print(f"VIOLATION: {v}")
    print(summary)
    return 1 if violations else 0


def by_task(tasks, tid):
    return next(t for t in tasks if t["id"] == tid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["login", "submit", "wait", "events", "snapshot", "check"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--media")
    ap.add_argument("--media-url")
    ap.add_argument("--options", default="{}")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--total", type=int, default=30)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--storage")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--grace", type=float, default=2.0)
    ap.add_argument("--extra", nargs="*", default=[])
    a = ap.parse_args()
    c = Client(a.work, a.base)
    commands = {"login": cmd_login, "submit": cmd_submit, "wait": cmd_wait, "events": cmd_events,
                "snapshot": cmd_snapshot, "check": cmd_check}
    rc = commands[a.command](c, a)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
