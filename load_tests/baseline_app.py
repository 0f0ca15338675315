"""The no-extra-work baselines the verify benchmark compares with (issue 8), served by the same stack as the API
(Litestar, msgspec, asyncpg, uvicorn) so the ratios measure only what verify adds:

* ``GET /ping``: no database, a constant body.
* ``GET /rx/{code}``: reads the same rows verify reads (one round trip, the same SQL without the audit insert) and
  returns them as they come, with no checks, no signature verification, no authentication.

    uvicorn --factory load_tests.baseline_app:create_app   (DATABASE_URL: the platform's app DSN)

Never part of the product: it exists for benchmarks only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, Response, get
from litestar.datastructures import State

from api import db
from api.settings import load_settings
from pharmacy_link.dispensing_db import _LOAD


@get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@get("/rx/{code:str}")
async def read_row(code: str, state: State) -> Response[Any]:
    pool: asyncpg.Pool = state.pool
    row = await pool.fetchrow(_LOAD, code)
    if row is None:
        return Response({"error": "not found"}, status_code=404)
    values = dict(row)
    values["signed_content"] = values["signed_content"].decode()
    values["signature"] = values["signature"].hex()
    values["public_key"] = values["public_key"].hex()
    return Response(values)


def create_app() -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        settings = load_settings()  # the same variables as the API: same pool, codecs and role
        pool = await db.create_pool(db.DatabaseTarget(os.environ["DATABASE_URL"], "", None), settings)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    return Litestar(route_handlers=[ping, read_row], lifespan=[lifespan], debug=False, logging_config=None)
