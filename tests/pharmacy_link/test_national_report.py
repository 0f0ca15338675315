"""Sales reported to the national system (QĐ 808 API-7) through the outbox the worker drains, against the sandbox over
HTTP and a real database. Dispenses are written straight into the database as the dispense transaction writes them."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api import db, worker
from api.demo import PHARMACY_ID
from api.settings import Settings, with_overrides
from eprescription import national_sync
from eprescription.national import NationalClient
from eprescription.national_sandbox import NOT_FOUND, NationalRxSandbox
from pharmacy_link.national_report import (
    CORRECTION_NEEDED,
    MAX_ATTEMPTS,
    WAITING_FOR_PRESCRIPTION,
    enqueue_sale,
    missing_pharmacy_fact,
    sale_report_status,
    send_due_sales,
    withhold_sale,
)
from tests.consultations.factories import make_consultation
from tests.eprescription import conftest as eprescription
from tests.eprescription.factories import RxLine, behind_the_apps_back, drug_id, insert_issued_prescription

pytestmark = pytest.mark.usefixtures("demo")

# the national sandbox and settings pointing at it, as the e-prescription tests have them
national_sandbox = eprescription.national_sandbox
national_settings = eprescription.national_settings

OUTLET_ID = "GPP-79-000123"
PHARMACY_NAME = "Nhà thuốc Hồng Bàng"
PHARMACY_PHONE = "02838551234"
PHARMACY_ADDRESS = "220 Hồng Bàng, Phường 12, Quận 5, TP. Hồ Chí Minh"


@pytest.fixture(autouse=True)
async def registered_pharmacy(pool: asyncpg.Pool) -> None:
    """The demo pharmacy with everything API-7 needs."""
    await pool.execute("UPDATE pharmacies SET name = $2, national_outlet_id = $3, phone = $4, address = $5 "
                       "WHERE id = $1", PHARMACY_ID, PHARMACY_NAME, OUTLET_ID, PHARMACY_PHONE, PHARMACY_ADDRESS)


async def prescription(pool: asyncpg.Pool, settings: Settings, *, at_the_national_system: bool = True,
                       paracetamol: int = 10) -> UUID:
    """An issued prescription of bs.minh (paracetamol 500 mg × ``paracetamol``, loratadin 10 mg × 5), queued for
    API-5 as signing does and, unless told otherwise, accepted by the national system."""
    consultation_id = await make_consultation(pool, doctor_username="bs.minh", patient_phone="+84987654321",
                                              starts_in=timedelta(hours=1))
    rx_id = await insert_issued_prescription(pool, consultation_id, [
        RxLine(await drug_id(pool, "Paracetamol", "500 mg"), quantity=paracetamol),
        RxLine(await drug_id(pool, "Loratadin", "10 mg"), quantity=5, times_per_day=1)])
    content = await eprescription._national_content_from_db(pool, rx_id)
    async with pool.acquire() as conn, conn.transaction():
        await national_sync.enqueue(conn, content, bytes(64))
    if at_the_national_system:
        assert await national_sync.send_due(pool, settings) == 1
    return rx_id


async def substitute_for_paracetamol(pool: asyncpg.Pool) -> UUID:
    """Another paracetamol 500 mg tablet (same ingredient, route and strength: PH-4), with a registration number."""
    found: UUID = await pool.fetchval(
        """INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, atc_code, registration_number,
                              trade_names, source_code, source_ref)
           SELECT inn, ingredients, strength, dosage_form, route, atc_code, 'VD-20999-24', '{Hapacol}', source_code,
                  source_ref
           FROM drugs WHERE id = $1 RETURNING id""", await drug_id(pool, "Paracetamol", "500 mg"))
    return found


async def dispense(pool: asyncpg.Pool, rx_id: UUID, *lines: tuple[int, int, UUID | None]) -> UUID:
    """A sale at the demo pharmacy of (position, quantity, substitute or None) lines, queued for API-7 in its
    transaction."""
    pharmacist = await pool.fetchval("SELECT account_id FROM pharmacists WHERE pharmacy_id = $1 LIMIT 1", PHARMACY_ID)
    async with pool.acquire() as conn, conn.transaction():
        dispense_id: UUID = await conn.fetchval(
            """INSERT INTO dispenses (prescription_id, pharmacy_id, pharmacist_id, idempotency_key, request_hash,
                                      invoice_number, recipient_name, total_vnd, snapshot)
               VALUES ($1, $2, $3, $4, '\\x00', $5, 'Lê Văn Hùng', 0, '{}') RETURNING id""",
            rx_id, PHARMACY_ID, pharmacist, secrets.token_hex(8), f"HD{secrets.token_hex(4)}")
        for position, quantity, substitute in lines:
            await conn.execute(
                """INSERT INTO dispense_lines (dispense_id, position, prescribed_drug_id, drug_id, substituted,
                                               buyer_consent, quantity, lot_number, expiry_date, unit_price_vnd)
                   SELECT $1, $2, l.drug_id, coalesce($4, l.drug_id), $4 IS NOT NULL, $4 IS NOT NULL, $3, 'L2401',
                          current_date + 365, 2000
                   FROM prescription_lines l WHERE l.prescription_id = $5 AND l.position = $2""",
                dispense_id, position, quantity, substitute, rx_id)
        await enqueue_sale(conn, dispense_id)
    return dispense_id


async def void(pool: asyncpg.Pool, dispense_id: UUID) -> bool:
    """What the void transaction does for the national report."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE dispenses SET voided_at = now(), voided_by = pharmacist_id, "
                           "void_reason = 'Nhầm số lượng' WHERE id = $1", dispense_id)
        return await withhold_sale(conn, dispense_id)


