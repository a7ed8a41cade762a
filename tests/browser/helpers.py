"""What the browser tests do often: accounts through the UI or the API, files, tasks."""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

PASSWORD = "Browser-Test-1"
FINAL = ("succeeded", "failed", "cancelled")
TASK_HREF = re.compile(r"#/tasks/([0-9a-fA-F-]{36})")
# A JWT (three base64url parts, the first a JSON header) or a long random token.
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")


def nav_link(page: Page, name: str) -> Locator:
    """A link of the header's navigation (the pages have links of the same names)."""
    return page.get_by_role("navigation").get_by_role("link", name=name, exact=True)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --- accounts -----------------------------------------------------------------------------


def signup_ui(page: Page, base: str, username: str | None = None,
              password: str = PASSWORD) -> dict:
    """Signs up through `#/signup`; the new user lands on `#/tasks`, logged in."""
    username = username or unique("ui")
    page.goto(f"{base}/#/signup")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"#/tasks$"))
    return {"username": username, "email": f"{username}@example.com", "password": password}


def login_ui(page: Page, base: str, login: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/#/login")
    page.get_by_label("Username or e-mail").fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"#/tasks$"))


def api_user(api, username: str | None = None, password: str = PASSWORD) -> dict:
    """A user made through the API, with a bearer token."""
    username = username or unique("api")
    r = api.post("/api/auth/signup", data={
        "username": username, "email": f"{username}@example.com",
        "password": password, "password_2": password})
    assert r.ok, f"signup: {r.status} {r.text()}"
    return {"username": username, "password": password, "token": api_token(api, username, password)}


def api_token(api, username: str, password: str = PASSWORD) -> str:
    r = api.post("/api/auth/login", data={"username": username, "password": password})
    assert r.ok, f"login: {r.status} {r.text()}"
    return r.json()["token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- tasks through the API ----------------------------------------------------------------


def api_upload_task(api, token: str, path: Path, profile: str = "thumbnail",
                    options: dict | None = None) -> dict:
    """A task from a multipart upload (`POST /api/tasks`)."""
    import json

    form = {
        "file": {"name": path.name, "mimeType": "video/mp4", "buffer": path.read_bytes()},
        "profile": profile,
    }
    if options:
        form["options"] = json.dumps(options)
    r = api.post("/api/tasks", headers=bearer(token), multipart=form, timeout=60_000)
    assert r.status == 201, f"create task: {r.status} {r.text()}"
    return r.json()


def api_task(api, token: str, task_id: str) -> dict:
    r = api.get(f"/api/tasks/{task_id}", headers=bearer(token))
    assert r.ok, f"task {task_id}: {r.status} {r.text()}"
    return r.json()


# --- the new-task form --------------------------------------------------------------------


def set_option(page: Page, name: str, value: str) -> None:
    """Sets the generated option field labelled `name` (a select or an input)."""
    field = page.get_by_label(name, exact=True)
    if field.evaluate("el => el.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def drop_files(target: Locator, paths: list[Path]) -> None:
    """Drops files on `target` as a person dragging them from a file manager would: the
    page builds a DataTransfer from the bytes and gets dragenter, dragover and drop."""
    files = [
        {"name": p.name, "type": "video/mp4", "b64": base64.b64encode(p.read_bytes()).decode(),
         "lastModified": int(p.stat().st_mtime * 1000)}
        for p in paths
    ]
    target.evaluate(
        """(el, files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, {type: f.type, lastModified: f.lastModified}));
            }
            for (const type of ["dragenter", "dragover", "drop"]) {
                el.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
            }
        }""",
        files,
    )


def upload_item(page: Page, file_name: str) -> Locator:
    """The upload list's entry of one file."""
    return page.get_by_role("listitem").filter(
        has=page.get_by_role("progressbar", name=f"Upload of {file_name}"))


def task_row(page: Page, file_name: str) -> Locator:
    return page.get_by_role("row").filter(has_text=file_name)


def task_id_of(link: Locator) -> str:
    href = link.get_attribute("href") or ""
    m = TASK_HREF.search(href)
    assert m, f"no task id in the link {href!r}"
    return m.group(1)


def wait_final(row_or_status: Locator, timeout: float = 120_000) -> str:
    """Waits until the row or status element shows a final status, and returns it."""
    expect(row_or_status).to_contain_text(re.compile("|".join(FINAL)), timeout=timeout)
    text = row_or_status.inner_text()
    return next(s for s in FINAL if s in text)
