"""Administrators load a larger catalogue from CSV: every row or none, with counts, row numbers and reasons, upserts
on re-import, and clear words (never a traceback) for files that are not what they should be."""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from api.audit import AuditContext
from api.settings import Settings
from eprescription.catalogue_import import MAX_ROWS, import_drugs
from eprescription.errors import DrugFileUnreadable
from tests.api.test_cli import run_cli
from tests.conftest import server_env
from tests.eprescription.conftest import headers_for
from tests.helpers import Client

GOOD = """inn,strength,dosage_form,route,atc_code,control_class,registration_number,trade_names,rx_required,source
Kẽm gluconat,70 mg,siro,oral,A12CB02,none,VD-11111-26,Kẽm Đức Thịnh,false,Test list 2026 p.1
Paracetamol,650 mg,viên nén giải phóng kéo dài,oral,N02BE01,none,VD-22222-26,Parakit ER,true,
Codein + paracetamol,30 mg/500 mg,viên nén,uống,N02AJ06,narcotic,VN-33333-26,Codalgin|Co-codamol,,
"""
CTX = AuditContext(None, "system", None, "test", None)


async def _import(client: Client, headers: dict[str, str], body: str | bytes, source: str = "test-list",
                  **params: Any) -> Any:
    return await client.post("/admin/drugs/import", params={"source": source, **params}, headers=headers,
                             content=body.encode() if isinstance(body, str) else body)


async def _count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM drugs")
    return count


async def test_good_file_imports_every_row_with_counts_and_is_searchable(client: Client, admin: dict[str, str],
                                                                        doctor: dict[str, str],
                                                                        pool: asyncpg.Pool) -> None:
    before = await _count(pool)
    response = await _import(client, admin, GOOD)
    assert response.status_code == 200, response.text
    assert response.json() == {"source": "test-list", "demo_data": False, "rows": 3, "inserted": 3, "updated": 0,
                               "unchanged": 0}
    assert await _count(pool) == before + 3
    found = (await client.get("/drugs", params={"q": "kem duc thinh"}, headers=doctor)).json()
    zinc = found["items"][0]
    assert (zinc["inn"], zinc["registration_number"], zinc["rx_required"]) == ("Kẽm gluconat", "VD-11111-26", False)
    assert (zinc["source"], zinc["source_ref"], zinc["demo_data"]) == ("test-list", "Test list 2026 p.1", False)
    assert found["demo_data"] is False
    by_number = (await client.get("/drugs", params={"q": "vn-33333-26"}, headers=doctor)).json()["items"][0]
    assert (by_number["route"], by_number["control_class"], by_number["prescription_type"]) == ("oral", "narcotic", "n")
    assert by_number["ingredients"] == ["codein", "paracetamol"]  # from the INN, folded as interaction rules expect
    assert by_number["trade_names"] == ["Codalgin", "Co-codamol"]
    assert by_number["source_ref"] == "test-list.csv row 4"  # no source column value: the file and row
    audited = await pool.fetchval("SELECT details FROM audit_log WHERE action = 'drug_catalogue.imported'")
    assert (audited["file"], audited["inserted"]) == ("test-list.csv", 3)


async def test_reimport_upserts_in_place_and_counts_what_changed(client: Client, admin: dict[str, str],
                                                                 pool: asyncpg.Pool) -> None:
    assert (await _import(client, admin, GOOD)).status_code == 200
    ids = {r["registration_number"]: r["id"]
           for r in await pool.fetch("SELECT registration_number, id FROM drugs WHERE source_code = 'test-list'")}
    again = (await _import(client, admin, GOOD)).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 3)
    changed = GOOD.replace("Parakit ER", "Parakit Retard") + "Loratadin,5 mg/5 ml,siro,oral,R06AX13,none,,,,\n"
    report = (await _import(client, admin, changed)).json()
    assert (report["rows"], report["inserted"], report["updated"], report["unchanged"]) == (4, 1, 1, 2)
    after = {r["registration_number"]: r["id"]
             for r in await pool.fetch("SELECT registration_number, id FROM drugs WHERE source_code = 'test-list'")}
    assert {k: v for k, v in after.items() if k} == ids  # same drugs, same ids: prescriptions keep pointing at them
    names = await pool.fetchval("SELECT trade_names FROM drugs WHERE registration_number = 'VD-22222-26'")
    assert names == ["Parakit Retard"]


