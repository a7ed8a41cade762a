"""Notifications in the web UI: webhook endpoints, their secrets and delivery log, e-mail
preferences, a task's notifications, password reset by e-mail, and the way back after
logging in (an e-mailed task link, an e-mailed download link).

Webhooks go to tests/webhooks/receiver.py (`receiver`), which verifies each delivery with
the `standardwebhooks` package; e-mail goes to an `aiosmtpd` sink (`smtp`) through a second
server that has SMTP (`mail_server`). The main `server` sends no e-mail.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from playwright.sync_api import expect

from helpers import (
    PASSWORD,
    api_task,
    api_upload_task,
    api_user,
    login_ui,
    nav_link,
    signup_ui,
    task_id_of,
    unique,
    upload_item,
    wait_final,
)

SECRET = re.compile(r"^whsec_[A-Za-z0-9+/=]{32,}$")
SHOWN_ONCE = "it will not be shown again"
EVENTS = ("task.started", "task.succeeded", "task.failed", "task.cancelled")


def webhooks(page):
    return page.get_by_role("region", name="Webhooks")


def endpoint(page, url: str):
    """The list item of the endpoint with this URL."""
    return webhooks(page).get_by_role("list", name="Webhook endpoints").get_by_role(
        "listitem").filter(has_text=url)


def add_endpoint(page, url: str) -> str:
    """Adds an endpoint through the form (all events); returns the secret shown."""
    region = webhooks(page)
    region.get_by_label("Endpoint URL").fill(url)
    region.get_by_role("button", name="Add endpoint").click()
    item = endpoint(page, url)
    secret = item.get_by_label("The endpoint's signing secret")
    expect(secret).to_have_value(SECRET)
    return secret.input_value()


def not_media(tmp_path, name: str = "not-a-video.mp4"):
    """A file that is no media: its task fails at probing, fast."""
    path = tmp_path / name
    path.write_bytes(b"this is not a video\n" * 200)
    return path


def account(page, base: str):
    page.goto(f"{base}/#/account")
    expect(page.get_by_role("heading", name="Account")).to_be_visible()


# --- webhook endpoints --------------------------------------------------------------------


def test_manage_a_webhook_endpoint(page, server, browser, receiver, console):
    base = server.url
    signup_ui(page, base)
    nav_link(page, "Account").click()
    region = webhooks(page)
    expect(region.get_by_text("No endpoints yet.")).to_be_visible()
    for event in EVENTS:  # all four by default
        expect(region.get_by_label(event, exact=True)).to_be_checked()
    url = receiver.url("manage")

    # Added: the secret is shown once, with the warning, and the endpoint is listed.
    secret = add_endpoint(page, url)
    item = endpoint(page, url)
    expect(item).to_contain_text(SHOWN_ONCE)
    expect(item.get_by_role("button", name="Copy")).to_be_visible()
    expect(item).to_contain_text("Enabled")
    expect(item).to_contain_text("Events: " + ", ".join(EVENTS))
    browser.shot(page, "endpoint-added")
    listed = page.request.get(f"{base}/api/webhooks").json()
    assert [e["url"] for e in listed] == [url], listed
    assert "secret" not in listed[0]

    # Once: after a reload the endpoint is there, its secret is not.
    page.reload()
    expect(item).to_contain_text("Enabled")
    expect(item.get_by_label(re.compile("secret"))).to_have_count(0)
    assert secret not in page.content()

    # Disable, enable.
    item.get_by_role("button", name="Disable").click()
    expect(item).to_contain_text("Disabled")
    expect(item.get_by_role("button", name="Send test event")).to_be_disabled()
    assert page.request.get(f"{base}/api/webhooks").json()[0]["enabled"] is False
    item.get_by_role("button", name="Enable").click()
    expect(item.get_by_role("button", name="Send test event")).to_be_enabled()
    expect(item.get_by_text("Enabled", exact=True)).to_be_visible()
    assert page.request.get(f"{base}/api/webhooks").json()[0]["enabled"] is True

    # Edit the events.
    item.get_by_role("button", name="Edit events").click()
    item.get_by_role("group", name="Events").get_by_label("task.started", exact=True).uncheck()
    item.get_by_role("button", name="Save events").click()
    expect(item).to_contain_text("Events: task.succeeded, task.failed, task.cancelled")
    assert page.request.get(f"{base}/api/webhooks").json()[0]["events"] == list(EVENTS[1:])

    # Rotate: a new secret, shown once; the old one still signs for a while.
    item.get_by_role("button", name="Rotate secret").click()
    rotated = item.get_by_label("The endpoint's new signing secret")
    expect(rotated).to_have_value(SECRET)
    assert rotated.input_value() != secret
    expect(item).to_contain_text(SHOWN_ONCE)
    expect(item).to_contain_text("The previous secret also signs until")
    browser.shot(page, "endpoint-rotated")

    # Delete, with a confirm step: "Keep" keeps it.
    item.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this endpoint?")
    expect(dialog).to_contain_text(url)
    browser.shot(page, "endpoint-delete-confirm")
    dialog.get_by_role("button", name="Keep").click()
    expect(dialog).to_have_count(0)
    expect(item).to_have_count(1)
    item.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete endpoint").click()
    expect(item).to_have_count(0)
    expect(region.get_by_text("No endpoints yet.")).to_be_visible()
    assert page.request.get(f"{base}/api/webhooks").json() == []


def test_send_a_test_event_then_the_delivery_log_and_redeliver(page, server, browser,
                                                               receiver):
    base = server.url
    signup_ui(page, base)
    account(page, base)
    hook = unique("test-event-")
    url = receiver.url(hook)
    secret = add_endpoint(page, url)
    receiver.set_secrets(hook, [secret])
    item = endpoint(page, url)

    item.get_by_role("button", name="Send test event").click()
    expect(item.get_by_role("status")).to_contain_text("Test event queued")
    # The log opens by itself and follows until the attempt is there.
    log = item.get_by_role("table", name=re.compile("Delivery attempts"))
    rows = log.locator("tbody tr")
    expect(rows).to_have_count(1, timeout=30_000)
    expect(rows.first).to_contain_text("webhook.test")
    expect(rows.first).to_contain_text("HTTP 200")
    expect(rows.first).to_contain_text(re.compile(r"\d+ ms"))
    browser.shot(page, "delivery-log")
    got = receiver.received(hook)
    assert len(got) == 1 and got[0]["verified"], got  # signed with the secret shown
    message = rows.first.get_attribute("data-message-id")
    assert message == got[0]["id"], (message, got)

    # Redeliver: the same message (same webhook-id) again, a second attempt in the log.
    rows.first.get_by_role("button", name="Redeliver").click()
    expect(item.get_by_role("status")).to_contain_text("Queued again")
    expect(rows).to_have_count(2, timeout=30_000)
    expect(log.locator(f'tbody tr[data-message-id="{message}"]')).to_have_count(2)
    got = receiver.received(hook)
    assert [g["id"] for g in got] == [message, message], got
    assert all(g["verified"] for g in got), got
    # One Redeliver button per message, on its newest attempt.
    expect(log.get_by_role("button", name="Redeliver")).to_have_count(1)

    # The log closes and opens again on demand.
    item.get_by_role("button", name="Delivery log").click()
    expect(log).to_have_count(0)
    item.get_by_role("button", name="Delivery log").click()
    expect(rows).to_have_count(2)


def test_a_private_webhook_url_is_refused_in_words(page, server, browser, api, console):
    base = server.url
    signup_ui(page, base)
    account(page, base)
    console.allow(r"status of 422")
    region = webhooks(page)
    region.get_by_label("Endpoint URL").fill("http://10.1.2.3/hook")
    region.get_by_role("button", name="Add endpoint").click()
    alert = region.get_by_role("alert")
    expect(alert).to_contain_text("not allowed")
    expect(alert).to_contain_text("public addresses")
    browser.shot(page, "private-url-refused")
    assert page.request.get(f"{base}/api/webhooks").json() == []

    # A task's own webhook URL: refused beside its field, and no task is made.
    nav_link(page, "New task").click()
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/clip.mp4")
    page.get_by_label("Webhook URL").fill("http://192.168.10.20/hook")
    page.get_by_role("button", name="Start").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("not allowed")
    expect(alert).to_contain_text("public addresses")
    expect(page.get_by_label("Webhook URL")).to_be_focused()
    # Beside its field: right after it (and its hint).
    assert alert.evaluate("a => a.closest('div').previousElementSibling.querySelector('input').name") \
        == "webhook_url"
    assert page.request.get(f"{base}/api/tasks").json() == []


def test_the_default_webhook_secret(page, server, browser):
    base = server.url
    signup_ui(page, base)
    account(page, base)
    region = page.get_by_role("region", name="Default webhook secret")
    region.get_by_role("button", name="Show").click()
    shown = region.get_by_label("Default secret")
    expect(shown).to_have_value(SECRET)
    first = shown.input_value()
    assert page.request.get(f"{base}/api/account/webhook-secret").json()["secret"] == first
    region.get_by_role("button", name="Rotate").click()
    rotated = region.get_by_label("New default secret")
    expect(rotated).to_have_value(SECRET)
    assert rotated.input_value() != first
    expect(region).to_contain_text("The previous secret also signs until")
    assert page.request.get(f"{base}/api/account/webhook-secret").json()["secret"] == \
        rotated.input_value()


# --- a task's notifications ---------------------------------------------------------------


def test_a_tasks_webhook_and_its_notifications_on_the_task_page(page, server, browser,
                                                                receiver, tmp_path):
    base = server.url
    signup_ui(page, base)
    account(page, base)
    region = page.get_by_role("region", name="Default webhook secret")
    region.get_by_role("button", name="Show").click()
    secret = region.get_by_label("Default secret").input_value()
    hook = unique("task-")
    receiver.set_secrets(hook, [secret])

    # Upload (tus) with a webhook URL; the file is no media, so the task fails fast.
    nav_link(page, "New task").click()
    path = not_media(tmp_path)
    page.get_by_label("Choose files", exact=True).set_input_files(path)
    page.get_by_label("Webhook URL").fill(receiver.url(hook) + "?token=kept-private")
    page.get_by_role("button", name="Start").click()
    open_task = upload_item(page, path.name).get_by_role("link", name="Open task")
    expect(open_task).to_be_visible(timeout=60_000)
    task_id = task_id_of(open_task)
    open_task.click()
    assert wait_final(page.get_by_test_id("task-status")) == "failed"
    expect(page.get_by_text(receiver.url(hook), exact=True).first).to_be_visible()

    section = page.get_by_role("region", name="Notifications")
    table = section.get_by_role("table", name="Notifications of this task")
    failed = table.get_by_role("row").filter(has_text="task.failed")
    expect(failed).to_have_count(1)
    # Sent after the final state: the page follows until it is.
    expect(failed).to_contain_text("sent", timeout=30_000)
    expect(failed).to_contain_text("Webhook")
    expect(failed).to_contain_text(receiver.url(hook))
    expect(table).not_to_contain_text("kept-private")  # shown without its query
    started = table.get_by_role("row").filter(has_text="task.started")
    expect(started).to_contain_text("sent")
    browser.shot(page, "task-notifications")

    task = page.request.get(f"{base}/api/tasks/{task_id}").json()
    assert {(n["event"], n["status"]) for n in task["notifications"]} >= {
        ("task.started", "sent"), ("task.failed", "sent")}, task["notifications"]
    got = receiver.received(hook)
    assert {json.loads(g["body"])["type"] for g in got} >= {
        "task.started", "task.failed"}, got
    assert all(g["verified"] for g in got), got


def test_a_url_task_sends_its_webhook_url(page, server, browser, receiver):
    """The URL form posts JSON: `webhook_url` goes along."""
    base = server.url
    signup_ui(page, base)
    nav_link(page, "New task").click()
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/clip.mp4")
    hook = receiver.url(unique("json-"))
    page.get_by_label("Webhook URL").fill(hook)
    with page.expect_request(lambda r: r.url == f"{base}/api/tasks" and r.method == "POST") as sent:
        page.get_by_role("button", name="Start").click()
    assert sent.value.post_data_json["webhook_url"] == hook
    link = page.get_by_role("status").get_by_role("link", name="Open task")
    expect(link).to_be_visible()
    task = page.request.get(f"{base}/api/tasks/{task_id_of(link)}").json()
    assert task["webhook_url"] == hook, task
    page.request.delete(f"{base}/api/tasks/{task['id']}",
                        headers={"X-CSRF-Token": page.evaluate("S.csrf")})


# --- e-mail preferences -------------------------------------------------------------------


def test_email_preferences_without_smtp_are_disabled(page, server, browser):
    signup_ui(page, server.url)
    account(page, server.url)
    region = page.get_by_role("region", name="E-mail notifications")
    expect(region).to_contain_text("This server sends no e-mail")
    expect(region.get_by_label("when a task succeeds")).to_be_disabled()
    expect(region.get_by_label("when a task fails or is cancelled")).to_be_disabled()


def test_email_preferences_persist_across_a_reload(page, mail_server, browser):
    base = mail_server.url
    signup_ui(page, base)
    account(page, base)
    region = page.get_by_role("region", name="E-mail notifications")
    success = region.get_by_label("when a task succeeds")
    failure = region.get_by_label("when a task fails or is cancelled")
    expect(success).to_be_enabled()
    expect(region).not_to_contain_text("sends no e-mail")
    # On by default, with SMTP.
    expect(success).to_be_checked()
    expect(failure).to_be_checked()
    success.uncheck()
    expect(region.get_by_role("status")).to_have_text("Saved.")
    browser.shot(page, "email-preferences")
    page.reload()
    expect(success).to_be_enabled()
    expect(success).not_to_be_checked()
    expect(failure).to_be_checked()
    assert page.request.get(f"{base}/api/account/notifications").json()["email"] == {
        "on_success": False, "on_failure": True}
    failure.uncheck()
    expect(region.get_by_role("status")).to_have_text("Saved.")
    success.check()
    expect(region.get_by_role("status")).to_have_text("Saved.")
    page.reload()
    expect(success).to_be_checked()
    expect(failure).not_to_be_checked()


# --- password reset -----------------------------------------------------------------------


def test_forgot_password_without_smtp_says_so(page, server, browser, console):
    page.goto(f"{server.url}/#/login")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page).to_have_url(re.compile(r"#/forgot$"))
    console.allow(r"status of 503")
    page.get_by_label("E-mail").fill("someone@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot send e-mail")
    browser.shot(page, "forgot-no-smtp")


def test_password_reset_by_an_emailed_link_works_once(page, mail_server, smtp, browser, playwright,
                                                      console):
    base = mail_server.url
    client = playwright.request.new_context(base_url=base)
    try:
        user = api_user(client)
    finally:
        client.dispose()
    address = f"{user['username']}@example.com"

    page.goto(f"{base}/#/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("E-mail").fill(address)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("status")).to_contain_text("If that address belongs to an account")
    browser.shot(page, "forgot-sent")

    text = smtp.text(smtp.wait_for(address))
    found = re.search(r"(http://\S+/#/reset/[\w-]+)", text)
    assert found, text
    link = found.group(1)
    assert link.startswith(base + "/"), (link, base)

    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    console.allow(r"status of 400")
    new = "Reset-Pass-3"
    # Errors in words: two different passwords, a weak one.
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Repeat new password").fill(new + "x")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert")).to_have_text("The two passwords are not the same.")
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("Repeat new password").fill("short")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 8 characters")
    browser.shot(page, "reset-error")
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Repeat new password").fill(new)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    browser.shot(page, "reset-done")
    page.get_by_role("link", name="Log in").click()
    login_ui(page, base, user["username"], new)

    # The link works once (then it names no reset: 404).
    console.allow(r"status of 404")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"#/login$"))
    page.goto(link)
    page.get_by_label("New password", exact=True).fill("Another-Pass-4")
    page.get_by_label("Repeat new password").fill("Another-Pass-4")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown, already used or expired")
    expect(page.get_by_role("link", name="Ask for a new link")).to_be_visible()
    # The old password is gone, the new one stays.
    console.allow(r"status of 401")
    page.goto(f"{base}/#/login")
    page.get_by_label("Username or e-mail").fill(user["username"])
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    login_ui(page, base, user["username"], new)


# --- back where the user was going --------------------------------------------------------


def test_login_returns_to_the_task_page(page, server, browser, api, tmp_path):
    base = server.url
    user = api_user(api)
    task = api_upload_task(api, user["token"], not_media(tmp_path, "emailed-task.mp4"))
    page.goto(f"{base}/#/tasks/{task['id']}")  # a link of an e-mail, logged out
    page.get_by_label("Username or e-mail").fill(user["username"])
    page.get_by_label("Password", exact=True).fill(user["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"#/tasks/{task['id']}$"))
    expect(page.get_by_role("heading", name="emailed-task.mp4")).to_be_visible()


def test_an_emailed_download_link_logs_in_then_opens_the_output(page, server, browser, api,
                                                                 clips, console):
    base = server.url
    # Chromium's own page around an image applies an inline style, refused by the
    # download's `Content-Security-Policy: sandbox; default-src 'none'`.
    console.allow(r"Applying inline style violates the following Content Security Policy")
    user = api_user(api)
    task = api_upload_task(api, user["token"], clips.make("emailed-output.mp4"))
    done = task
    for _ in range(600):
        done = api_task(api, user["token"], task["id"])
        if done["status"] in ("succeeded", "failed", "cancelled"):
            break
        page.wait_for_timeout(100)
    assert done["status"] == "succeeded", done
    name = done["outputs"][0]["name"]

    page.goto(f"{base}/go/outputs/{task['id']}/{urllib.parse.quote(name)}")
    expect(page).to_have_url(re.compile(r"\?next=%2Fgo%2Foutputs%2F.*#/login$"))
    expect(page.get_by_text("Log in to open the file of your e-mail.")).to_be_visible()
    browser.shot(page, "login-for-output")
    page.get_by_label("Username or e-mail").fill(user["username"])
    page.get_by_label("Password", exact=True).fill(user["password"])
    with page.expect_response(lambda r: "/api/play/" in r.url) as played:
        page.get_by_role("button", name="Log in").click()
    assert played.value.status == 200, played.value.status
    expect(page).to_have_url(re.compile(rf"/api/play/[^/]+/{re.escape(name)}$"))

    # Only /go/ links: any other `next` is ignored.
    ctx = browser.new_context()
    other = ctx.pages[0]
    other.goto(f"{base}/?next=https%3A%2F%2Fexample.com%2F#/login")
    other.get_by_label("Username or e-mail").fill(user["username"])
    other.get_by_label("Password", exact=True).fill(user["password"])
    other.get_by_role("button", name="Log in").click()
    expect(other).to_have_url(re.compile(r"#/tasks$"))
    assert other.url.startswith(base)


# --- narrow and wide ----------------------------------------------------------------------


def test_notification_pages_fit_360_and_1440_wide(page, server, browser, receiver, tmp_path):
    base = server.url
    signup_ui(page, base)
    account(page, base)
    hook = unique("a-rather-long-hook-name-for-a-narrow-screen-")
    url = receiver.url(hook)
    add_endpoint(page, url)
    item = endpoint(page, url)
    item.get_by_role("button", name="Send test event").click()
    expect(item.locator("table tbody tr")).to_have_count(1, timeout=30_000)
    task = api_upload_task_via_page(page, base, not_media(tmp_path), url)
    page.goto(f"{base}/#/tasks")  # every page below is a fresh render

    def account_ready():
        endpoint(page, url).get_by_role("button", name="Delivery log").click()
        return endpoint(page, url).locator("table tbody tr").first

    pages = {
        "account": ("#/account", account_ready),
        "task": (f"#/tasks/{task}", lambda: page.get_by_role("table", name="Notifications of this task")),
        "forgot": ("#/forgot", lambda: page.get_by_role("button", name="Send the link")),
        "reset": ("#/reset/not-a-real-token", lambda: page.get_by_role("button", name="Set password")),
    }
    for width, height in ((360, 740), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        for label, (route, ready) in pages.items():
            page.goto(f"{base}/{route}")
            expect(ready()).to_be_visible()
            browser.shot(page, f"{width}-{label}")
            scroll, inner = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, f"{label} at {width}px: {scroll}px wide content"


def api_upload_task_via_page(page, base, path, webhook_url) -> str:
    """A multipart task with a webhook URL through the page's session (set-up)."""
    r = page.request.post(f"{base}/api/tasks", headers={"X-CSRF-Token": page.evaluate("S.csrf")},
                          multipart={"file": {"name": path.name, "mimeType": "video/mp4",
                                              "buffer": path.read_bytes()},
                                     "profile": "thumbnail", "webhook_url": webhook_url})
    assert r.status == 201, r.text()
    return r.json()["id"]


