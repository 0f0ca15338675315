"""Every response carries the browser protections (nosniff, no referrer, no framing, a Content-Security-Policy the
console runs under, HSTS when configured), and only configured origins may call the API from another site."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from console.routes import STATIC_DIR
from tests.helpers import Client

ALLOWED = "https://app.lienthong.example"
OTHER = "https://evil.example"


def _assert_protected(response: httpx.Response) -> str:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy
    return policy


async def test_json_problem_and_console_responses_all_carry_the_headers(client: Client) -> None:
    json_answer = await client.get("/health/live")
    unauthenticated = await client.get("/me")
    no_route = await client.get("/no/such/route")
    console_page = await client.get("/console/doctor/")
    script = await client.get("/console/common/api.js")

    assert json_answer.status_code == 200
    assert json_answer.headers["content-type"].startswith("application/json")
    for problem in (unauthenticated, no_route):
        assert problem.status_code in (401, 404)
        assert problem.headers["content-type"].startswith("application/problem+json")
    assert console_page.status_code == 200
    assert console_page.headers["content-type"].startswith("text/html")
    assert script.status_code == 200
    for response in (json_answer, unauthenticated, no_route, console_page, script):
        policy = _assert_protected(response)
        assert "'unsafe-inline'" not in policy  # the console's own inline script is allowed by its hash only
        assert "strict-transport-security" not in response.headers  # demo over plain HTTP: never pin HTTPS


def _inline_scripts(page: Path) -> list[str]:
    return re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.read_text(), re.DOTALL)


async def test_the_console_pages_load_only_what_their_policy_allows(client: Client) -> None:
    """Statically: every script of every console page is same-origin, or inline with its hash in the policy, and no
    page or module styles an element inline or reaches another host."""
    policy = (await client.get("/console/")).headers["content-security-policy"]
    script_sources = next(d for d in policy.split("; ") if d.startswith("script-src")).split()[1:]
    pages = sorted(STATIC_DIR.rglob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text()
        for src in re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html):
            assert urlsplit(src).netloc == "", f"{page.name} loads a script from another host: {src}"
        for body in _inline_scripts(page):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_sources, f"an inline script of {page} is not allowed by the policy"
        assert not re.search(r"\sstyle=|<style", html), f"{page} has inline style"
    for module in sorted(STATIC_DIR.rglob("*.js")):
        code = module.read_text()
        assert not re.search(r"setAttribute\(\s*[\"']style|\beval\(|new Function|setTimeout\(\s*[\"'`]",
                             code), f"{module} does something the policy forbids"
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", code), f"{module} names another host"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.usefixtures("demo")
async def test_chromium_reports_no_policy_violation_on_the_console_pages(live_server: str) -> None:
    from playwright.async_api import async_playwright  # only where chromium exists

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                                   args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(base_url=live_server)
            page.set_default_timeout(10_000)
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            await page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                                       "console.error('Content Security Policy: ' + e.violatedDirective))")
            await page.goto("/console/")
            # the page's inline module script builds the language switch: it ran
            await page.locator("#language-select").wait_for()
            for path in ("/console/doctor/", "/console/pharmacy/"):
                await page.goto(path)
                await page.wait_for_load_state("networkidle")
        finally:
            await browser.close()
    assert violations == []


async def test_hsts_is_sent_when_configured(settings: Settings) -> None:
    async with AsyncTestClient(create_app(replace(settings, hsts_max_age_s=31_536_000))) as client:
        response = await client.get("/health/live")
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"}


async def _cors_client(settings: Settings, *origins: str) -> AsyncTestClient[Litestar]:
    return AsyncTestClient(create_app(replace(settings, cors_origins=origins)))


async def test_a_configured_origin_may_call_the_api_and_no_other(settings: Settings) -> None:
    async with await _cors_client(settings, ALLOWED) as client:
        allowed = await client.options("/admin/accounts", headers=_preflight(ALLOWED))  # a guarded controller too
        refused = await client.options("/admin/accounts", headers=_preflight(OTHER))
        read_allowed = await client.get("/health/live", headers={"Origin": ALLOWED})
        read_other = await client.get("/health/live", headers={"Origin": OTHER})

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= set(allowed.headers["access-control-allow-headers"].split(", "))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/problems/cors-origin-not-allowed"
    assert "access-control-allow-origin" not in refused.headers
    _assert_protected(refused)
    assert read_allowed.headers["access-control-allow-origin"] == ALLOWED
    assert read_allowed.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in read_other.headers


async def test_by_default_no_other_site_may_call_the_api(client: Client) -> None:
    refused = await client.options("/me", headers=_preflight("http://127.0.0.1:9999", "GET"))
    cross_site_read = await client.get("/health/live", headers={"Origin": OTHER})

    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in cross_site_read.headers