async def outbox(pool: asyncpg.Pool, dispense_id: UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM national_sale_outbox WHERE dispense_id = $1", dispense_id)
    assert row is not None
    return row


async def status_of(pool: asyncpg.Pool, dispense_id: UUID) -> tuple[str, int, list[str], bool]:
    async with pool.acquire() as conn:
        status = await sale_report_status(conn, dispense_id)
    assert status is not None
    return status.status, status.attempts, status.errors, status.correction_needed


async def make_due(pool: asyncpg.Pool) -> None:
    """What waiting out the backoff would do."""
    await pool.execute("UPDATE national_sale_outbox SET next_attempt_at = now() WHERE status = 'pending'")


async def eventually(check: Callable[[], Awaitable[object]], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still not true after {timeout_s} s")


async def audit_actions(pool: asyncpg.Pool, dispense_id: UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch(
        """SELECT action, details, actor_account_id, actor_role FROM audit_log WHERE target_id = $1
           AND action LIKE 'dispense.national%' ORDER BY id""", str(dispense_id))
    assert all(r["actor_account_id"] is None and r["actor_role"] == "system" for r in rows)
    return [(r["action"], r["details"]) for r in rows]


# ------------------------------------------------------------------------------------------- what is sent

async def test_sale_is_reported_once_with_the_substitute_and_the_prescribed_codes(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    hapacol = await substitute_for_paracetamol(pool)
    dispense_id = await dispense(pool, rx_id, (1, 4, hapacol), (2, 5, None))

    assert await send_due_sales(pool, national_settings) == 1
    assert await send_due_sales(pool, national_settings) == 0

    [api5] = national_sandbox.prescriptions()
    paracetamol, loratadin = api5.body["thong_tin_don_thuoc"]
    [report] = national_sandbox.sold_reports()
    invoice = await pool.fetchval("SELECT invoice_number FROM dispenses WHERE id = $1", dispense_id)
    assert (report.code, report.app_name) == (api5.code, national_settings.national_rx_app_name)
    assert report.body == {
        "ma_don_thuoc": api5.code,
        "thong_tin_thuoc": [
            {"ma_thuoc_da_ke_don": paracetamol["ma_thuoc"], "ma_thuoc": "VD-20999-24", "biet_duoc": "Paracetamol",
             "ten_thuoc": "Hapacol 500 mg", "don_vi_tinh": "viên", "so_luong": 10, "so_luong_ban": 4,
             "cach_dung": paracetamol["cach_dung"]},
            {"ma_thuoc_da_ke_don": loratadin["ma_thuoc"], "ma_thuoc": loratadin["ma_thuoc"],
             "biet_duoc": "Loratadin", "ten_thuoc": "Clarityne 10 mg", "don_vi_tinh": "viên", "so_luong": 5,
             "so_luong_ban": 5, "cach_dung": loratadin["cach_dung"]}],
        "ma_dinh_danh_co_so_cung_ung_thuoc": OUTLET_ID,
        "ten_co_so_cung_ung_thuoc": PHARMACY_NAME,
        "so_dien_thoai_co_so_cung_ung_thuoc": PHARMACY_PHONE,
        "dia_chi_co_so_cung_ung_thuoc": PHARMACY_ADDRESS,
        "ma_hoa_don": invoice,
    }
    status, attempts, errors, correction = await status_of(pool, dispense_id)
    assert (status, attempts, errors, correction) == ("sent", 1, [], False)
    assert await audit_actions(pool, dispense_id) == [
        ("dispense.national_reported", {"code": api5.code, "invoice": invoice, "attempts": 1})]


async def test_usage_is_cut_to_api7s_shorter_limit(
        pool: asyncpg.Pool, database: db.DatabaseTarget, national_settings: Settings,
        national_sandbox: NationalRxSandbox) -> None:
    consultation_id = await make_consultation(pool, doctor_username="bs.minh", patient_phone="+84987654321")
    rx_id = await insert_issued_prescription(
        pool, consultation_id, [RxLine(await drug_id(pool, "Paracetamol", "500 mg"), quantity=10)])
    await behind_the_apps_back(database, "prescription_lines",
                               "UPDATE prescription_lines SET usage = $2 WHERE prescription_id = $1", rx_id,
                               "Uống sau ăn, không uống khi đói. " * 14)
    async with pool.acquire() as conn, conn.transaction():
        await national_sync.enqueue(conn, await eprescription._national_content_from_db(pool, rx_id), bytes(64))
    await national_sync.send_due(pool, national_settings)
    await dispense(pool, rx_id, (1, 10, None))

    await send_due_sales(pool, national_settings)

    [api5] = national_sandbox.prescriptions()
    [report] = national_sandbox.sold_reports()
    sent_usage = api5.body["thong_tin_don_thuoc"][0]["cach_dung"]
    reported_usage = report.body["thong_tin_thuoc"][0]["cach_dung"]
    assert len(sent_usage) > 200
    assert len(reported_usage) == 200
    assert reported_usage == sent_usage[:199] + "…"


async def test_report_waits_until_the_national_system_holds_the_prescription(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings, at_the_national_system=False)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))

    assert await send_due_sales(pool, national_settings) == 0
    assert await status_of(pool, dispense_id) == ("pending", 0, [WAITING_FOR_PRESCRIPTION], False)

    await national_sync.send_due(pool, national_settings)
    assert await send_due_sales(pool, national_settings) == 1
    assert len(national_sandbox.sold_reports()) == 1
    assert national_sandbox.calls("API-7") == 1


async def test_each_part_of_a_partial_sale_is_its_own_report(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    await dispense(pool, rx_id, (1, 4, None))
    await dispense(pool, rx_id, (1, 6, None), (2, 5, None))

    assert await send_due_sales(pool, national_settings) == 2

    sold = sorted([(line["so_luong"], line["so_luong_ban"]) for line in report.body["thong_tin_thuoc"]]
                  for report in national_sandbox.sold_reports())
    assert sold == [[(10, 4)], [(10, 6), (5, 5)]]


# ------------------------------------------------------------------------------------------- the outbox

async def test_two_workers_at_once_report_each_sale_once(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    sales = [await dispense(pool, rx_id, (1, 1, None)) for _ in range(10)]

    taken = await asyncio.gather(send_due_sales(pool, national_settings, limit=10),
                                 send_due_sales(pool, national_settings, limit=10))

    assert sum(taken) == 10
    assert national_sandbox.calls("API-7") == 10
    invoices = await pool.fetch("SELECT invoice_number FROM dispenses WHERE id = ANY($1::uuid[])", sales)
    assert sorted(r.body["ma_hoa_don"] for r in national_sandbox.sold_reports()) == sorted(
        r["invoice_number"] for r in invoices)
    assert await pool.fetchval("SELECT count(*) FROM national_sale_outbox WHERE status = 'sent'") == 10


@pytest.mark.parametrize("mode", ["http500", "http429", "drop"])
async def test_transient_failure_is_retried_after_a_backoff_then_sent(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox, mode: Any) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))
    national_sandbox.fail_next(1, mode, api="API-7")

    assert await send_due_sales(pool, national_settings) == 1
    first = await outbox(pool, dispense_id)
    assert (first["status"], first["attempts"], first["leased_until"]) == ("pending", 1, None)
    assert first["last_error"].startswith("API-7: national system")
    wait_s = (first["next_attempt_at"] - await pool.fetchval("SELECT now()")).total_seconds()
    assert 24 - 1 <= wait_s <= 36  # 30 s ± 20 %
    assert await status_of(pool, dispense_id) == ("pending", 1, [first["last_error"]], False)
    assert await send_due_sales(pool, national_settings) == 0  # not due yet

    await make_due(pool)
    await send_due_sales(pool, national_settings)

    second = await outbox(pool, dispense_id)
    assert (second["status"], second["attempts"], second["last_error"]) == ("sent", 2, None)
    assert len(national_sandbox.sold_reports()) == 1


async def test_refusal_is_kept_for_the_pharmacy_and_not_retried(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    # the national system holds the prescription with our own code for paracetamol; a registration number entered
    # since then makes the report name a drug the prescription does not have
    await pool.execute("UPDATE drugs SET registration_number = 'VD-11111-11' WHERE id = $1",
                       await drug_id(pool, "Paracetamol", "500 mg"))
    dispense_id = await dispense(pool, rx_id, (1, 10, None))

    assert await send_due_sales(pool, national_settings) == 1

    message = "Thuốc thong_tin_thuoc.0.ma_thuoc_da_ke_don không có trong đơn thuốc."
    assert await status_of(pool, dispense_id) == ("rejected", 1, [message], False)
    await make_due(pool)
    assert await send_due_sales(pool, national_settings) == 0
    assert national_sandbox.calls("API-7") == 1
    assert national_sandbox.sold_reports() == []
    code = (await outbox(pool, dispense_id))["payload"]["ma_don_thuoc"]
    invoice = await pool.fetchval("SELECT invoice_number FROM dispenses WHERE id = $1", dispense_id)
    assert await audit_actions(pool, dispense_id) == [
        ("dispense.national_rejected", {"code": code, "invoice": invoice, "attempts": 1, "errors": [message]})]


async def test_prescription_unknown_to_the_national_system_is_a_rejection(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    # issued before API-5 had an outbox: nothing tells the worker to wait, and the national system never had it
    consultation_id = await make_consultation(pool, doctor_username="bs.minh", patient_phone="+84987654321")
    rx_id = await insert_issued_prescription(
        pool, consultation_id, [RxLine(await drug_id(pool, "Paracetamol", "500 mg"), quantity=10)])
    dispense_id = await dispense(pool, rx_id, (1, 10, None))

    await send_due_sales(pool, national_settings)

    assert await status_of(pool, dispense_id) == ("rejected", 1, [NOT_FOUND], False)


async def test_prescription_the_national_system_refused_cannot_take_a_report(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings, at_the_national_system=False)
    await pool.execute("UPDATE national_rx_outbox SET status = 'rejected', rejection = '[\"x\"]' "
                       "WHERE prescription_id = $1", rx_id)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))

    await send_due_sales(pool, national_settings)

    status, _, [error], _ = await status_of(pool, dispense_id)
    assert status == "rejected"
    assert "API-5 rejected" in error
    assert national_sandbox.calls("API-7") == 0


async def test_pharmacy_without_a_national_outlet_id_still_sells_and_is_told_what_to_fill_in(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    await pool.execute("UPDATE pharmacies SET national_outlet_id = NULL WHERE id = $1", PHARMACY_ID)
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))

    assert (await outbox(pool, dispense_id))["status"] == "pending"
    await send_due_sales(pool, national_settings)

    outlet = missing_pharmacy_fact("ma_dinh_danh_co_so_cung_ung_thuoc")
    assert "national outlet id" in outlet
    assert await status_of(pool, dispense_id) == ("rejected", 1, [outlet], False)
    assert national_sandbox.calls("API-7") == 0


async def test_gives_up_after_the_last_attempt(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))
    await pool.execute("UPDATE national_sale_outbox SET attempts = $1", MAX_ATTEMPTS - 1)
    national_sandbox.fail_next(1, "http500", api="API-7")

    await send_due_sales(pool, national_settings)

    status, attempts, [error], _ = await status_of(pool, dispense_id)
    assert (status, attempts) == ("failed", MAX_ATTEMPTS)
    assert error.startswith("API-7: national system answered HTTP 500")
    assert [a for a, _ in await audit_actions(pool, dispense_id)] == ["dispense.national_failed"]


