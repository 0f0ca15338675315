"""What the access tests share: the real app in process, called from a chosen client address.

Litestar's test client reports its address as ``testclient``, which is not an IP: per-address rate limits then do
not apply and VNPay (which needs the buyer's IP) cannot be used. These clients speak ASGI to the same app with
``127.0.0.x`` addresses, like a browser on the loopback, in the test's own event loop (Litestar's test client runs
the app in a thread of its own); ``app_running`` runs the app's lifespan (pool, hub) in that loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar


@asynccontextmanager
async def app_running(app: Litestar) -> AsyncIterator[None]:
    async with app.lifespan():
        yield


def client_from(app: Litestar, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client of ``app`` (whose lifespan must be running) whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
