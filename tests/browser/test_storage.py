"""Storage in the web UI, against a server with `REELFORGE_USER_QUOTA=3MB` and
`REELFORGE_RETENTION=30d`: the account page shows the usage against the quota and how long
files are kept, a task asks to keep its files for a while, and an upload over the quota is
refused with words that say what to do.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.sync_api import expect

from conftest import Server, reelforge_binary
from helpers import nav_link, signup_ui


@pytest.fixture(scope="module")
def quota_server(pytestconfig, tmp_path_factory, artifacts):
    srv = Server(reelforge_binary(pytestconfig), tmp_path_factory.mktemp("quota-server"),
                 env={"REELFORGE_USER_QUOTA": "3MB", "REELFORGE_RETENTION": "30d"})
    srv.start()
    yield srv
    srv.stop()
    shutil.copy(srv.log_path, artifacts / "quota-server.log")


def test_usage_quota_and_kept_files_on_the_account_and_task_pages(
        page, quota_server, browser, clips, tmp_path, console):
    base = quota_server.url
    signup_ui(page, base)
    nav_link(page, "Account").click()
    storage = page.get_by_test_id("storage")
    expect(storage).to_contain_text("0 B of 3.0 MB used.")
    expect(storage).to_contain_text("removed 30 days after they finish")

    # A task that keeps its files 7 days.
    nav_link(page, "New task").click()
    page.get_by_label("Profile").select_option("thumbnail")
    clip = clips.make("kept-clip.mp4", seconds=1, size="160x120")
    page.get_by_label("Keep the files").select_option("7d")
    page.get_by_label("Choose files", exact=True).set_input_files(clip)
    page.get_by_role("button", name="Start").click()
    open_task = page.get_by_role("link", name="Open task")
    expect(open_task).to_be_visible(timeout=30_000)
    open_task.click()
    expect(page.get_by_text("kept 7 days after it finishes")).to_be_visible()

    nav_link(page, "Account").click()
    expect(storage).to_contain_text(re.compile(r"[1-9][\d.]* [KM]?B of 3\.0 MB used\."))
    browser.shot(page, "account-storage")

    # Over the quota: refused before a byte is sent, saying how much room is left.
    big = tmp_path / "too-big.mp4"
    big.write_bytes(os.urandom(4_000_000))
    nav_link(page, "New task").click()
    console.allow(r"status of 413")
    page.get_by_label("Choose files", exact=True).set_input_files(big)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("alert").filter(has_text="of your 3000000 bytes left")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("delete tasks you no longer need")
    browser.shot(page, "quota-refused")
