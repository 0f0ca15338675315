"""Liveness and readiness probes (anyone)."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec

from api.deps import Pool
from api.errors import PROBLEM_JSON, Problem, problem_type


class Health(msgspec.Struct):
    status: str


@get("/health/live", opt={"public": True}, tags=["health"], summary="The process is up (anyone)")
async def live() -> Health:
    return Health(status="ok")


@get("/health/ready", opt={"public": True}, tags=["health"],
     responses={200: ResponseSpec(Health, generate_examples=False, description="The database answers"),
                503: ResponseSpec(Problem, media_type=PROBLEM_JSON, generate_examples=False,
                                  description="The database did not answer")},
     summary="The database answers within 2 s (anyone)")
async def ready(pool: Pool) -> Response[bytes]:
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        body = Problem(type=problem_type("database-unavailable"), title="Not ready", status=503,
                       detail="The database did not answer.")
        return Response(msgspec.json.encode(body), status_code=503, media_type=PROBLEM_JSON,
                        headers={"Retry-After": "2"})
    return Response(msgspec.json.encode(Health(status="ready")), media_type="application/json")
