"""The web pages (doctor console, pharmacist page) served by the API's own Litestar app as static files: plain ES
modules and CSS, no build step and nothing fetched from a CDN at run time. The pages call the same JSON API as the
mobile app with a bearer token, so every rule about who may do what lives in the API, not here."""

from __future__ import annotations

from pathlib import Path

from litestar import get
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"

# public: the files hold no data; everything they show comes from authenticated API calls
console_assets = create_static_files_router(
    path="/console", directories=[STATIC_DIR], html_mode=True, opt={"public": True}, include_in_schema=False,
    name="console")


@get("/", opt={"public": True}, include_in_schema=False)
async def home() -> Redirect:
    return Redirect("/console/")