# --- API keys -----------------------------------------------------------------------------


def test_make_use_and_revoke_an_api_key(page, server, browser, console):
    base = server.url
    signup_ui(page, base)
    nav_link(page, "Account").click()
    region = page.get_by_role("region", name="API keys")
    expect(region.get_by_text("No API keys yet.")).to_be_visible()
    region.get_by_label("Name").fill("dashboard")
    region.get_by_label("Scope").select_option("read")
    region.get_by_label("Expires after (days)").fill("7")
    region.get_by_role("button", name="Make a key").click()
    shown = region.get_by_label("The new API key")
    expect(shown).to_have_value(re.compile(r"^rf_[0-9A-Za-z]{43}$"))
    key = shown.input_value()
    expect(region).to_contain_text("it will not be shown again")
    keys = region.get_by_role("list", name="API keys")
    expect(keys.get_by_role("listitem")).to_have_count(1)
    expect(keys).to_contain_text("dashboard")
    expect(keys).to_contain_text(key[:11] + "…")
    expect(keys).to_contain_text("read, made")
    browser.shot(page, "api-key-made")

    # The key reads, and only reads (a request with no cookie: the page's context has one).
    request = page.context.request
    r = request.get(f"{base}/api/tasks", headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200, r.text()
    r = request.post(f"{base}/api/tasks", headers={"Authorization": f"Bearer {key}"},
                     data={"url": "http://127.0.0.1:9/x.mp4"})
    assert r.status == 403 and r.json()["error"] == "insufficient_scope", r.text()

    # After a reload the key is listed, never shown; revoking it (confirmed) stops it.
    page.reload()
    expect(keys.get_by_role("listitem")).to_have_count(1)
    assert key not in page.content()
    keys.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog", name="Revoke this key?")
    dialog.get_by_role("button", name="Revoke key").click()
    expect(region.get_by_text("No API keys yet.")).to_be_visible()
    r = request.get(f"{base}/api/tasks", headers={"Authorization": f"Bearer {key}"})
    assert r.status == 401, r.text()