async def test_reimporting_a_seed_drug_without_registration_number_updates_it(client: Client,
                                                                              admin: dict[str, str],
                                                                              pool: asyncpg.Pool) -> None:
    before = await _count(pool)
    row = "inn,strength,dosage_form,route,control_class,atc_code\nParacetamol, 500  MG ,Viên nén,oral,none,N02BE01\n"
    assert (await _import(client, admin, row, source="lienthong-demo-seed", demo="true")).json()["updated"] == 1
    assert await _count(pool) == before  # the key folds case, accents and spacing


async def test_one_bad_row_imports_nothing_and_names_the_row(client: Client, admin: dict[str, str],
                                                             pool: asyncpg.Pool) -> None:
    before = await _count(pool)
    bad = GOOD.replace("N02BE01", "N2BE01")
    response = await _import(client, admin, bad)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/drug-import-rejected"
    assert (problem["rows"], problem["rejected_rows"]) == (3, 1)
    assert problem["errors"] == [{"path": "row[3].atc_code", "message":
                                  "'N2BE01' is not an ATC code (e.g. N02BE01, or a group such as C09AA)"}]
    assert "Nothing was imported" in problem["detail"]
    assert await _count(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM drug_sources WHERE code = 'test-list'") == 0


async def test_every_problem_is_reported_at_once(client: Client, admin: dict[str, str]) -> None:
    body = (GOOD
            + ",10 mg,viên nén,oral,,none,,,,\n"                        # row 5: no INN
            + "Diazepam,5 mg,viên nén,oral,,sometimes,,,maybe,\n"       # row 6: control class and flag
            + "Kẽm gluconat,70 mg,siro,oral,,none,vd-11111-26,,,\n"     # row 7: same registration as row 2
            + "Diazepam,5 mg,viên nén\n"                                # row 8: too few fields
            + "Cefixim,100 mg,gói,by mouth,J01DD08,none,,,,\n")         # row 9: unknown route
    problem = (await _import(client, admin, body)).json()
    assert problem["rejected_rows"] == 5
    paths = [e["path"] for e in problem["errors"]]
    assert paths == ["row[5].inn", "row[6].control_class", "row[6].rx_required", "row[7]", "row[8]",
                     "row[9].route"]
    messages = {e["path"]: e["message"] for e in problem["errors"]}
    assert messages["row[5].inn"] == "is required"
    assert "'sometimes' is not one of" in messages["row[6].control_class"]
    assert "same drug as row 2" in messages["row[7]"]
    assert messages["row[8]"] == "has 3 fields; the header has 10"


async def test_semicolons_vietnamese_words_and_a_bom_are_understood(client: Client, admin: dict[str, str],
                                                                    pool: asyncpg.Pool) -> None:
    body = ("\ufeffINN;Strength;Dosage form;Route;Control class;Rx required;Weight based dosing\n"
            "Meloxicam;7,5 mg;viên nang;Uống;thường;có;không\n"
            "Diazepam;10 mg;ống tiêm;Tiêm bắp;Hướng thần;có;không\n")
    response = await _import(client, admin, body)
    assert response.json()["inserted"] == 2, response.text
    rows = await pool.fetch("SELECT route, control_class FROM drugs WHERE source_code = 'test-list' ORDER BY inn")
    assert [tuple(r) for r in rows] == [("injection", "psychotropic"), ("oral", "none")]


@pytest.mark.parametrize(("body", "says"), [
    (b"", "The file is empty"),
    (b"inn,strength,dosage_form,route,control_class\n", "no drug rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
    (b"PK\x03\x04\x14\x00\x06\x00", "spreadsheet workbook (.xlsx)"),
    ("inn,strength\nParacetamol,500 mg\n".encode("utf-16"), "NUL bytes"),
    (unicodedata.normalize("NFD", "inn,strength,dosage_form,route,control_class\nKẽm,1 g,gói,oral,none\n")
     .encode("cp1258"), "not UTF-8 text"),  # Windows' Vietnamese code page
    (b"inn,strength,form,route,control_class\nA,1,B,oral,none\n", "Unknown column(s) 'form'"),
    (b"inn,strength,dosage_form,route\nA,1,B,oral\n", "Missing required column(s): control_class"),
    (b'inn,strength,dosage_form,route,control_class\n"A"x,1,B,oral,none\n', "Row 2 is not valid CSV"),
])
async def test_unreadable_files_get_a_clear_problem(client: Client, admin: dict[str, str], body: bytes,
                                                    says: str) -> None:
    response = await _import(client, admin, body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/drug-file-unreadable"
    assert says in problem["detail"]


async def test_more_rows_than_the_limit_are_refused_before_any_work(pool: asyncpg.Pool) -> None:
    body = "inn,strength,dosage_form,route,control_class\n" + "A,1 mg,B,oral,none\n" * (MAX_ROWS + 1)
    with pytest.raises(DrugFileUnreadable, match=f"more than {MAX_ROWS} drug rows"):
        await import_drugs(pool, body.encode(), source="big", file_label="big.csv", demo_data=False, ctx=CTX)


async def test_importing_real_data_into_the_demo_source_is_a_conflict(client: Client, admin: dict[str, str]) -> None:
    response = await _import(client, admin, GOOD, source="lienthong-demo-seed")
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/drug-source-conflict"


async def test_two_simultaneous_imports_of_one_file_add_its_drugs_once(pool: asyncpg.Pool) -> None:
    before = await _count(pool)
    reports = await asyncio.gather(*(import_drugs(pool, GOOD.encode(), source="test-list", file_label="t.csv",
                                                  demo_data=False, ctx=CTX) for _ in range(2)))
    assert sorted((r.inserted, r.unchanged) for r in reports) == [(0, 3), (3, 0)]
    assert await _count(pool) == before + 3


async def test_only_admins_may_import(client: Client, settings: Settings) -> None:
    for role in ("doctor", "pharmacist", "patient"):
        response = await _import(client, headers_for(settings, role), GOOD)
        assert response.status_code == 403, role
    assert (await _import(client, {}, GOOD)).status_code == 401


# ---------------------------------------------------------------- the command line

async def test_cli_imports_a_file_with_progress_and_a_summary(settings: Settings, tmp_path: Path,
                                                              pool: asyncpg.Pool) -> None:
    path = tmp_path / "Danh mục thuốc 2026.csv"
    path.write_text(GOOD, encoding="utf-8")
    code, out, err = await run_cli(server_env(settings), "import-drugs", str(path))
    assert code == 0, out + err
    assert "as source 'danh-muc-thuoc-2026': 3 rows accepted (3 new, 0 updated, 0 unchanged), 0 rejected" in out
    assert "saving" in err and "3/3 rows" in err  # the progress bar, on stderr
    assert await pool.fetchval("SELECT count(*) FROM drugs WHERE source_code = 'danh-muc-thuoc-2026'") == 3


async def test_cli_rejects_a_bad_file_listing_rows_and_reasons(settings: Settings, tmp_path: Path,
                                                               pool: asyncpg.Pool) -> None:
    before = await _count(pool)
    path = tmp_path / "drugs.csv"
    path.write_text(GOOD.replace("narcotic", "narcotics").replace("VD-22222-26", "VD_22222_26"), encoding="utf-8")
    code, out, err = await run_cli(server_env(settings), "import-drugs", str(path), "--source", "dav-test")
    assert code == 2
    assert "Import rejected, nothing was imported: 2 of 3 rows have problems" in out
    assert "row 3, registration_number: 'VD_22222_26' is not a registration number" in out
    assert "row 4, control_class: 'narcotics' is not one of" in out
    assert "Traceback" not in out + err
    assert await _count(pool) == before


@pytest.mark.parametrize("kind", ["garbled", "huge", "missing"])
async def test_cli_explains_files_it_cannot_read_without_a_traceback(settings: Settings, tmp_path: Path,
                                                                     kind: str) -> None:
    path = tmp_path / f"{kind}.csv"
    if kind == "garbled":
        path.write_bytes(bytes(range(1, 256)) * 40)  # no NUL, not UTF-8
    elif kind == "huge":
        with path.open("wb") as f:
            f.truncate(65 * 1024 * 1024 + 1)  # sparse: costs no disk
    code, out, err = await run_cli(server_env(settings), "import-drugs", str(path))
    assert code == 2
    assert "Traceback" not in out + err
    expected = {"garbled": "not UTF-8 text", "huge": "the limit is 64 MiB", "missing": "Cannot read"}[kind]
    assert expected in out


async def test_imported_drug_with_a_salt_name_meets_the_interaction_rules(client: Client, admin: dict[str, str],
                                                                          doctor: dict[str, str]) -> None:
    body = ("inn,strength,dosage_form,route,control_class,registration_number\n"
            "Warfarin natri,5 mg,viên nén,oral,none,VN-44444-26\n")
    assert (await _import(client, admin, body)).json()["inserted"] == 1
    drug = (await client.get("/drugs", params={"q": "VN-44444-26"}, headers=doctor)).json()["items"][0]
    assert drug["ingredients"] == ["warfarin natri"]
    found = (await client.get(f"/drugs/{drug['id']}/interactions", headers=doctor)).json()
    assert {"fluconazol", "metronidazol", "amiodaron", "M01A"} <= {i["other"]["code"] for i in found}
