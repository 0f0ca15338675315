"""Browser tests: Debian's chromium, headless, driven by Playwright (which never downloads a browser of its own
here), against the real app served by uvicorn on embedded PostgreSQL with the demo data.

Chromium's fake camera and microphone stand in for the doctor's devices, so getUserMedia and WebRTC run for real.
Screenshots of key screens go to ``artifacts/e2e/``; with ``LIENTHONG_UPDATE_SCREENSHOTS=1`` they are also copied
to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aioice.ice
import av
import pytest

from api.settings import Settings
from load_tests.peers import pattern_frames

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
README_SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    # real WebRTC with a synthetic camera/microphone, no permission prompt, peers on loopback
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it as root)",
                allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

# Assertions wait as long as actions do: 5 s (Playwright's default) is one refresh of the doctor's queue, and on a
# loaded 2-core CI machine a page can take that long to catch up.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Browser, base_url: str, *, language: str = "vi") -> Page:
    """A fresh browser profile (no shared storage) showing the pages in ``language``, in Vietnam's time zone."""
    context = await browser.new_context(
        base_url=base_url, locale="vi-VN" if language == "vi" else "en-GB", timezone_id="Asia/Ho_Chi_Minh",
        viewport={"width": 1280, "height": 900}, permissions=["camera", "microphone"])
    context.set_default_timeout(15_000)
    if language != "vi":
        await context.add_init_script(f"localStorage.setItem('lienthong.language', '{language}')")
    return await context.new_page()


@pytest.fixture
async def page(browser: Browser, console_url: str) -> AsyncIterator[Page]:
    opened = await new_page(browser, console_url)
    try:
        yield opened
    finally:
        await opened.context.close()


@pytest.fixture
def console_url(demo: None, live_server: str) -> Iterator[str]:
    """The whole platform with the demo data (doctors bs.lan/bs.minh, pharmacist ds.hoa) on a fresh database."""
    yield live_server


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests with an aiortc peer: aioice skips 127.0.0.1 when gathering, and on this machine the browser and
    the patient's app meet there."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])


@pytest.fixture(scope="session")
def frames() -> list[av.VideoFrame]:
    """The patient's camera: a generated 640×480 pattern."""
    return pattern_frames()


@pytest.fixture
def e2e_settings(settings: Settings) -> Settings:
    return settings


async def screenshot(page: Page, name: str) -> Path:
    """Saves the page as ``artifacts/e2e/<name>.png`` (and in docs/screenshots when asked to refresh them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("LIENTHONG_UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / path.name)
    return path
