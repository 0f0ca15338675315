"""Broken files given to the two bulk importers, the drug catalogue CSV and a pharmacy's stock upload: large files
with a few bad rows in the middle, bytes that are not UTF-8, unterminated quotes, control characters, numbers out of
range and duplicates. Each answer is a problem document naming the row (or item) and column, and nothing of the file
is written: the rows are counted before and after.

tests/eprescription/test_catalogue_import.py and tests/pharmacy_link/test_stock.py cover small files and each kind of
mistake alone; these add size, position and the encodings they do not try.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api.demo import PHARMACY_ID
from api.settings import Settings
from tests.eprescription.prescribing import staff_headers
from tests.helpers import Client
from tests.pharmacy_link.test_stock import generated_drugs

pytestmark = pytest.mark.usefixtures("demo")

HEADER = "inn,strength,dosage_form,route,control_class,registration_number,rx_required\n"
LARGE = 20_000
STOCK = f"/pharmacies/{PHARMACY_ID}/stock"


def catalogue_row(n: int) -> str:
    return f"Thuốc thử {n},{n % 900 + 1} mg,viên nén,oral,none,VD-{70000 + n}-26,true\n"


def large_catalogue(bad: dict[int, str] | None = None) -> str:
    """``LARGE`` good rows (header = row 1, so drug n is row n + 1), with ``bad`` rows put in place by row number."""
    rows = [catalogue_row(n) for n in range(1, LARGE + 1)]
    for row_no, text in (bad or {}).items():
        rows[row_no - 2] = text
    return HEADER + "".join(rows)


@pytest.fixture
async def admin(pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    return await staff_headers(pool, settings, "admin")


@pytest.fixture
async def hoa(pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    """ds.hoa, pharmacist of the demo pharmacy."""
    return await staff_headers(pool, settings, "ds.hoa")


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(drugs, drug sources, catalogue import audit entries): what an import would change."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM drugs), (SELECT count(*) FROM drug_sources),
                  (SELECT count(*) FROM audit_log WHERE action = 'drug_catalogue.imported')""")
    assert row is not None
    return row[0], row[1], row[2]


async def stock_rows(pool: asyncpg.Pool) -> list[tuple[UUID, int, str]]:
    rows = await pool.fetch("SELECT drug_id, quantity, unit FROM pharmacy_stock WHERE pharmacy_id = $1 ORDER BY 1",
                            PHARMACY_ID)
    return [(r[0], r[1], r[2]) for r in rows]


async def _import(client: Client, admin: dict[str, str], body: str | bytes) -> Any:
    return await client.post("/admin/drugs/import", params={"source": "broken-test"}, headers=admin,
                             content=body.encode() if isinstance(body, str) else body)


def _problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"/problems/{kind}", problem
    return problem


# ---------------------------------------------------------------- the drug catalogue


async def test_bad_rows_in_the_middle_of_a_large_catalogue_are_named_and_nothing_is_imported(
        client: Client, admin: dict[str, str], pool: asyncpg.Pool) -> None:
    before = await counts(pool)
    bad = {
        7_001: "Thuốc thử 7000,5 mg,viên nén,oral,sometimes,VD-77000-26,true\n",        # control class
        12_001: "Thuốc\x07 thử 12000,5 mg,viên nén,oral,none,VD-82000-26,true\n",        # a control character
        15_001: "Thuốc thử 15000,5 mg,viên nén,oral,none,VD-85000-26,2\n",             # not a boolean
        18_001: "Thuốc thử khác,5 mg,viên nén,oral,none,VD-70001-26,true\n",           # row 2's registration
    }
    problem = _problem(await _import(client, admin, large_catalogue(bad)), 422, "drug-import-rejected")
    assert (problem["rows"], problem["rejected_rows"]) == (LARGE, 4)
    assert [e["path"] for e in problem["errors"]] == [
        "row[7001].control_class", "row[12001].inn", "row[15001].rx_required", "row[18001]"]
    assert "same drug as row 2" in problem["errors"][3]["message"]
    assert await counts(pool) == before

    # the same file with those rows corrected goes in whole
    report = (await _import(client, admin, large_catalogue())).json()
    assert (report["rows"], report["inserted"]) == (LARGE, LARGE)
    drugs, sources, audits = await counts(pool)
    assert (drugs, sources, audits) == (before[0] + LARGE, before[1] + 1, before[2] + 1)


