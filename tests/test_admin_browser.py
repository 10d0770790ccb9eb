"""The admin's results pages in a real browser: headless Chromium, driven by Selenium.

Chromium and chromedriver come from the system's packages (Debian: chromium, chromium-driver;
bin/test installs them when it can); without them this test is skipped, saying so. The
screenshots (the results overview, a failed result) go to the test's temporary directory; with
SQS_TASKS_UPDATE_SCREENSHOTS=1 they replace docs/images/admin-overview.png and
docs/images/admin-result.png, which docs/admin.md shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.tasks import TaskResultStatus, default_task_backend
from django.test.testcases import LiveServerThread

from sqs_tasks.testing import Stack, drain
from tests import tasks
from tests.admin_site import PASSWORD, admin_site
from tests.conftest import queue_depth

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["admin_site"]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="the browser test needs Chromium and chromedriver on PATH "
    "(Debian: apt-get install chromium chromium-driver; bin/test installs them as root)",
)


@pytest.fixture
def live_server(admin_site: dict[str, User]) -> Iterator[str]:
    """The test settings' Django, admin and static files, served over HTTP from a thread."""
    server = LiveServerThread("127.0.0.1", StaticFilesHandler)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    yield f"http://127.0.0.1:{server.port}"
    server.terminate()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium from the system, driven through its own chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace to sandbox with
        "--disable-dev-shm-usage",
        "--window-size=1280,1200",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(browser: Any, name: str, tmp_path: Path) -> None:
    """The page as a PNG: into docs/images when updating the docs' pictures, else tmp_path."""
    folder = IMAGES if os.environ.get("SQS_TASKS_UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(folder / name))
    assert (folder / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_staff_log_in_open_a_failed_result_and_retry_it(
    live_server: str, browser: Any, stack: Stack, tmp_path: Path
) -> None:
    failed = tasks.fail.using(queue_name="emails").enqueue("mail server down")
    drain()
    wait = WebDriverWait(browser, 15)

    browser.get(f"{live_server}/admin/sqs_tasks/result/")
    assert "/admin/login/" in browser.current_url  # the admin's own login page
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "queue-emails")))
    _screenshot(browser, "admin-overview.png", tmp_path)

    browser.find_element(By.LINK_TEXT, failed.id).click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "errors")))
    assert browser.find_element(By.CSS_SELECTOR, ".field-status").text == "FAILED"
    assert "ValueError: mail server down" in browser.find_element(By.ID, "errors").text
    _screenshot(browser, "admin-result.png", tmp_path)

    browser.find_element(By.ID, "retry").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "confirm")))
    assert queue_depth("emails") == 0  # the confirmation page changes nothing
    browser.find_element(By.ID, "confirm").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".success")))

    message = browser.find_element(By.CSS_SELECTOR, ".messagelist .success").text
    new_id = message.removeprefix("Enqueued ").split(":", 1)[0]
    assert message == (
        f"Enqueued {new_id}: a retry of {failed.id} "
        "(tests.tasks.fail on queue 'emails', priority 0)."
    )
    assert browser.current_url == f"{live_server}/admin/sqs_tasks/result/{new_id}/"
    assert browser.find_element(By.CSS_SELECTOR, ".field-status").text == "READY"
    retried: Any = default_task_backend.get_result(new_id)
    assert (retried.status, retried.args) == (TaskResultStatus.READY, ["mail server down"])
    assert queue_depth("emails") == 1
