"""Locust users for bench/load/run.sh: the old systems' JMeter plans, as Python.

Each simulated user signs up under a name of its own, logs in, submits one URL conversion
(so that it has a task to poll), then loops over a weighted mix in which reads dominate:

    GET  /api/tasks/{id}            poll one of its tasks                     (weight 10)
    GET  /api/tasks                 list its latest tasks                     (weight 3)
    POST /api/tasks (url)           a convert/compress task of LOAD_CLIP_URL  (weight 1)
    POST /api/tasks (16 MiB upload) multipart upload, then DELETE of the task (weight 1)
    POST /api/auth/login            log in again (a fresh token)              (weight 1)

The upload is the body bench/api/run.sh sends for its 16 MiB figure (part `file`, filename
clip.mp4, 16 MiB of random bytes, same boundary), so uploads/s are comparable. It is not
media, so the task could only fail at probing; the user deletes it at once, which keeps the
disk bounded (16 MiB a request) and leaves the workers to the URL conversions whose rate is
measured. The DELETE is its own request type.

Settings (environment, set by run.sh):
    LOAD_CLIP_URL      the clip URL conversions fetch (a loopback server: needs
                       REELFORGE_FETCH_ALLOW on the service)
    LOAD_ROUTES        `api` (default: /api/..., seed B's spelling) or `legacy` (seed A's
                       /auth/..., /tasks aliases, login by e-mail)
    LOAD_WAIT          think time between two requests of one user, "MIN MAX" s (default 0.5 1.5)
    LOAD_WEIGHTS       e.g. "get=10,list=3,convert=1,upload=1,login=1"
    LOAD_UPLOAD_MIB    upload size (default 16)
    LOAD_CONVERSIONS   JSON list of {"profile", "options"} bodies, taken in turn
    LOAD_HOSTS         space-separated base URLs: users spread over them round-robin (only
                       when no load balancer is in front; otherwise --host)
    LOAD_RUN           a tag that makes user names unique across runs against one database

Every user sends its own X-Forwarded-For address (10.x.y.z): the service's login limiter
allows 20 attempts per client address and then one every 3 s, and signups 10 per address an
hour, so a crowd sharing 127.0.0.1 would measure the limiter, not the service. The old
systems' users came from many addresses too. run.sh trusts 127.0.0.1 as the proxy
(REELFORGE_TRUSTED_PROXIES) so that the header counts.
"""

import itertools
import json
import os
import random
import time
import uuid

from locust import FastHttpUser, between, task

ROUTES = os.environ.get("LOAD_ROUTES", "api")
if ROUTES not in ("api", "legacy"):
    raise SystemExit(f"LOAD_ROUTES must be api or legacy, not {ROUTES!r}")
# Seed B (the conversion tool) spells everything under /api; seed A uses the bare paths.
PREFIX = "/api" if ROUTES == "api" else ""
SIGNUP, LOGIN, TASKS = f"{PREFIX}/auth/signup", f"{PREFIX}/auth/login", f"{PREFIX}/tasks"

CLIP_URL = os.environ.get("LOAD_CLIP_URL", "")
if not CLIP_URL:
    raise SystemExit("LOAD_CLIP_URL is not set (the URL of the clip conversions fetch)")
RUN_TAG = os.environ.get("LOAD_RUN", uuid.uuid4().hex[:8])
PASSWORD = "Load-pass-1"

WAIT_MIN, WAIT_MAX = (float(x) for x in os.environ.get("LOAD_WAIT", "0.5 1.5").split())


