"""Published stock: bulk upload with every bad item reported and nothing saved, the pharmacy's own view, and the
decrement dispensing applies (never below zero, in the caller's transaction)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api.demo import PHARMACY_ID
from pharmacy_link.stock import MAX_ITEMS, consume_stock
from tests.helpers import Client
from tests.pharmacy_link.conftest import MakePharmacy, PharmacistOf

STOCK = f"/pharmacies/{PHARMACY_ID}/stock"


async def generated_drugs(pool: asyncpg.Pool, count: int) -> list[tuple[UUID, str]]:
    """``count`` catalogue drugs with registration numbers (the seed has none), as (id, registration number)."""
    rows = await pool.fetch(
        """INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, registration_number, source_code,
                              source_ref)
           SELECT 'Thuốc thử ' || n, ARRAY['thuoc thu ' || n], '10 mg', 'viên nén', 'oral',
                  'VD-' || (90000 + n) || '-26', 'lienthong-demo-seed', 'tests/pharmacy_link/test_stock.py'
           FROM generate_series(1, $1) AS n RETURNING id, registration_number""", count)
    return [(r["id"], r["registration_number"]) for r in rows]


async def quantities(pool: asyncpg.Pool, pharmacy_id: UUID = PHARMACY_ID) -> dict[UUID, int]:
    rows = await pool.fetch("SELECT drug_id, quantity FROM pharmacy_stock WHERE pharmacy_id = $1", pharmacy_id)
    return {r["drug_id"]: r["quantity"] for r in rows}


async def test_upload_sets_quantities_by_id_or_registration_number_and_the_next_upload_replaces_them(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool, make_pharmacy: MakePharmacy,
        pharmacist_of: PharmacistOf) -> None:
    pharmacy_id = await make_pharmacy()
    headers = await pharmacist_of(pharmacy_id)
    (a, _), (b, b_number), (c, _) = await generated_drugs(pool, 3)
    path = f"/pharmacies/{pharmacy_id}/stock"
    first = await client.put(path, headers=headers, json={"items": [
        {"drug_id": str(a), "quantity": 30, "unit": "viên"},
        {"registration_number": b_number.lower(), "quantity": 12},
        {"drug_id": str(c), "quantity": 5}]})
    assert first.status_code == 200, first.text
    assert first.json() == {"items": 3, "inserted": 3, "updated": 0}
    second = await client.put(path, headers=headers, json={"items": [
        {"drug_id": str(a), "quantity": 0}, {"registration_number": b_number, "quantity": 40}]})
    assert second.json() == {"items": 2, "inserted": 0, "updated": 2}
    assert await quantities(pool, pharmacy_id) == {a: 0, b: 40, c: 5}  # c was not listed: it keeps its quantity
    listed = await client.get(path, headers=headers)
    assert listed.json()["total"] == 3
    assert {i["registration_number"]: i["quantity"] for i in listed.json()["items"]}[b_number] == 40
    audited = await pool.fetch("SELECT details FROM audit_log WHERE action = 'pharmacy_stock.uploaded' ORDER BY id")
    assert [a["details"] for a in audited] == [{"items": 3, "inserted": 3, "updated": 0},
                                               {"items": 2, "inserted": 0, "updated": 2}]


async def test_upload_with_bad_items_is_422_naming_each_item_and_saves_nothing(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool) -> None:
    (a, a_number), (b, _) = await generated_drugs(pool, 2)
    before = await quantities(pool)
    items: list[Any] = [
        {"drug_id": str(a), "quantity": 5},
        {"drug_id": str(uuid.uuid4()), "quantity": 1},
        {"registration_number": "VD-1-00", "quantity": 1},
        {"drug_id": str(b), "quantity": -3},
        {"drug_id": str(b), "quantity": "12"},
        {"drug_id": str(b), "quantity": 1.5},
        {"registration_number": a_number, "quantity": 9},
        {"quantity": 1},
        {"drug_id": str(b), "registration_number": a_number, "quantity": 1},
        {"drug_id": str(b), "quantity": 1, "price": 2000},
        42,
        {"drug_id": str(b)},
        {"drug_id": "not-a-uuid", "quantity": 1},
    ]
    response = await client.put(STOCK, headers=hoa, json={"items": items})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/stock-upload-rejected"
    assert (problem["items"], problem["rejected_items"]) == (13, 12)
    assert [e["path"] for e in problem["errors"]] == [
        "body.items[1].drug_id", "body.items[2].registration_number", "body.items[3].quantity",
        "body.items[4].quantity", "body.items[5].quantity", "body.items[6]", "body.items[7]", "body.items[8]",
        "body.items[9].price", "body.items[10]", "body.items[11].quantity", "body.items[12].drug_id"]
    assert "items[0]" in problem["errors"][5]["message"]  # the duplicate names the first listing
    assert await quantities(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'pharmacy_stock.uploaded'") == 0


@pytest.mark.parametrize(("body", "status", "path"), [
    (b"{\"items\": [", 400, "body"),
    (b"{}", 422, "body.items"),
    (b"{\"items\": [], \"rows\": []}", 422, "body.rows"),
    (b"{\"items\": 5}", 422, "body.items"),
])
async def test_unreadable_or_misshapen_body_is_refused_as_a_whole(client: Client, hoa: dict[str, str], body: bytes,
                                                                  status: int, path: str) -> None:
    response = await client.put(STOCK, headers={**hoa, "Content-Type": "application/json"}, content=body)
    assert response.status_code == status, response.text
    assert response.json()["type"] == "/problems/validation-error"
    assert response.json()["errors"][0]["path"] == path


async def test_more_than_the_item_limit_is_422(client: Client, hoa: dict[str, str]) -> None:
    response = await client.put(STOCK, headers=hoa, json={"items": [{"quantity": 0}] * (MAX_ITEMS + 1)})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "body.items"


async def test_twenty_thousand_items_are_saved_in_one_call(client: Client, hoa: dict[str, str],
                                                           pool: asyncpg.Pool) -> None:
    drugs = await generated_drugs(pool, MAX_ITEMS)
    items = [{"drug_id": str(d), "quantity": i % 50} if i % 2 else {"registration_number": n, "quantity": i % 50}
             for i, (d, n) in enumerate(drugs)]
    response = await client.put(STOCK, headers=hoa, json={"items": items})
    assert response.status_code == 200, response.text[:500]
    assert response.json()["items"] == MAX_ITEMS
    stored = await quantities(pool)
    assert all(stored[d] == i % 50 for i, (d, _) in enumerate(drugs))


async def test_stock_is_read_by_its_pharmacy_and_admins_and_published_only_by_its_pharmacy(
        client: Client, hoa: dict[str, str], admin: dict[str, str], doctor: dict[str, str]) -> None:
    assert (await client.get(STOCK, headers=hoa)).status_code == 200
    assert (await client.get(STOCK, headers=admin)).status_code == 200
    assert (await client.put(STOCK, headers=admin, json={"items": []})).status_code == 403
    assert (await client.get(STOCK, headers=doctor)).status_code == 403
    assert (await client.get(STOCK)).status_code == 401
    assert (await client.get(f"/pharmacies/{uuid.uuid4()}/stock", headers=admin)).status_code == 404


async def test_demo_pharmacy_publishes_stock_of_uncontrolled_drugs_only(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool) -> None:
    page = (await client.get(STOCK, headers=hoa, params={"limit": 5000})).json()
    assert page["total"] > 20
    controlled = await pool.fetchval(
        """SELECT count(*) FROM pharmacy_stock s JOIN drugs d ON d.id = s.drug_id
           WHERE s.pharmacy_id = $1 AND d.control_class <> 'none'""", PHARMACY_ID)
    assert controlled == 0


# ---------------------------------------------------------------------------------------------------- consume_stock

async def test_consume_stock_takes_sales_off_never_below_zero_and_skips_drugs_without_stock(
        pool: asyncpg.Pool, make_pharmacy: MakePharmacy) -> None:
    pharmacy_id = await make_pharmacy()
    (a, _), (b, _), (c, _) = await generated_drugs(pool, 3)
    await pool.executemany("INSERT INTO pharmacy_stock (pharmacy_id, drug_id, quantity) VALUES ($1, $2, $3)",
                           [(pharmacy_id, a, 10), (pharmacy_id, b, 3)])
    async with pool.acquire() as conn, conn.transaction():
        await consume_stock(conn, pharmacy_id, [(a, 4), (b, 5), (c, 2), (a, 1)])
    assert await quantities(pool, pharmacy_id) == {a: 5, b: 0}


async def test_consume_stock_belongs_to_the_callers_transaction(pool: asyncpg.Pool,
                                                                make_pharmacy: MakePharmacy) -> None:
    pharmacy_id = await make_pharmacy()
    ((a, _),) = await generated_drugs(pool, 1)
    await pool.execute("INSERT INTO pharmacy_stock (pharmacy_id, drug_id, quantity) VALUES ($1, $2, 10)",
                       pharmacy_id, a)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await consume_stock(conn, pharmacy_id, [(a, 4)])
                raise RuntimeError("the sale failed after the stock was taken")
    assert await quantities(pool, pharmacy_id) == {a: 10}
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ValueError, match="negative"):
            await consume_stock(conn, pharmacy_id, [(a, -1)])


async def test_concurrent_sales_listing_drugs_in_either_order_neither_deadlock_nor_lose_a_unit(
        pool: asyncpg.Pool, make_pharmacy: MakePharmacy) -> None:
    pharmacy_id = await make_pharmacy()
    (a, _), (b, _) = await generated_drugs(pool, 2)
    await pool.executemany("INSERT INTO pharmacy_stock (pharmacy_id, drug_id, quantity) VALUES ($1, $2, 100)",
                           [(pharmacy_id, a), (pharmacy_id, b)])

    async def sale(first: UUID, second: UUID) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await consume_stock(conn, pharmacy_id, [(first, 1), (second, 1)])
            await asyncio.sleep(0.01)  # hold the locks while the other sales queue up

    await asyncio.gather(*(sale(a, b) if i % 2 else sale(b, a) for i in range(16)))
    assert await quantities(pool, pharmacy_id) == {a: 84, b: 84}