@pytest.mark.parametrize(("broken", "says"), [
    # one line saved in Windows-1258 (a single byte for "à") inside a UTF-8 file
    (lambda body: body.replace(catalogue_row(5_000).encode(), b"Thu\xe0c 5000,1 mg,vien,oral,none,,\n"),
     "line 5001 has a byte"),
    # a cell whose opening quote is never closed
    (lambda body: body.replace(catalogue_row(9_000).encode(), '"Thuốc thử 9000,1 mg\n'.encode()),
     "Row 9001 is not valid CSV"),
    # the file cut short in the middle of a multi-byte character
    (lambda body: body[:body.index("Thuốc thử 11000,".encode()) + 5], "not UTF-8 text"),
])
async def test_an_unreadable_stretch_in_a_large_catalogue_is_located_and_nothing_is_imported(
        client: Client, admin: dict[str, str], pool: asyncpg.Pool, broken: Any, says: str) -> None:
    before = await counts(pool)
    problem = _problem(await _import(client, admin, broken(large_catalogue().encode())), 422, "drug-file-unreadable")
    assert says in problem["detail"]
    assert problem["errors"] == [{"path": "file", "message": problem["detail"]}]
    assert await counts(pool) == before


async def test_a_catalogue_missing_a_required_column_names_it(client: Client, admin: dict[str, str],
                                                              pool: asyncpg.Pool) -> None:
    before = await counts(pool)
    body = large_catalogue().replace("control_class,", "", 1)  # the header lost a column; the rows did not
    problem = _problem(await _import(client, admin, body), 422, "drug-file-unreadable")
    assert "Missing required column(s): control_class" in problem["detail"]
    assert await counts(pool) == before


# ---------------------------------------------------------------- a pharmacy's stock


async def test_bad_items_in_the_middle_of_a_large_stock_upload_are_named_and_nothing_is_saved(
        client: Client, hoa: dict[str, str], pool: asyncpg.Pool) -> None:
    drugs = await generated_drugs(pool, LARGE)
    before = await stock_rows(pool)
    items: list[dict[str, Any]] = [{"drug_id": str(d), "quantity": i % 40, "unit": "viên"}
                                   for i, (d, _) in enumerate(drugs)]
    items[5_000]["quantity"] = 10_000_001                               # above the limit
    items[9_999]["quantity"] = 2**64                                    # beyond any integer column
    items[12_000] = {"registration_number": drugs[3][1], "quantity": 1}  # item 3's drug again
    items[14_000]["unit"] = "viên\x00"                                  # a NUL, which PostgreSQL text cannot hold
    items[17_000] = {"registration_number": "VD-00000-00", "quantity": 1}  # not in the catalogue
    items[19_999]["quantity"] = 1e3                                     # a float
    problem = _problem(await client.put(STOCK, headers=hoa, json={"items": items}), 422, "stock-upload-rejected")
    assert (problem["items"], problem["rejected_items"]) == (LARGE, 6)
    assert [e["path"] for e in problem["errors"]] == [
        "body.items[5000].quantity", "body.items[9999].quantity", "body.items[12000]", "body.items[14000].unit",
        "body.items[17000].registration_number", "body.items[19999].quantity"]
    assert "items[3]" in problem["errors"][2]["message"]
    assert await stock_rows(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'pharmacy_stock.uploaded'") == 0


async def test_an_item_with_text_that_is_not_utf8_is_named(client: Client, hoa: dict[str, str],
                                                            pool: asyncpg.Pool) -> None:
    before = await stock_rows(pool)
    body = b'{"items": [{"registration_number": "VD-12345-19", "quantity": 1}, {"unit": "vi\xean", "quantity": 1}]}'
    response = await client.put(STOCK, headers={**hoa, "Content-Type": "application/json"}, content=body)
    problem = _problem(response, 422, "stock-upload-rejected")
    assert [e["path"] for e in problem["errors"]] == ["body.items[0].registration_number", "body.items[1]"]
    assert "not UTF-8" in problem["errors"][1]["message"]
    assert await stock_rows(pool) == before


@pytest.mark.parametrize(("body", "says"), [
    ('{"items": []}'.encode("utf-16"), "not valid JSON"),
    (b'{"items": [{"registration_number": "VD-12345-19", "quantity": 1}', "not valid JSON"),  # cut short
    (b'{"items": [{"registration_number": "VD-12345-19", "quantity": NaN}]}', "not valid JSON"),
])
async def test_a_stock_body_that_is_not_json_text_is_400_and_saves_nothing(client: Client, hoa: dict[str, str],
                                                                            pool: asyncpg.Pool, body: bytes,
                                                                            says: str) -> None:
    before = await stock_rows(pool)
    response = await client.put(STOCK, headers={**hoa, "Content-Type": "application/json"}, content=body)
    problem = _problem(response, 400, "validation-error")
    assert says in problem["detail"]
    assert problem["errors"][0]["path"] == "body"
    assert await stock_rows(pool) == before


async def test_a_json_body_that_is_not_utf8_is_a_problem_on_any_endpoint(client: Client) -> None:
    response = await client.post("/auth/otp/request", headers={"Content-Type": "application/json"},
                                 content=b'{"phone": "09123\xe04567"}')
    problem = _problem(response, 400, "validation-error")
    assert problem["errors"][0]["path"] == "body"
