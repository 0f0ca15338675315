"""The console's entry page is served by the app itself, in Vietnamese by default and English on request, with
nothing loaded from outside the server."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Browser, Page

from tests.e2e.conftest import new_page


async def test_home_redirects_to_console_in_vietnamese_with_only_local_assets(page: Page, console_url: str) -> None:
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    await page.goto("/")
    assert urlsplit(page.url).path == "/console/"
    assert await page.locator("html").get_attribute("lang") == "vi"
    assert await page.get_by_role("link", name="Bàn làm việc của bác sĩ").is_visible()
    assert hosts == {urlsplit(console_url).netloc}


async def test_english_is_a_remembered_choice(browser: Browser, console_url: str) -> None:
    page = await new_page(browser, console_url)
    try:
        await page.goto("/console/")
        async with page.expect_navigation():  # choosing a language reloads the page
            await page.select_option("#language-select", "en")
        assert await page.get_by_role("link", name="Doctor console").is_visible()
        await page.goto("/console/")
        assert await page.locator("html").get_attribute("lang") == "en"
    finally:
        await page.context.close()
