"""PH-10: the same prescription at two pharmacies at once can never hand out more than was prescribed."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from tests.eprescription.prescribing import staff_headers
from tests.pharmacy_link.dispensing_helpers import key, other_pharmacist, sale, signed_prescription

pytestmark = pytest.mark.usefixtures("demo")


async def test_a_hundred_concurrent_dispenses_from_two_pharmacies_sell_exactly_what_was_prescribed(
        live_server: str, pool: asyncpg.Pool, settings: Settings) -> None:
    async with AsyncTestClient(create_app(settings)) as client:
        rx = await signed_prescription(client, pool, settings)  # line 1: 10 tablets
    hoa = await staff_headers(pool, settings, "ds.hoa")
    _, other = await other_pharmacist(pool, settings)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=live_server, timeout=60, limits=limits) as http:
        results = await asyncio.gather(*(
            http.post(f"/dispensing/prescriptions/{rx['code']}/dispenses", headers={**who, **key()},
                      json=sale((1, 1)))
            for who in [hoa, other] * 50))
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 10 and statuses.count(409) == 90, sorted(set(statuses))
    losers = {r.json()["type"] for r in results if r.status_code == 409}
    assert losers <= {"/problems/quantity-exceeds-remaining", "/problems/prescription-not-dispensable"}
    sold = await pool.fetchval(
        """SELECT sum(l.quantity) FROM dispense_lines l JOIN dispenses d ON d.id = l.dispense_id
           WHERE d.prescription_id = $1 AND d.voided_at IS NULL""", UUID(rx["id"]))
    assert sold == 10
    assert await pool.fetchval("SELECT dispensed_quantity FROM prescription_lines WHERE prescription_id = $1 "
                               "AND position = 1", UUID(rx["id"])) == 10
