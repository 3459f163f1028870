"""The console in a real headless Chromium (Debian's, driven by Selenium) against the admin
service, matcher and sender as processes, the real broker and a receiver: sign in, create a
webhook through the form (refused first for a forbidden header), publish an event, see the
delivery with its response and payload, redeliver, deactivate. Every page is kept as a PNG
screenshot under the test's tmp dir and checked not to be blank."""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import element_to_be_clickable, staleness_of
from selenium.webdriver.support.wait import WebDriverWait
from test_admin_cli import TOKEN, AdminProcess

from hookstream.client import HookstreamClient
from hookstream.kafka.topics import create_topics
from support import Pipeline, Receiver, make_event, unique_settings, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Debian's Chromium and chromedriver, installed by scripts/chromium.sh when missing."""
    found = subprocess.run(
        ["bash", str(ROOT / "scripts" / "chromium.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if found.returncode != 0:
        raise RuntimeError(f"scripts/chromium.sh could not provide Chromium:\n{found.stderr}")
    browser, driver = found.stdout.strip().splitlines()[-2:]
    return browser, driver


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(executable_path=chromium[1], log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def distinct_colours(png: bytes, enough: int = 16) -> int:
    """How many distinct pixel values an 8-bit, non-interlaced PNG has (counting stops at
    ``enough``): a blank page has one."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, data, header = 8, b"", b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        chunk = png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            data += chunk
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0, "an unexpected PNG layout"
    size = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(data)
    stride = width * size
    previous = bytearray(stride)
    seen: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            corner = previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        previous = line
        seen.update(bytes(line[i : i + size]) for i in range(0, stride, size * 7))
        if len(seen) >= enough:
            return len(seen)
    return len(seen)


class Console:
    """The browser on the console, keeping a screenshot of every page it looks at."""

    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)
        self.kept: list[Path] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def find(self, css: str) -> object:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The text of the element, once the page showing it has loaded."""
        wait = WebDriverWait(self.driver, 60, ignored_exceptions=[StaleElementReferenceException])
        return str(wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css).text))

    def submit(self, css: str, then: str) -> None:
        """Click a button that leads to another page, and wait for ``then`` on that page."""
        before = self.driver.find_element(By.TAG_NAME, "html")
        self.click(css)
        WebDriverWait(self.driver, 60).until(staleness_of(before))
        self.text(then)

    def ready(self, css: str) -> WebElement:
        """The element, once it is shown and enabled (a field appears when its radio is set)."""
        wait = WebDriverWait(self.driver, 60, ignored_exceptions=[StaleElementReferenceException])
        found: WebElement = wait.until(element_to_be_clickable((By.CSS_SELECTOR, css)))
        return found

    def fill(self, css: str, value: str) -> None:
        field = self.ready(css)
        field.clear()
        field.send_keys(value)

    def click(self, css: str) -> None:
        self.ready(css).click()

    def shot(self, name: str) -> Path:
        """Keep the page as ``<n>-<name>.png`` and check that it is not blank."""
        path = self.shots / f"{len(self.kept) + 1:02d}-{name}.png"
        png = self.driver.get_screenshot_as_png()
        path.write_bytes(png)
        assert distinct_colours(png) >= 16, f"the screenshot {path.name} is blank"
        self.kept.append(path)
        return path


def test_an_administrator_works_through_the_console_in_chromium(
    kafka_bootstrap: str, browser: WebDriver, receiver: Receiver, tmp_path: Path
) -> None:
    settings = unique_settings(kafka_bootstrap)
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    admin = AdminProcess(settings, tmp_path)
    kafka = HookstreamClient(kafka_bootstrap, settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        admin.wait_ready()
        console = Console(browser, admin.url, tmp_path / "screenshots")
        _walk_through(console, kafka, receiver)
    finally:
        kafka.close()
        admin.stop()
        pipeline.stop()
    assert len(console.kept) == 9
    keep = ROOT / "build" / "console-screenshots"
    if keep.parent.is_dir():  # a CI workspace: leave them beside the other build outputs
        shutil.copytree(console.shots, keep, dirs_exist_ok=True)


def _walk_through(console: Console, kafka: HookstreamClient, receiver: Receiver) -> None:
    path = f"/console-{uuid.uuid4().hex[:8]}"
    console.open("/console/webhooks")
    assert console.driver.current_url.endswith("/console/login")  # not signed in yet
    console.shot("sign-in")
    console.fill("#token", TOKEN)
    console.submit("#sign-in", "#new-webhook")
    assert console.driver.current_url.endswith("/console/webhooks")
    console.shot("webhooks-empty")

    console.submit("#new-webhook", "#save")
    console.fill("#name", "Item updates")
    console.fill("#payload_url", receiver.url(path))
    console.click('input[name=triggers][value="/items/update"]')
    console.click("#auth_kind_header")
    console.fill("#auth_headers", "Content-Type: text/plain")
    console.submit("#save", "#error-auth")
    assert "Content-Type" in console.text("#error-auth")  # next to the authentication fields
    console.driver.execute_script("arguments[0].scrollIntoView()", console.find("#error-auth"))
    console.shot("form-refused")

    console.fill("#auth_headers", "X-Api-Key: k-123")
    console.submit("#save", "#secret")
    secret = console.text("#secret")
    assert secret.startswith("whsec_")
    console.shot("secret-shown-once")
    console.submit("#continue", "#state")
    webhook_url = console.driver.current_url
    assert console.text("#state") == "active"

    event = make_event("items", "update", "i-" + uuid.uuid4().hex[:6], title="Hello")
    kafka.publish_event(event)
    wait_until(lambda: receiver.on(path), 60, "the receiver to get the delivery")
    assert receiver.on(path)[0].headers["x-api-key"] == "k-123"

    def listed() -> bool:
        console.driver.get(webhook_url)
        return bool(console.driver.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr"))

    wait_until(listed, 60, "the console to list the delivery", step_s=0.5)
    console.shot("notification-status")

    console.submit("#deliveries tbody tr a", "#outcome")
    assert console.text("#outcome") == "delivered"
    assert "200" in console.text("#attempts") and "ok" in console.text("#attempts")
    assert f'"id": "{event.resource_id}"' in console.text("#payload")
    assert '"Hello"' in console.text("#payload")  # pretty-printed JSON
    console.shot("delivery")

    console.submit("#redeliver", ".notice")
    assert "queued to be sent again" in console.text(".notice")
    wait_until(lambda: len(receiver.on(path)) >= 2, 60, "the redelivery to arrive")
    console.shot("redelivered")

    console.driver.get(webhook_url)
    console.fill("#reason", "receiver moved")
    console.submit("#deactivate", "#state")
    assert console.text("#state") == "deactivated"
    assert "receiver moved" in console.text("#deactivated-reason")
    console.shot("deactivated")

    console.open("/console/settings")
    assert "1 to 5" in console.text("table")
    console.shot("settings")