async def test_worker_job_is_scheduled_and_drains_the_outbox(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings, paracetamol=worker.NATIONAL_BATCH + 2)
    for _ in range(worker.NATIONAL_BATCH + 2):
        await dispense(pool, rx_id, (1, 1, None))

    assert ("report_national_sales", 5.0, worker.report_national_sales) in worker.JOBS
    await worker.report_national_sales(pool, national_settings)

    assert len(national_sandbox.sold_reports()) == worker.NATIONAL_BATCH + 2


# ------------------------------------------------------------------------------------------- voids

async def test_sale_voided_before_it_went_out_is_never_sent(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))

    assert await void(pool, dispense_id) is True
    await make_due(pool)
    assert await send_due_sales(pool, national_settings) == 0

    assert await status_of(pool, dispense_id) == ("withheld", 0, [], False)
    assert national_sandbox.calls("API-7") == 0
    assert [a for a, _ in await audit_actions(pool, dispense_id)] == ["dispense.national_withheld"]


async def test_sale_voided_after_it_was_reported_is_flagged_for_correction(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))
    await send_due_sales(pool, national_settings)

    assert await void(pool, dispense_id) is False

    assert await status_of(pool, dispense_id) == ("sent", 1, [CORRECTION_NEEDED], True)
    assert len(national_sandbox.sold_reports()) == 1
    assert [a for a, _ in await audit_actions(pool, dispense_id)] == [
        "dispense.national_reported", "dispense.national_correction_needed"]


