"""Fixtures of the browser tests: the server, the browser, generated clips, console errors.

- `server` (one per run): `reelforge serve` (REELFORGE_BIN, default target/debug/reelforge)
  on a free loopback port (`REELFORGE_LISTEN=127.0.0.1:0`, the URL read from its log), with
  a throw-away data dir and one worker; killed at the end.
- `browser` (per test): a factory of Chromium contexts, each a fresh persistent profile in a
  temporary dir, launched from Debian's `/usr/bin/chromium` (REELFORGE_CHROMIUM) by
  Playwright's executable path; Playwright never downloads a browser. `context`/`page` are
  the first one. A missing browser skips, or fails under CI.
- `console`: every console error and uncaught page error of every context of the test;
  the test fails on any that it did not `allow()`.
- `clips`: clips generated with ffmpeg's lavfi sources, never downloaded.
- `receiver` (one per run): tests/webhooks/receiver.py on 127.0.0.3 (the servers allow
  webhooks there: `REELFORGE_FETCH_ALLOW`), verifying signatures with the `standardwebhooks`
  package, in the python of REELFORGE_TEST_WEBHOOK_PY (scripts/test.sh `need_webhooks`).
- `smtp` and `mail_server` (one per run): an `aiosmtpd` sink on a loopback port, in this
  process, and a second `reelforge serve` that sends it e-mail (plain SMTP, loopback only),
  with `REELFORGE_PUBLIC_URL` its own URL, so the links in its e-mails lead to it.
A missing receiver or aiosmtpd skips the tests that need them, or fails them under CI.
Screenshots (`shot()`, and one per open page when a test fails) and the server log go to
REELFORGE_BROWSER_ARTIFACTS (default: a temporary dir, printed at the end).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def under_ci() -> bool:
    return os.environ.get("CI", "") not in ("", "false", "0")


# --- the server ---------------------------------------------------------------------------


class Server:
    """`reelforge serve` on a free loopback port with a throw-away data dir."""

    def __init__(self, binary: Path, workdir: Path, env: dict | None = None,
                 listen: str = "127.0.0.1:0"):
        self.binary = binary
        self.workdir = workdir
        self.extra_env = env or {}
        self.listen = listen
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env.update(
            REELFORGE_DATA_DIR=str(self.workdir / "data"),
            REELFORGE_LISTEN=self.listen,
            REELFORGE_WORKERS="1",
            # Loopback URLs pass the fetch policy, so a forged URL task would be accepted
            # if a cross-site request got through (test_cross_site_form_post_is_refused);
            # 127.0.0.3 is where the webhook receiver listens.
            REELFORGE_FETCH_ALLOW="127.0.0.1,127.0.0.3",
            # Every test signs up its own users, all from 127.0.0.1 (default 10/1h).
            REELFORGE_SIGNUP_LIMIT="1000/1h",
            RUST_LOG=os.environ.get("REELFORGE_BROWSER_RUST_LOG", "info"),
        )
        env.update(self.extra_env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log())
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"reelforge exited ({self.proc.returncode}) before listening:\n{self.log()}"
                )
            time.sleep(0.05)  # a process's log, not a page: nothing to wait on but the file
        raise RuntimeError(f"reelforge did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str) -> float | None:
        """The sum of every sample of the metric `name`, None when it is not exposed."""
        total, seen = 0.0, False
        for line in self.metrics().splitlines():
            m = re.match(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)", line)
            if m:
                total += float(m.group(1))
                seen = True
        return total if seen else None


def pytest_addoption(parser):
    parser.addoption(
        "--reelforge-bin",
        default=os.environ.get("REELFORGE_BIN")
        or str(Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug" / "reelforge"),
        help="the reelforge binary to serve (default target/debug/reelforge, or REELFORGE_BIN)",
    )


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    path = os.environ.get("REELFORGE_BROWSER_ARTIFACTS")
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = tmp_path_factory.mktemp("artifacts")
    yield directory
    print(f"\nbrowser tests: screenshots and server log in {directory}")


def reelforge_binary(pytestconfig) -> Path:
    binary = Path(pytestconfig.getoption("--reelforge-bin"))
    if not binary.is_absolute():
        binary = REPO / binary
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no reelforge binary at {binary} (cargo build, or --reelforge-bin)")
    return binary


@pytest.fixture(scope="session")
def server(pytestconfig, tmp_path_factory, artifacts) -> Server:
    srv = Server(reelforge_binary(pytestconfig), tmp_path_factory.mktemp("server"))
    srv.start()
    yield srv
    srv.stop()
    shutil.copy(srv.log_path, artifacts / "server.log")


def missing(problem: str):
    """A test dependency is not there: a failure under CI, else a skip."""
    if under_ci():
        pytest.fail(problem + " (CI: a missing test dependency is a failure)")
    pytest.skip(problem)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- e-mail -------------------------------------------------------------------------------


class Mailbox:
    """The messages an `aiosmtpd` sink received, and a wait for the one a test expects."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, to: str, subject: str = "", timeout: float = 30.0):
        """The first message to `to` whose subject holds `subject` (case-insensitive)."""

        def found():
            return next((m for m in self.messages
                         if to.lower() in str(m.get("To", "")).lower()
                         and subject.lower() in str(m.get("Subject", "")).lower()), None)

        with self.changed:
            message = self.changed.wait_for(found, timeout=timeout)
        assert message is not None, (
            f"no e-mail to {to} about {subject!r} in {timeout}s; got "
            f"{[(m.get('To'), m.get('Subject')) for m in self.messages]}")
        return message

    @staticmethod
    def text(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture(scope="session")
def smtp() -> Mailbox:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        missing("aiosmtpd is not installed in the browser venv (scripts/test.sh need_browser)")
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


@pytest.fixture(scope="session")
def mail_server(pytestconfig, tmp_path_factory, artifacts, smtp) -> Server:
    """A second server, with e-mail: its messages go to `smtp`."""
    port = free_port()
    srv = Server(reelforge_binary(pytestconfig), tmp_path_factory.mktemp("mail-server"), env={
        "REELFORGE_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}?tls=none",
        "REELFORGE_MAIL_FROM": "reelforge@localhost",
        "REELFORGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }, listen=f"127.0.0.1:{port}")
    srv.start()
    yield srv
    srv.stop()
    shutil.copy(srv.log_path, artifacts / "mail-server.log")


# --- webhooks -----------------------------------------------------------------------------


class Receiver:
    """tests/webhooks/receiver.py: what it received on each hook, and its control routes."""

    HOST = "127.0.0.3"

    def __init__(self, python: str, workdir: Path):
        self.log_path = workdir / "received.jsonl"
        self.proc = subprocess.Popen(
            [python, str(REPO / "tests/webhooks/receiver.py"), str(self.log_path), self.HOST],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # blocks until it listens (or exits)
        found = re.match(r"listening on (\d+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the webhook receiver did not start: {line!r}")
        self.base = f"http://{self.HOST}:{found.group(1)}"

    def url(self, hook: str) -> str:
        return f"{self.base}/hook/{hook}"

    def set_secrets(self, hook: str, secrets: list[str]) -> None:
        body = json.dumps({"hook": hook, "secrets": secrets}).encode()
        req = urllib.request.Request(self.base + "/_control/secrets", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204, r.status

    def received(self, hook: str) -> list[dict]:
        try:
            lines = self.log_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [e for e in map(json.loads, lines) if e["hook"] == hook]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def receiver(tmp_path_factory) -> Receiver:
    python = os.environ.get("REELFORGE_TEST_WEBHOOK_PY", "")
    if not python:
        missing("REELFORGE_TEST_WEBHOOK_PY is not set (scripts/test.sh need_webhooks)")
    r = Receiver(python, tmp_path_factory.mktemp("receiver"))
    yield r
    r.stop()


# --- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("REELFORGE_CHROMIUM", "/usr/bin/chromium")
    problem = None
    if not os.access(path, os.X_OK):
        problem = f"no browser at {path} (Debian: apt-get install chromium)"
    else:
        try:
            out = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=60
            )
            if out.returncode != 0 or "Chromium" not in out.stdout:
                problem = f"{path} --version failed: {out.stdout}{out.stderr}"
        except (OSError, subprocess.TimeoutExpired) as e:
            problem = f"{path} --version failed: {e}"
    if problem:
        if under_ci():
            pytest.fail(problem + " (CI: a missing browser is a failure)")
        pytest.skip(problem)
    return path


@pytest.fixture(scope="session")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def api(playwright, server):
    """A plain HTTP client (no browser, no cookies) for set-up through the API."""
    ctx = playwright.request.new_context(base_url=server.url)
    yield ctx
    ctx.dispose()


class Console:
    """Console errors and uncaught errors of every page of a test's contexts."""

    def __init__(self):
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def watch(self, context) -> None:
        def on_console(msg):
            if msg.type == "error":
                loc = msg.location or {}
                self.errors.append(f"console: {msg.text} ({loc.get('url', '')})")

        context.on("console", on_console)
        context.on("weberror", lambda e: self.errors.append(f"page error: {e.error}"))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


class Browser:
    """Launches persistent Chromium contexts, each on a fresh profile dir."""

    def __init__(self, playwright, chromium_path, console, artifacts, name):
        self.playwright = playwright
        self.chromium_path = chromium_path
        self.console = console
        self.artifacts = artifacts
        self.name = name
        self.contexts = []
        self.dirs = []
        self.shots = 0

    def new_context(self, **options):
        profile = tempfile.mkdtemp(prefix="reelforge-chromium-")
        self.dirs.append(profile)
        options.setdefault("viewport", {"width": 1280, "height": 900})
        options.setdefault("accept_downloads", True)
        ctx = self.playwright.chromium.launch_persistent_context(
            user_data_dir=profile,
            executable_path=self.chromium_path,
            args=CHROMIUM_ARGS,
            headless=True,
            **options,
        )
        ctx.set_default_timeout(15_000)
        self.console.watch(ctx)
        self.contexts.append(ctx)
        return ctx

    def shot(self, page, label: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.name}-{self.shots:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def flush(self) -> None:
        """Lets pending console events arrive (they are delivered during Playwright calls)."""
        for ctx in self.contexts:
            for page in ctx.pages:
                try:
                    page.evaluate("0")
                except Exception:
                    pass

    def close(self) -> None:
        for ctx in self.contexts:
            try:
                ctx.close()
            except Exception:
                pass
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test whose pages logged an error it did not allow fails, after its own checks."""
    result = yield
    browser = item.funcargs.get("browser")
    console = item.funcargs.get("console")
    if browser is not None and console is not None:
        browser.flush()
        bad = console.unexpected()
        assert not bad, "errors in the browser console:\n  " + "\n  ".join(bad)
    return result


@pytest.fixture
def browser(request, playwright, chromium_path, console, artifacts, server):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    b = Browser(playwright, chromium_path, console, artifacts, name)
    yield b
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for ctx in b.contexts:
            for page in ctx.pages:
                try:
                    print(f"screenshot of {page.url}: {b.shot(page, 'failed')}")
                except Exception as e:
                    print(f"no screenshot of {page.url}: {e}")
        print("server log (tail):\n" + server.log_tail())
    b.close()


@pytest.fixture
def context(browser):
    return browser.new_context()


@pytest.fixture
def page(context):
    return context.pages[0] if context.pages else context.new_page()


# --- clips --------------------------------------------------------------------------------


class Clips:
    """Clips made with ffmpeg's lavfi sources; each call returns a fresh copy named `name`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.cache: dict[tuple, Path] = {}
        self.count = 0

    def make(self, name: str, seconds: float = 3, size: str = "320x240", noise=False) -> Path:
        key = (seconds, size, noise)
        if key not in self.cache:
            src = self.directory / f"cache-{len(self.cache)}.mp4"
            if noise:  # incompressible: a few MiB in a few seconds
                video = ["-f", "lavfi", "-i",
                         f"nullsrc=s={size}:r=25,geq=lum='random(1)*255':cb=128:cr=128"]
                codec = ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "10"]
            else:
                video = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=25"]
                codec = ["-c:v", "libx264", "-preset", "ultrafast"]
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *video,
                 "-f", "lavfi", "-i", "sine", "-t", str(seconds), *codec,
                 "-pix_fmt", "yuv420p", "-c:a", "aac", str(src)],
                check=True, stdin=subprocess.DEVNULL,
            )
            self.cache[key] = src
        self.count += 1
        out = self.directory / f"copy-{self.count}" / name
        out.parent.mkdir()
        shutil.copy2(self.cache[key], out)
        return out


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Clips:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed to make the test clips (scripts/test.sh installs it)")
    return Clips(tmp_path_factory.mktemp("clips"))
