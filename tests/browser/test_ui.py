"""The web UI in real headless Chromium, against `reelforge serve` with one worker.

Each test signs up its own user. The UI is used through its accessible names (labels,
roles); the API is used only to set up what a test is not about, and to check what the
page did (through the page's own session, `page.request`, or a bearer token).
"""

from __future__ import annotations

import base64
import functools
import http.server
import re
import threading
import urllib.parse
from pathlib import Path

from playwright.sync_api import expect

from helpers import (
    JWT,
    api_task,
    api_token,
    api_upload_task,
    api_user,
    bearer,
    drop_files,
    login_ui,
    nav_link,
    set_option,
    signup_ui,
    task_id_of,
    task_row,
    upload_item,
    wait_final,
)

SESSION_COOKIE = "reelforge_session"
UPLOADS = "/api/uploads"
RECEIVED = "reelforge_upload_received_bytes_total"
DROP_ZONE = "Drop files here or choose files"


def storage_of(page) -> dict:
    """Every localStorage and sessionStorage entry of the page's origin."""
    return page.evaluate(
        """() => {
            const all = {};
            for (const [label, s] of [["local", localStorage], ["session", sessionStorage]])
                for (let i = 0; i < s.length; i++) all[label + ":" + s.key(i)] = s.getItem(s.key(i));
            return all;
        }"""
    )


def session_cookie(context, base):
    found = [c for c in context.cookies(base) if c["name"] == SESSION_COOKIE and c["value"]]
    return found[0] if found else None


def session_status(playwright, base, cookie_value) -> int:
    """What `GET /api/session` answers a client that has only this cookie value."""
    client = playwright.request.new_context(
        base_url=base, extra_http_headers={"Cookie": f"{SESSION_COOKIE}={cookie_value}"})
    try:
        return client.get("/api/session").status
    finally:
        client.dispose()


# --- 0. the harness -----------------------------------------------------------------------


def test_root_answers_and_renders(page, server, browser):
    """`GET /` answers 200 (load balancers check it) and the browser renders it."""
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 200
    expect(page).to_have_title(re.compile("Reelforge"))
    shot = browser.shot(page, "root")
    assert shot.stat().st_size > 1000


# --- 1. accounts --------------------------------------------------------------------------


def test_signup_logout_login_and_the_session_cookie(page, context, server, browser, playwright,
                                                    console):
    base = server.url
    user = signup_ui(page, base)
    nav = page.get_by_role("navigation")
    for name in ("Tasks", "New task", "Account"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    browser.shot(page, "signed-up")

    cookie = session_cookie(context, base)
    assert cookie, f"no {SESSION_COOKIE} cookie after sign-up: {context.cookies(base)}"
    assert cookie["httpOnly"] is True, cookie
    assert cookie["sameSite"] == "Lax", cookie
    assert cookie["secure"] is False, "plain http: a Secure cookie would never be sent back"
    assert SESSION_COOKIE not in page.evaluate("document.cookie")

    def no_token_in_storage():
        for key, value in storage_of(page).items():
            assert cookie["value"] not in value, f"{key} holds the session token"
            assert not JWT.search(value), f"{key} holds a JWT: {value[:80]}"

    for route in ("#/tasks", "#/new", "#/account"):
        page.goto(f"{base}/{route}")
        no_token_in_storage()

    # Log out: back to the log-in page, and the old cookie no longer works anywhere.
    old = cookie["value"]
    assert session_status(playwright, base, old) == 200
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"#/login$"))
    assert session_status(playwright, base, old) == 401, "the session outlived the log-out"
    assert session_cookie(context, base) is None
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    # A page that needs a session shows the log-in form instead, and no logged-in controls.
    page.goto(f"{base}/#/tasks")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("link", name="Sign up")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    expect(page.get_by_role("table")).to_have_count(0)

    # A wrong password says so, in an alert, and logs nobody in. The log-in and session
    # routes answer 401 there and when logged out: the browser logs such a response.
    console.allow(r"status of 401")
    page.get_by_label("Username or e-mail").fill(user["username"])
    page.get_by_label("Password", exact=True).fill("Wrong-Password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).not_to_be_empty()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    assert session_cookie(context, base) is None

    # The e-mail address works as the log-in name too.
    login_ui(page, base, user["email"])
    cookie = session_cookie(context, base)
    assert cookie and cookie["value"] != old and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    no_token_in_storage()


def test_change_password_ends_the_old_session(page, context, server, browser, playwright, console):
    base = server.url
    user = signup_ui(page, base)
    old = session_cookie(context, base)["value"]
    nav_link(page, "Account").click()
    expect(page).to_have_url(re.compile(r"#/account$"))
    page.get_by_label("Current password").fill(user["password"])
    page.get_by_label("New password").fill("Changed-Pass-2")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed")
    browser.shot(page, "password-changed")
    assert session_status(playwright, base, old) == 401, "the old session outlived the change"
    # The page's new session works: the list loads.
    nav_link(page, "Tasks").click()
    expect(page.get_by_role("table")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"#/login$"))
    console.allow(r"status of 401")
    page.get_by_label("Username or e-mail").fill(user["username"])
    page.get_by_label("Password", exact=True).fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    login_ui(page, base, user["username"], "Changed-Pass-2")


