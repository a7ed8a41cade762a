"""Who may sign up, and the admin page, in real headless Chromium.

`invite_server` runs with `REELFORGE_SIGNUP=invite`; its first admin is made on the command
line (`reelforge user create --admin`), as an operator would. `closed_server` runs with
`REELFORGE_SIGNUP=closed`. The main `server` (signup open) shows what a user who is not an
admin sees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from playwright.sync_api import expect

from conftest import Server, reelforge_binary
from helpers import PASSWORD, api_token, api_upload_task, api_user, login_ui, nav_link, unique


def cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, REELFORGE_DATA_DIR=str(server.workdir / "data"),
               REELFORGE_NEW_PASSWORD=PASSWORD)
    return subprocess.run([str(server.binary), *args], env=env, capture_output=True,
                          text=True, check=True, stdin=subprocess.DEVNULL, timeout=60)


@pytest.fixture(scope="module")
def invite_server(pytestconfig, tmp_path_factory, artifacts):
    srv = Server(reelforge_binary(pytestconfig), tmp_path_factory.mktemp("invite-server"),
                 env={"REELFORGE_SIGNUP": "invite"})
    srv.start()
    cli(srv, "user", "create", "root", "root@example.com", "--admin")
    yield srv
    srv.stop()
    shutil.copy(srv.log_path, artifacts / "invite-server.log")


@pytest.fixture(scope="module")
def closed_server(pytestconfig, tmp_path_factory):
    srv = Server(reelforge_binary(pytestconfig), tmp_path_factory.mktemp("closed-server"),
                 env={"REELFORGE_SIGNUP": "closed"})
    srv.start()
    yield srv
    srv.stop()


def section(page, name: str):
    return page.get_by_role("region", name=re.compile(name))


def signup_with(page, base: str, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()


def test_an_admin_invites_someone_who_signs_up_once_with_the_link(
        browser, invite_server, playwright, clips, console):
    base = invite_server.url
    admin = browser.new_context()
    page = admin.new_page()
    login_ui(page, base, "root")
    nav_link(page, "Admin").click()
    expect(page.get_by_role("heading", name="Admin", level=1)).to_be_visible()
    # What the service is doing, from the database alone (no Prometheus here).
    expect(section(page, "Workers")).to_contain_text("1 alive, 0 of 1 slots busy")
    expect(section(page, "Queue")).to_contain_text("Waiting for a worker")
    expect(section(page, "Failures")).to_contain_text("No task failed")
    expect(section(page, "Invites")).to_contain_text("needs an invite code")

    invites = section(page, "Invites")
    invites.get_by_label("Note").fill("for Dana")
    invites.get_by_role("button", name="Make an invite").click()
    link = invites.get_by_label("Invite link").input_value()
    assert re.fullmatch(rf"{re.escape(base)}/\?invite=[\w-]{{43}}#/signup", link), link
    expect(invites.get_by_role("row", name=re.compile("for Dana"))).to_contain_text("unused")
    browser.shot(page, "admin-invite")

    # The link fills in the code; the signup spends it.
    dana = unique("dana")
    guest = browser.new_context().new_page()
    guest.goto(link)
    expect(guest.get_by_label("Invite code")).to_have_value(link.split("invite=")[1].split("#")[0])
    signup_with(guest, base, link, dana)
    expect(guest).to_have_url(re.compile(r"#/tasks$"))

    # Once only: the same link refuses a second signup, saying what to do.
    console.allow(r"status of 403")
    again = browser.new_context().new_page()
    signup_with(again, base, link, unique("eve"))
    expect(again.get_by_role("alert")).to_contain_text("ask an admin for a new one")
    # Without a code the form asks for one before anything is sent.
    bare = browser.new_context().new_page()
    bare.goto(f"{base}/#/signup")
    expect(bare.get_by_label("Invite code")).to_have_value("")
    expect(bare.get_by_label("Invite code")).to_have_attribute("required", "")

    # Dana's task, read-only in the admin view.
    api = playwright.request.new_context(base_url=base)
    token = api_token(api, dana)
    api_upload_task(api, token, clips.make("dana-clip.mp4", seconds=1))
    api.dispose()
    page.reload()
    expect(section(page, "Invites").get_by_role("row", name=re.compile("for Dana"))) \
        .to_contain_text(f"used by {dana}")
    users = section(page, "Users")
    users.get_by_role("link", name=dana).click()
    expect(page.get_by_role("heading", name=f"Tasks of {dana}")).to_be_visible()
    page.get_by_role("link", name="dana-clip.mp4").click()
    expect(page.get_by_role("heading", name="dana-clip.mp4")).to_be_visible()
    expect(page.get_by_text("thumbnail")).to_be_visible()
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    browser.shot(page, "admin-user-task")

    # Disabled: Dana's session ends at her next request; enabled again, she logs back in.
    page.goto(f"{base}/#/admin")
    row = section(page, "Users").get_by_role("row", name=re.compile(dana))
    row.get_by_role("button", name="Disable").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(row.get_by_text("disabled")).to_be_visible()
    console.allow(r"status of 401")
    guest.goto(f"{base}/#/account")
    guest.reload()
    expect(guest.get_by_role("heading", name="Log in")).to_be_visible()
    row.get_by_role("button", name="Enable").click()
    expect(row.get_by_text("active")).to_be_visible()
    login_ui(guest, base, dana)
    # An admin cannot lock themself out.
    own = section(page, "Users").get_by_role("row", name=re.compile("root@example.com"))
    expect(own.get_by_role("button", name="Disable")).to_be_disabled()
    page.set_viewport_size({"width": 390, "height": 844})
    browser.shot(page, "admin-narrow")


def test_the_admin_page_shows_a_running_job_with_its_worker(
        browser, invite_server, playwright, clips):
    base = invite_server.url
    page = browser.new_context().new_page()
    login_ui(page, base, "root")
    api = playwright.request.new_context(base_url=base)
    token = api_token(api, "root")
    # Long enough to be seen running (the page refreshes every 5 s): 2 minutes into idrl parts.
    clip = clips.make("long-clip.mp4", seconds=120, size="1280x720")
    task = api_upload_task(api, token, clip, profile="idrl")
    page.goto(f"{base}/#/admin")
    workers = section(page, "Workers")
    expect(workers).to_contain_text("1 of 1 slots busy", timeout=60_000)
    job = workers.locator(f'li[data-task-id="{task["id"]}"]')
    expect(job).to_contain_text(re.compile(r"root: idrl, (fetching|probing|processing)"))
    browser.shot(page, "admin-running")
    api.post(f"/api/tasks/{task['id']}/cancel", headers={"Authorization": f"Bearer {token}"})
    expect(workers).to_contain_text("0 of 1 slots busy", timeout=30_000)
    api.dispose()


def test_someone_who_is_not_an_admin_sees_no_admin_page(page, server, api):
    user = api_user(api)
    login_ui(page, server.url, user["username"])
    expect(nav_link(page, "Tasks")).to_be_visible()
    expect(nav_link(page, "Admin")).to_be_hidden()
    page.goto(f"{server.url}/#/admin")
    expect(page.get_by_role("alert")).to_have_text("Only an admin sees this page.")


def test_a_closed_server_says_whom_to_ask_for_an_account(page, closed_server, browser):
    page.goto(f"{closed_server.url}/#/signup")
    expect(page.get_by_text("Signing up is closed on this server")).to_be_visible()
    expect(page.get_by_role("button", name="Sign up")).to_have_count(0)
    browser.shot(page, "signup-closed")