def weights() -> dict:
    w = {"get": 10, "list": 3, "convert": 1, "upload": 1, "login": 1}
    for item in filter(None, os.environ.get("LOAD_WEIGHTS", "").split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in w:
            raise SystemExit(f"LOAD_WEIGHTS: unknown request kind {key!r} (known: {', '.join(w)})")
        w[key.strip()] = int(value)
    return w


WEIGHTS = weights()
RELOGIN_AFTER = 15.0  # seconds; see ServiceUser.login_again

# Conversions, taken in turn: real work for a worker on the small clip (a re-encode each).
CONVERSIONS = json.loads(
    os.environ.get("LOAD_CONVERSIONS")
    or '[{"profile": "convert", "options": {"format": "avi"}},'
    ' {"profile": "compress", "options": {"quality": "low"}}]'
)
_conversion_turn = itertools.cycle(range(len(CONVERSIONS)))

# The multipart body of bench/api/run.sh, built once (random bytes: incompressible, and the
# same 1 MiB repeated, as there).
BOUNDARY = "reelforgebench7MA4YWxkTrZu0gW"
UPLOAD_MIB = int(os.environ.get("LOAD_UPLOAD_MIB", "16"))
UPLOAD_BODY = (
    b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
    b"Content-Type: video/mp4\r\n\r\n"
    + os.urandom(1 << 20) * UPLOAD_MIB
    + b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
)
UPLOAD_NAME = f"POST {TASKS} ({UPLOAD_MIB} MiB upload)"

HOSTS = os.environ.get("LOAD_HOSTS", "").split()
_host_turn = itertools.count()


def fake_client_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


class ServiceUser(FastHttpUser):
    wait_time = between(WAIT_MIN, WAIT_MAX)
    # Uploads of 16 MiB under load can take seconds; a timeout is a failure, not a hang.
    network_timeout = 120.0
    connection_timeout = 30.0

    def __init__(self, environment):
        if HOSTS:
            self.host = HOSTS[next(_host_turn) % len(HOSTS)]
        super().__init__(environment)
        self.username = f"load_{RUN_TAG}_{uuid.uuid4().hex[:12]}"
        self.email = f"{self.username}@example.com"
        self.address = fake_client_address()
        self.token = None
        self.logged_in_at = 0.0
        self.task_ids = []  # this user's URL tasks, newest last (the ones it polls)

    # ---------------------------------------------------------------- helpers
    def headers(self, **extra):
        h = {"X-Forwarded-For": self.address, **extra}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def json_post(self, path, body, name, expect):
        with self.client.post(path, data=json.dumps(body), name=name, catch_response=True,
                              headers=self.headers(**{"Content-Type": "application/json"})) as r:
            if r.status_code != expect:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
                return None
            try:
                return r.json()
            except ValueError:
                r.failure("response is not JSON")
                return None

    def log_in(self):
        # Seed A logs in by e-mail, seed B by user name.
        who = {"email": self.email} if ROUTES == "legacy" else {"username": self.username}
        body = self.json_post(LOGIN, {**who, "password": PASSWORD}, f"POST {LOGIN}", 200)
        if body:
            self.token = body["token"]
            self.logged_in_at = time.monotonic()

    # ---------------------------------------------------------------- start
    def on_start(self):
        pw = ({"password": PASSWORD, "password_2": PASSWORD} if ROUTES == "legacy"
              else {"password1": PASSWORD, "password2": PASSWORD})
        self.json_post(SIGNUP, {"username": self.username, "email": self.email, **pw},
                       f"POST {SIGNUP}", 201)
        self.log_in()
        if self.token:
            self.convert()

    # ---------------------------------------------------------------- the mix
    @task(WEIGHTS["get"])
    def poll(self):
        if not self.token or not self.task_ids:
            return
        # Mostly the newest task (a client waiting for its conversion), sometimes an older one.
        tid = self.task_ids[-1] if random.random() < 0.7 else random.choice(self.task_ids)
        self.client.get(f"{TASKS}/{tid}", name=f"GET {TASKS}/{{id}}", headers=self.headers())

    @task(WEIGHTS["list"])
    def list_tasks(self):
        if not self.token:
            return
        self.client.get(f"{TASKS}?max=20&order=1", name=f"GET {TASKS}", headers=self.headers())

    @task(WEIGHTS["convert"])
    def convert(self):
        if not self.token:
            return
        body = {"url": CLIP_URL, **CONVERSIONS[next(_conversion_turn)]}
        created = self.json_post(TASKS, body, f"POST {TASKS} (url)", 201)
        if created:
            self.task_ids = (self.task_ids + [created["id"]])[-20:]

    @task(WEIGHTS["upload"])
    def upload(self):
        if not self.token:
            return
        with self.client.post(TASKS, data=UPLOAD_BODY, name=UPLOAD_NAME, catch_response=True,
                              headers=self.headers(**{"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})) as r:
            if r.status_code != 201:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
                return
            tid = r.json()["id"]
        self.client.delete(f"{TASKS}/{tid}", name=f"DELETE {TASKS}/{{id}}", headers=self.headers())

    @task(WEIGHTS["login"])
    def login_again(self):
        # A client logs in again for a fresh token, not every few seconds: the service allows
        # an account 5 attempts, then one every 12 s, so a quicker re-login is skipped.
        if time.monotonic() - self.logged_in_at >= RELOGIN_AFTER:
            self.log_in()
