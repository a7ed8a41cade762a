"""A webhook receiver for the tests, verifying every delivery with an independent
implementation of Standard Webhooks (the `standardwebhooks` package).

    python receiver.py LOG_FILE [HOST]

Listens on HOST (default 127.0.0.3: a loopback address the tests allow webhooks to reach
while 127.0.0.1 and `localhost` stay refused) on a free port, prints `listening on PORT`,
and appends one JSON line
per request received on `/hook/NAME` to LOG_FILE:

    {"hook", "id", "timestamp", "signature", "body", "verified", "verified_with", "status",
     "received_at"}

`verified` is true when a secret known for the hook signs the request; `verified_with`
lists which of them (after a rotation, both the new and the old one must). The timestamp
is checked against the clock only when it is near now: the tests drive the service's
clock days ahead to walk the retry schedule, and then the signature alone is checked
(with the package's own `sign`).

Control (JSON POSTs the tests make):
    /_control/secrets  {"hook": NAME, "secrets": ["whsec_…", …]}
    /_control/script   {"hook": NAME, "answers": [[status, {header: value}], …]}
        the statuses to answer with, in order (then 200 for good);
    /_control/hang     {"hook": NAME, "seconds": N}  answer the next request after N s.
"""

import json
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
SECRETS = {}
SCRIPTS = {}
HANGS = {}
LOG_PATH = sys.argv[1]


def verify(secret, body, headers):
    """Whether `secret` signs this request (Standard Webhooks 1.0)."""
    wh = Webhook(secret)
    ts = headers.get("webhook-timestamp", "")
    try:
        near_now = abs(int(ts) - time.time()) < 300
    except ValueError:
        return False
    if near_now:
        try:
            wh.verify(body, headers, json_parse=False)
            return True
        except WebhookVerificationError:
            return False
    expected = wh.sign(
        headers.get("webhook-id", ""),
        datetime.fromtimestamp(int(ts), tz=timezone.utc),
        body,
    )
    return expected in headers.get("webhook-signature", "").split(" ")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def answer(self, status, headers=None, body=b"{}"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.body()
        if self.path.startswith("/_control/"):
            return self.control(self.path[len("/_control/"):], json.loads(body))
        if not self.path.startswith("/hook/"):
            return self.answer(404)
        hook = self.path[len("/hook/"):].split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            secrets = list(SECRETS.get(hook, []))
            script = SCRIPTS.get(hook, [])
            status, extra = script.pop(0) if script else (200, {})
            hang = HANGS.pop(hook, 0)
        used = [i for i, s in enumerate(secrets) if verify(s, body, headers)]
        entry = {
            "hook": hook,
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"),
            "content_type": headers.get("content-type"),
            "body": body.decode("utf-8", "replace"),
            "verified": bool(used),
            "verified_with": used,
            "status": status,
            "received_at": time.time(),
        }
        with LOCK, open(LOG_PATH, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        if hang:
            time.sleep(hang)
        self.answer(status, extra)

    def control(self, what, req):
        hook = req["hook"]
        with LOCK:
            if what == "secrets":
                SECRETS[hook] = req["secrets"]
            elif what == "script":
                SCRIPTS[hook] = [(a[0], a[1] if len(a) > 1 else {}) for a in req["answers"]]
            elif what == "hang":
                HANGS[hook] = req["seconds"]
            else:
                return self.answer(404)
        self.answer(204, body=b"")


def main():
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.3"
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
