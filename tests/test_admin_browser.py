"""The "FTP sessions" admin page in a real headless browser: disconnect a live session.

Chromium and chromedriver come from the system packages (``make
system-deps``); Selenium drives them through /usr/bin/chromedriver and never
downloads a browser or a driver. Skips when they are missing, unless
FTPSERVER_REQUIRE_SERVICES=1 (CI), where a missing browser fails.

With ``FTPSERVER_SCREENSHOT=path.png`` the page is saved there, as listed
before the click (the screenshot in docs/operations.rst).
"""

from __future__ import annotations

import ftplib
import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from django_ftpserver.ops import sessions as livesessions

from .conftest import unavailable, wait_until

CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _browser() -> str:
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    binary = next((path for path in BROWSERS if os.access(path, os.X_OK)), None)
    if binary is None:
        missing.append("chromium")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append("chromium-driver")
    if missing:
        reason = f"no headless browser: missing {', '.join(missing)} (make system-deps)"
        unavailable(reason)
    return binary


@pytest.fixture
def browser(tmp_path):
    binary = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,700",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_disconnect_a_live_session_from_the_admin_page(
    browser, live_server, server_factory, settings, account, home, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # A cache other processes could share, as in production (the page warns
    # about a process-local one).
    settings.CACHES = {
        **settings.CACHES,
        "shared": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        },
    }
    settings.FTPSERVER_SESSIONS_CACHE = "shared"
    settings.FTPSERVER_SERVER_NAME = "ftp1.example.com:2121"
    ftp_server = server_factory()
    (home / "report.pdf").write_bytes(b"%" * 3_500_000)
    operator = get_user_model().objects.create_user("operator", password="op-pass", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_ftpsession", "disconnect_ftpsession"])
    )
    ftp = ftp_server.connect("alice")
    ftp.retrbinary("RETR report.pdf", lambda data: None)
    ftp.pwd()
    not_logged_in = ftp_server.connect()
    session = wait_until(
        lambda: next((s for s in livesessions.list_sessions() if s.command == "PWD"), None),
        what="the session published",
    )

    wait = WebDriverWait(browser, 30)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/django_ftpserver/ftpsession/")
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys("op-pass")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    row = wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, f'tr[data-session="{session.id}"]')
        )
    )
    assert "alice" in row.text and "ftp1.example.com:2121" in row.text and "PWD" in row.text
    assert "3.3 MB" in row.text  # the download's bytes
    assert "process's memory" not in browser.page_source  # a shared cache: no warning
    assert "FTP sessions" in browser.title
    screenshot = os.environ.get("FTPSERVER_SCREENSHOT")
    if screenshot:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(screenshot)

    row.find_element(By.CSS_SELECTOR, "input[type=submit][value=Disconnect]").click()
    message = wait.until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li"))
    )
    assert f"Disconnecting FTP session {session.id}" in message.text
    reply = ftp.getline()
    assert reply.startswith("421 Disconnected by the administrator"), reply
    with pytest.raises((EOFError, OSError, ftplib.Error)):
        ftp.voidcmd("NOOP")
    not_logged_in.quit()
    wait_until(lambda: livesessions.list_sessions() == [], what="the sessions unlisted")
    browser.refresh()
    assert "No FTP session is open." in browser.find_element(By.ID, "result_list").text