async def test_sale_voided_while_its_report_is_on_the_way_is_flagged_once_it_arrives(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))
    national_sandbox.fail_next(1, "timeout", api="API-7", delay_s=1.0)  # slow, then accepted

    sending = asyncio.create_task(send_due_sales(pool, national_settings))
    async def arrived() -> bool:
        return national_sandbox.calls("API-7") == 1

    await eventually(arrived)
    assert await void(pool, dispense_id) is False  # cannot know yet whether it arrives
    await sending

    assert await status_of(pool, dispense_id) == ("sent", 1, [CORRECTION_NEEDED], True)
    assert [a for a, _ in await audit_actions(pool, dispense_id)] == [
        "dispense.national_reported", "dispense.national_correction_needed"]


async def test_sale_voided_while_its_report_fails_is_withheld(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))
    with socket.socket() as silent:  # accepts connections and never answers: the report cannot have arrived
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = national_sync.national_config(
            with_overrides(national_settings, national_rx_url=f"http://127.0.0.1:{silent.getsockname()[1]}"))
        client = NationalClient(dataclasses.replace(config, connect_timeout_s=1.0, read_timeout_s=1.0))

        sending = asyncio.create_task(send_due_sales(pool, national_settings, client=client))
        await eventually(lambda: pool.fetchval(
            "SELECT leased_until IS NOT NULL FROM national_sale_outbox WHERE dispense_id = $1", dispense_id))
        assert await void(pool, dispense_id) is False  # a worker holds it: nobody knows yet whether it arrives
        await sending
        client.close()

    status, attempts, [error], correction = await status_of(pool, dispense_id)
    assert (status, attempts, correction) == ("withheld", 1, False)
    assert error == "API-7: national system unreachable (ReadTimeout)"
    await make_due(pool)
    assert await send_due_sales(pool, national_settings) == 0
    assert [a for a, _ in await audit_actions(pool, dispense_id)] == ["dispense.national_withheld"]


async def test_sale_voided_while_waiting_for_a_retry_is_withheld(
        pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox) -> None:
    rx_id = await prescription(pool, national_settings)
    dispense_id = await dispense(pool, rx_id, (1, 10, None))
    national_sandbox.fail_next(1, "http500", api="API-7")
    await send_due_sales(pool, national_settings)

    assert await void(pool, dispense_id) is True

    await make_due(pool)
    assert await send_due_sales(pool, national_settings) == 0
    assert (await status_of(pool, dispense_id))[:2] == ("withheld", 1)
    assert national_sandbox.sold_reports() == []


async def test_status_of_a_sale_never_queued_is_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await sale_report_status(conn, UUID(int=1)) is None