# --- 2. uploads, live progress, playback, download ----------------------------------------


def test_upload_by_drop_and_picker_then_play_and_download(page, server, browser, clips):
    base = server.url
    signup_ui(page, base)
    dropped = clips.make("dropped-clip.mp4")
    picked = clips.make("picked-clip.mp4")

    nav_link(page, "New task").click()
    expect(page).to_have_url(re.compile(r"#/new$"))
    page.evaluate("window.__sameDocument = 'no reload since #/new'")
    page.get_by_label("Profile").select_option("convert")
    set_option(page, "format", "webm")
    drop_files(page.get_by_role("button", name=DROP_ZONE), [dropped])
    page.get_by_label("Choose files", exact=True).set_input_files(picked)
    browser.shot(page, "files-chosen")
    page.get_by_role("button", name="Start").click()

    ids = {}
    for clip in (dropped, picked):
        item = upload_item(page, clip.name)
        open_task = item.get_by_role("link", name="Open task")
        expect(open_task).to_be_visible(timeout=60_000)
        expect(item.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        ids[clip.name] = task_id_of(open_task)
    browser.shot(page, "uploaded")
    assert len(set(ids.values())) == 2, f"one task per file: {ids}"
    for name, task_id in ids.items():
        task = page.request.get(f"{base}/api/tasks/{task_id}").json()
        assert task["profile"] == "convert", task
        assert task["options"].get("format") == "webm", task

    # The list follows both tasks to the end without a reload (pushed over SSE).
    nav_link(page, "Tasks").click()
    for clip in (dropped, picked):
        row = task_row(page, clip.name)
        expect(row).to_have_count(1)
        assert wait_final(row) == "succeeded", row.inner_text()
    browser.shot(page, "tasks-succeeded")
    assert page.evaluate("window.__sameDocument") == "no reload since #/new"

    # The task page: heading, status, a playable preview, a download of the same bytes.
    row = task_row(page, dropped.name)
    row.get_by_role("link", name=re.compile(re.escape(dropped.name))).click()
    task_id = ids[dropped.name]
    expect(page).to_have_url(re.compile(rf"#/tasks/{task_id}$"))
    expect(page.get_by_role("heading", name=re.compile(re.escape(dropped.name)))).to_be_visible()
    expect(page.get_by_test_id("task-status")).to_contain_text("succeeded")
    task = page.request.get(f"{base}/api/tasks/{task_id}").json()
    assert task["outputs"], task
    output = task["outputs"][0]

    video = page.locator("video").first
    expect(video).to_be_attached()
    video.evaluate("async v => { v.muted = true; await v.play(); }")
    page.wait_for_function("v => !v.error && v.currentTime > 0.5", arg=video.element_handle())
    browser.shot(page, "playing")

    with page.expect_download() as info:
        page.get_by_role("link", name=f"Download {output['name']}").click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == output["name"]
    got = Path(download.path()).read_bytes()
    assert len(got) == output["size"], (len(got), output)
    served = page.request.get(f"{base}/api/tasks/{task_id}/outputs/{output['name']}")
    assert served.ok and served.body() == got


# --- 3. cancel, retry, delete -------------------------------------------------------------


def test_cancel_retry_and_delete_a_task(page, server, browser, api, clips, console):
    base = server.url
    user = signup_ui(page, base)
    token = api_token(api, user["username"])
    # Long enough to be caught running: 2 minutes re-encoded into idrl parts.
    clip = clips.make("long-clip.mp4", seconds=120, size="1280x720")
    task_id = api_upload_task(api, token, clip, profile="idrl")["id"]
    page.reload()  # the task was made behind the page's back

    row = task_row(page, clip.name)
    expect(row).to_contain_text("running", timeout=60_000)
    browser.shot(page, "running")
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("cancelled")
    assert api_task(api, token, task_id)["status"] == "cancelled"

    row.get_by_role("button", name="Retry").click()
    expect(row).to_contain_text(re.compile("queued|running"))
    expect(row).to_contain_text("running", timeout=60_000)
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("cancelled")
    browser.shot(page, "cancelled")

    # Delete asks first: "Keep" keeps it, "Delete task" deletes it.
    row.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    browser.shot(page, "confirm-delete")
    dialog.get_by_role("button", name="Keep").click()
    expect(dialog).to_be_hidden()
    expect(row).to_have_count(1)
    assert api.get(f"/api/tasks/{task_id}", headers=bearer(token)).status == 200

    row.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete task").click()
    expect(row).to_have_count(0)
    assert api.get(f"/api/tasks/{task_id}", headers=bearer(token)).status == 404

    console.allow(r"status of 404")
    page.goto(f"{base}/#/tasks/{task_id}")
    expect(page.get_by_text(re.compile("not found", re.I)).first).to_be_visible()
    browser.shot(page, "deleted-task-page")


# --- 3b. the list's filter, the task page's share link and curl, a field's error ----------


def test_status_filter_share_link_and_copy_as_curl(page, context, server, browser, api, clips,
                                                   playwright):
    base = server.url
    user = signup_ui(page, base)
    token = api_token(api, user["username"])
    good = api_upload_task(api, token, clips.make("good-clip.mp4"), profile="thumbnail")
    # A frame past the end fails the task at planning.
    api_upload_task(api, token, clips.make("late-frame-clip.mp4"), profile="thumbnail",
                    options={"at": [999]})
    page.reload()
    assert wait_final(task_row(page, "good-clip.mp4")) == "succeeded"
    assert wait_final(task_row(page, "late-frame-clip.mp4")) == "failed"

    status = page.get_by_label("Status")
    status.select_option("failed")
    expect(task_row(page, "good-clip.mp4")).to_have_count(0)
    expect(task_row(page, "late-frame-clip.mp4")).to_have_count(1)
    browser.shot(page, "filter-failed")
    status.select_option("succeeded")
    expect(task_row(page, "late-frame-clip.mp4")).to_have_count(0)
    expect(task_row(page, "good-clip.mp4")).to_have_count(1)

    task_row(page, "good-clip.mp4").get_by_role("link", name=re.compile("good-clip")).click()
    expect(page.get_by_test_id("task-status")).to_contain_text("succeeded")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.get_by_role("button", name="Copy as curl").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("curl") and "/api/tasks" in copied, copied

    page.get_by_role("button", name="Share").click()
    link = page.get_by_label("Share link", exact=True)
    expect(link).to_be_visible()
    expect(link).not_to_be_editable()
    expect(link).to_have_value(re.compile(r"^https?://"))
    browser.shot(page, "shared")
    shared = link.input_value()
    # The link works without any session; the task's own route does not.
    stranger = playwright.request.new_context()
    try:
        answer = stranger.get(shared)
        assert answer.status == 200, (shared, answer.status)
        assert answer.body(), "an empty shared file"
        assert stranger.get(f"{base}/api/tasks/{good['id']}").status == 401
    finally:
        stranger.dispose()


def test_a_field_error_shows_beside_the_field(page, server, browser, api, clips, console):
    base = server.url
    user = signup_ui(page, base)
    nav_link(page, "New task").click()
    page.get_by_label("Profile").select_option("convert")
    set_option(page, "format", "mp4")
    set_option(page, "start", "5")
    set_option(page, "end", "2")  # before its start: the server refuses it
    page.get_by_label("Choose files", exact=True).set_input_files(clips.make("trimmed-clip.mp4"))
    console.allow(r"status of 400")
    page.get_by_role("button", name="Start").click()
    alert = page.get_by_role("alert").filter(has_text=re.compile(r"\bend\b"))
    expect(alert.first).to_be_visible()
    browser.shot(page, "field-error")
    field = page.get_by_label("end", exact=True).bounding_box()

    def beside(box):
        return (-10 <= box["y"] - (field["y"] + field["height"]) <= 120
                and box["x"] < field["x"] + field["width"]
                and field["x"] < box["x"] + box["width"])

    boxes = [a.bounding_box() for a in alert.all()]
    assert any(beside(b) for b in boxes if b), f"no error next to the field {field}: {boxes}"
    token = api_token(api, user["username"])
    assert api.get("/api/tasks", headers=bearer(token)).json() == []


# --- 4. an upload cut mid-way resumes after a reload --------------------------------------


def test_upload_resumes_after_a_cut_connection_and_a_reload(page, context, server, browser, clips,
                                                            console):
    base = server.url
    signup_ui(page, base)
    clip = clips.make("resumable-clip.mp4", seconds=3, size="256x144", noise=True)
    size = clip.stat().st_size
    assert size > 3 * 1024 * 1024
    received_before = server.metric(RECEIVED)  # checked at the end
    page.evaluate("localStorage.setItem('reelforge.chunkBytes', String(256 * 1024))")
    page.reload()  # the page reads the chunk size when it loads

    tus = []  # every request to the tus routes, in order
    context.on("request", lambda r: tus.append(r) if UPLOADS in r.url else None)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": 512 * 1024})  # bytes/s: each 256 KiB chunk takes half a second

    nav_link(page, "New task").click()
    page.get_by_label("Profile").select_option("thumbnail")
    page.get_by_label("Choose files", exact=True).set_input_files(clip)
    page.get_by_role("button", name="Start").click()
    item = upload_item(page, clip.name)
    bar = item.get_by_role("progressbar")
    expect(bar).to_be_visible()
    page.wait_for_function("el => Number(el.getAttribute('aria-valuenow')) >= 30",
                           arg=bar.element_handle(), timeout=60_000)
    expect(item).to_contain_text(re.compile(r"/s"))  # the speed
    browser.shot(page, "uploading")
    assert item.get_by_role("link", name="Open task").count() == 0

    # Cut the connection while a PATCH is sending its chunk.
    console.allow(r"ERR_INTERNET_DISCONNECTED|ERR_FAILED|ERR_ABORTED")
    is_patch = lambda r: r.method == "PATCH" and UPLOADS in r.url  # noqa: E731
    page.wait_for_event("request", predicate=is_patch)
    page.wait_for_timeout(150)  # part of the chunk is on the wire; no event says when
    # Offline through the same DevTools session as the throttling (Playwright's own
    # set_offline() goes through another session, whose conditions the throttled one keeps
    # overriding).
    with page.expect_event("requestfailed", predicate=is_patch, timeout=10_000):
        cdp.send("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    browser.shot(page, "offline")
    created = [r for r in tus if r.method == "POST"]
    assert len(created) == 1, [f"{r.method} {r.url}" for r in tus]
    upload_url = urllib.parse.urljoin(base, created[0].response().headers["location"])

    # "Reload": the page goes away while offline, then comes back online from scratch.
    page.goto("about:blank")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

    mark = len(tus)
    page.goto(f"{base}/#/new")
    held, holding = [], [True]

    def hold_patches(route):
        if holding[0] and route.request.method == "PATCH":
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(re.escape(UPLOADS)), hold_patches)
    page.get_by_label("Profile").select_option("thumbnail")
    page.get_by_label("Choose files", exact=True).set_input_files(clip)
    with page.expect_request(is_patch, timeout=30_000) as first_patch:
        page.get_by_role("button", name="Start").click()
    after = tus[mark:]
    assert not [r for r in after if r.method == "POST"], "a new upload instead of a resume"
    assert [r for r in after if r.method == "HEAD" and r.url == upload_url], \
        f"no HEAD of {upload_url}: {[f'{r.method} {r.url}' for r in after]}"
    assert first_patch.value.url == upload_url
    # Held, so the server's offset cannot move: the page resumes from exactly there.
    head = page.request.head(upload_url, headers={"Tus-Resumable": "1.0.0"})
    assert head.ok, head.status
    offset = int(head.headers["upload-offset"])
    assert 0 < offset < size, (offset, size)
    assert int(first_patch.value.headers["upload-offset"]) == offset
    # While that first chunk is held, the progress already shows the server's offset.
    item = upload_item(page, clip.name)
    floor_percent = offset * 100 // size - 1
    page.wait_for_function(f"el => Number(el.getAttribute('aria-valuenow')) >= {floor_percent}",
                           arg=item.get_by_role("progressbar").element_handle(), timeout=5_000)
    browser.shot(page, "resumed")
    holding[0] = False
    for route in held:
        route.continue_()
    page.unroute(re.compile(re.escape(UPLOADS)))

    open_task = item.get_by_role("link", name="Open task")
    expect(open_task).to_be_visible(timeout=60_000)
    task_id = task_id_of(open_task)
    assert task_id in upload_url, (task_id, upload_url)
    stored = page.request.get(f"{base}/api/tasks/{task_id}/input")
    assert stored.ok, stored.status
    assert stored.body() == clip.read_bytes(), "the stored input differs from the file"
    assert received_before is not None, f"GET /metrics has no {RECEIVED}"
    received = server.metric(RECEIVED) - received_before
    assert received == size, f"the server read {received} bytes for a {size}-byte file"


def test_pause_and_resume_an_upload(page, context, server, browser, clips):
    base = server.url
    signup_ui(page, base)
    clip = clips.make("paused-clip.mp4", seconds=3, size="256x144", noise=True)
    page.evaluate("localStorage.setItem('reelforge.chunkBytes', String(256 * 1024))")
    page.reload()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": 512 * 1024})
    created = []
    context.on("response", lambda r: created.append(r)
               if r.request.method == "POST" and r.url.endswith(UPLOADS) else None)

    nav_link(page, "New task").click()
    page.get_by_label("Profile").select_option("thumbnail")
    page.get_by_label("Choose files", exact=True).set_input_files(clip)
    page.get_by_role("button", name="Start").click()
    item = upload_item(page, clip.name)
    bar = item.get_by_role("progressbar")
    page.wait_for_function("el => Number(el.getAttribute('aria-valuenow')) >= 10",
                           arg=bar.element_handle(), timeout=60_000)
    expect(item.get_by_role("button", name="Resume")).to_be_hidden()
    item.get_by_role("button", name="Pause").click()
    expect(item.get_by_role("button", name="Resume")).to_be_visible()
    expect(item.get_by_role("button", name="Pause")).to_be_hidden()
    browser.shot(page, "paused")

    # Paused means no byte moves: the server's offset and the bar stay where they are.
    assert len(created) == 1
    upload_url = urllib.parse.urljoin(base, created[0].headers["location"])

    def server_offset():
        head = page.request.head(upload_url, headers={"Tus-Resumable": "1.0.0"})
        assert head.ok, head.status
        return int(head.headers["upload-offset"])

    page.wait_for_timeout(1000)  # let the aborted chunk settle on the server
    shown, offset = bar.get_attribute("aria-valuenow"), server_offset()
    page.wait_for_timeout(1500)  # nothing to wait for: nothing may happen
    assert server_offset() == offset and bar.get_attribute("aria-valuenow") == shown
    assert 0 < offset < clip.stat().st_size

    item.get_by_role("button", name="Resume").click()
    expect(item.get_by_role("button", name="Pause")).to_be_visible()
    open_task = item.get_by_role("link", name="Open task")
    expect(open_task).to_be_visible(timeout=60_000)
    task_id = task_id_of(open_task)
    stored = page.request.get(f"{base}/api/tasks/{task_id}/input")
    assert stored.ok and stored.body() == clip.read_bytes()


# --- 5. security --------------------------------------------------------------------------


ATTACKS = {
    # A forged JSON body: text/plain forms send `name=value` unencoded.
    "json.html": """<form method="post" action="{target}" enctype="text/plain">
<input name='{{"profile":"thumbnail","url":"http://127.0.0.1:9/forged.mp4","x":"' value='"}}'>
</form><script>document.forms[0].submit()</script>""",
    # A forged upload: script can put a file in a form's file input.
    "multipart.html": """<form method="post" action="{target}" enctype="multipart/form-data">
<input type="hidden" name="profile" value="thumbnail"><input type="file" name="file">
</form><script>
const dt = new DataTransfer();
dt.items.add(new File([new Uint8Array(4096)], "forged.mp4", {{type: "video/mp4"}}));
document.forms[0].file.files = dt.files;
document.forms[0].submit();
</script>""",
}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_cross_site_form_post_is_refused(page, server, browser, api, console, tmp_path, clips):
    base = server.url
    user = signup_ui(page, base)
    token = api_token(api, user["username"])
    for name, html in ATTACKS.items():
        (tmp_path / name).write_text(html.format(target=f"{base}/api/tasks"))
    site = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    port = site.server_address[1]
    console.allow(r"status of 40[0-9]")
    try:
        # 127.0.0.1 on another port is the same site (the Lax cookie goes along; the
        # Origin check must refuse it); localhost is another site (no cookie at all).
        for host in ("127.0.0.1", "localhost"):
            for name in ATTACKS:
                is_post = lambda r: r.url == f"{base}/api/tasks" and r.request.method == "POST"  # noqa: E731
                with page.expect_response(is_post) as answer:
                    page.goto(f"http://{host}:{port}/{name}")
                assert answer.value.status in (401, 403), (host, name, answer.value.status)
                browser.shot(page, f"attack-{host}-{name}")
    finally:
        site.shutdown()
    tasks = api.get("/api/tasks", headers=bearer(token)).json()
    assert tasks == [], f"a forged request made a task: {tasks}"

    # Control: the same requests with the user's credentials are accepted, so the refusals
    # above were the CSRF rules and not bad payloads.
    forged = {"profile": "thumbnail", "url": "http://127.0.0.1:9/forged.mp4", "x": "="}
    assert api.post("/api/tasks", headers=bearer(token), data=forged).status == 201
    form = {"profile": "thumbnail",
            "file": {"name": "forged.mp4", "mimeType": "video/mp4", "buffer": bytes(4096)}}
    assert api.post("/api/tasks", headers=bearer(token), multipart=form).status == 201


def test_another_users_task_upload_and_output_are_not_found(page, server, browser, api, clips,
                                                            console):
    base = server.url
    other = api_user(api)
    task = api_upload_task(api, other["token"], clips.make("someone-elses-clip.mp4"))
    upload = api.post(UPLOADS, headers={
        **bearer(other["token"]), "Tus-Resumable": "1.0.0", "Upload-Length": "100",
        "Upload-Metadata": "filename " + base64.b64encode(b"theirs.mp4").decode()})
    assert upload.status == 201, upload.status
    upload_url = urllib.parse.urljoin(base, upload.headers["location"])

    signup_ui(page, base)
    console.allow(r"status of 404")
    page.goto(f"{base}/#/tasks/{task['id']}")
    expect(page.get_by_text(re.compile("not found", re.I)).first).to_be_visible()
    expect(page.get_by_text("someone-elses-clip.mp4")).to_have_count(0)
    browser.shot(page, "someone-elses-task")

    # Through this browser's session: every route of the other user's task is 404.
    done = task
    for _ in range(600):
        done = api_task(api, other["token"], task["id"])
        if done["status"] in ("succeeded", "failed", "cancelled"):
            break
        page.wait_for_timeout(100)
    assert done["status"] == "succeeded", done
    paths = [f"/api/tasks/{task['id']}", f"/api/tasks/{task['id']}/input",
             f"/api/tasks/{task['id']}/events"]
    paths += [f"/api/tasks/{task['id']}/outputs/{o['name']}" for o in done["outputs"]]
    for path in paths:
        assert page.request.get(base + path).status == 404, path
    assert page.request.head(upload_url, headers={"Tus-Resumable": "1.0.0"}).status == 404


# --- 6. narrow and wide -------------------------------------------------------------------


def fits(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_pages_fit_360_and_1440_wide_without_console_errors(page, server, browser, api, clips,
                                                            console):
    base = server.url
    user = signup_ui(page, base)
    token = api_token(api, user["username"])
    name = "a-rather-long-file-name-that-has-to-wrap-on-a-phone-screen-2026-12-07.mp4"
    task_id = api_upload_task(api, token, clips.make(name), profile="thumbnail")["id"]
    api_upload_task(api, token, clips.make("short.mp4"), profile="thumbnail")
    page.reload()
    assert wait_final(task_row(page, name)) == "succeeded"

    pages = {
        "tasks": ("#/tasks", lambda: task_row(page, name)),
        "new": ("#/new", lambda: page.get_by_role("button", name="Start")),
        "account": ("#/account", lambda: page.get_by_role("button", name="Change password")),
        "task": (f"#/tasks/{task_id}", lambda: page.get_by_role("heading", name=name)),
    }
    for width, height in ((360, 740), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        for label, (route, ready) in pages.items():
            page.goto(f"{base}/{route}")
            expect(ready()).to_be_visible()
            browser.shot(page, f"{width}-{label}")
            scroll, inner = fits(page)
            assert scroll <= inner, f"{label} at {width}px: {scroll}px wide content"
    page.get_by_role("button", name="Log out").click()
    for width, height in ((360, 740), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        for route, button in (("#/login", "Log in"), ("#/signup", "Sign up")):
            page.goto(f"{base}/{route}")
            expect(page.get_by_role("button", name=button)).to_be_visible()
            browser.shot(page, f"{width}-{route[2:]}")
            scroll, inner = fits(page)
            assert scroll <= inner, f"{route} at {width}px: {scroll}px wide content"


# --- 7. first load ------------------------------------------------------------------------


class Meter:
    """Bytes a page received over the network (CDP: headers and bodies, as transferred)."""

    def __init__(self, context, page):
        self.urls: dict[str, str] = {}
        self.finished: dict[str, int] = {}
        self.streamed: dict[str, int] = {}
        cdp = context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent",
               lambda e: self.urls.__setitem__(e["requestId"], e["request"]["url"]))
        cdp.on("Network.dataReceived", lambda e: self.streamed.__setitem__(
            e["requestId"], self.streamed.get(e["requestId"], 0) + e["encodedDataLength"]))
        cdp.on("Network.loadingFinished",
               lambda e: self.finished.__setitem__(e["requestId"], e["encodedDataLength"]))
        cdp.send("Network.enable")

    def total(self) -> int:
        return sum(self.finished.values()) + sum(
            n for rid, n in self.streamed.items() if rid not in self.finished)

    def report(self) -> str:
        return ", ".join(f"{self.urls.get(r, r)}={n}" for r, n in self.finished.items())


BUDGET = 200 * 1000  # bytes


def test_first_load_is_small_and_without_hls_js(browser, server):
    base = server.url
    ctx = browser.new_context()
    page = ctx.pages[0]
    meter = Meter(ctx, page)
    page.goto(base + "/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.wait_for_load_state("networkidle")
    print(f"first load, logged out: {meter.total()} bytes: {meter.report()}")
    assert meter.total() <= BUDGET, meter.report()
    assert not [u for u in meter.urls.values() if "hls" in u.lower()], meter.urls
    assert page.evaluate("typeof window.Hls") == "undefined"

    signup_ui(page, base)
    # Logged in, with a cold cache: a fresh profile holding only the session cookie.
    ctx2 = browser.new_context()
    ctx2.add_cookies([c for c in ctx.cookies(base) if c["name"] == SESSION_COOKIE])
    page2 = ctx2.pages[0]
    meter2 = Meter(ctx2, page2)
    page2.goto(base + "/")
    expect(page2.get_by_role("table")).to_be_visible()
    expect(nav_link(page2, "New task")).to_be_visible()
    page2.wait_for_load_state("load")
    print(f"first load, logged in: {meter2.total()} bytes: {meter2.report()}")
    assert meter2.total() <= BUDGET, meter2.report()
    assert not [u for u in meter2.urls.values() if "hls" in u.lower()], meter2.urls
    assert page2.evaluate("typeof window.Hls") == "undefined"


# --- HLS in the browser -----------------------------------------------------------------


def test_an_hls_ladder_plays_through_hls_js(page, server, browser, api, clips):
    """A browser without native HLS (Firefox, older Chromium; recent Chromium plays HLS
    itself, so the page is told it cannot): the task page loads the vendored hls.js, only
    there, and plays the master playlist through signed playback URLs, no header needed."""
    page.add_init_script("""{
        const canPlay = HTMLMediaElement.prototype.canPlayType;
        HTMLMediaElement.prototype.canPlayType = function (type) {
            return /mpegurl/i.test(type) ? "" : canPlay.call(this, type);
        };
    }""")
    base = server.url
    user = signup_ui(page, base)
    token = api_token(api, user["username"])
    task = api_upload_task(api, token, clips.make("ladder.mp4", seconds=4, size="640x360"),
                           profile="hls", options={"segment_seconds": 2})
    assert wait_final_api(api, token, task["id"]) == "succeeded"
    hls_requests = []
    page.on("request", lambda r: hls_requests.append(r.url) if "hls.light.min.js" in r.url else None)
    page.goto(f"{base}/#/tasks/{task['id']}")
    expect(page.get_by_test_id("task-status")).to_contain_text("succeeded")
    video = page.get_by_label(re.compile(r"^Play .*\.m3u8$"))
    expect(video).to_be_attached()
    page.wait_for_function("() => window.Hls !== undefined", timeout=30_000)
    video.evaluate("async v => { v.muted = true; await v.play(); }")
    page.wait_for_function("v => !v.error && v.currentTime > 0.5", arg=video.element_handle(),
                           timeout=30_000)
    browser.shot(page, "hls-playing")
    assert len(hls_requests) == 1, hls_requests


def wait_final_api(api, token, task_id, seconds=120):
    """The task's final status, polled through the API (set-up, not what a test is about)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = api_task(api, token, task_id)["status"]
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish in {seconds} s")
