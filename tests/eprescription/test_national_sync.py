"""Signed prescriptions to the national system: the API-5 body, and the outbox the worker drains, against the
sandbox over HTTP and a real database."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest

from api import worker
from api.settings import Settings
from eprescription import national_sync
from eprescription.national import NationalClient, NationalRejected
from eprescription.national_sandbox import DUPLICATE_CODE, NationalRxSandbox
from eprescription.national_sync import (
    MAX_ATTEMPTS,
    NO_NATIONAL_CODE,
    WITHHELD,
    api5_payload,
    national_status,
    send_due,
)
from eprescription.rules import VN
from eprescription.schemas import SignedLine
from tests.eprescription.conftest import MakeContent, QueuePrescription

LAN = ("79026BS00123", "demo-national-Lan")
MINH = ("79026BS00456", "demo-national-Minh")
SIGNATURE = bytes(range(64))


# ------------------------------------------------------------------------------------------- the API-5 body

def test_adult_normal_prescription_body(national_make_content: MakeContent, national_client: NationalClient,
                                        national_sandbox: NationalRxSandbox) -> None:
    content = national_make_content()
    body = api5_payload(content, SIGNATURE)

    assert body["loai_don_thuoc"] == "c"
    assert body["ma_don_thuoc"] == content.code
    assert body["ngay_sinh_benh_nhan"] == "02/11/1978"
    assert body["ngay_gio_ke_don"] == content.issued_at.astimezone(VN).strftime("%Y-%m-%d %H:%M:%S")
    assert (body["gioi_tinh"], body["hinh_thuc_dieu_tri"]) == (2, national_sync.OUTPATIENT_TREATMENT)
    assert (body["ma_dinh_danh_cong_dan"], body["ma_so_the_bao_hiem_y_te"]) == ("079078001234", "7915012345")
    assert body["so_dien_thoai_nguoi_kham_benh"] == "0987654321"
    assert body["chan_doan"] == [{"ma_chan_doan": "J00", "ten_chan_doan": "Viêm mũi họng cấp [cảm thường]",
                                  "ket_luan": "Cảm lạnh"}]
    assert body["thong_tin_don_thuoc"][0] == {
        "ma_thuoc": "VD-12345-10", "biet_duoc": "Paracetamol", "ten_thuoc": "Panadol 500 mg", "don_vi_tinh": "viên",
        "so_luong": 15, "cach_dung": "Uống: mỗi lần 01 viên, ngày 03 lần, trong 05 ngày. Uống sau ăn"}
    assert (body["loi_dan"], body["ngay_tai_kham"]) == ("Uống nhiều nước, nghỉ ngơi.", 7)
    assert base64.b64decode(body["signature"]) == SIGNATURE
    for absent in ("can_nang", "thong_tin_nguoi_giam_ho", "dot_dung_thuoc", "luu_y", "ma_dinh_danh_y_te"):
        assert absent not in body

    assert national_client.send_prescription(*LAN, body) == "Gửi đơn thuốc thành công"
    assert national_sandbox.prescriptions()[0].body == body


def test_child_under_72_months_body_carries_weight_and_guardian(
        national_make_content: MakeContent, national_client: NationalClient) -> None:
    body = api5_payload(national_make_content(child=True), SIGNATURE)

    assert body["can_nang"] == 11.5
    assert body["thong_tin_nguoi_giam_ho"] == "Nguyễn Thị Mai, 0912345678, 12 Nguyễn Huệ, Quận 1, TP.HCM"
    assert national_client.send_prescription(*LAN, body) == "Gửi đơn thuốc thành công"


def test_psychotropic_body_has_one_batch_over_the_longest_line(national_make_content: MakeContent,
                                                               national_client: NationalClient) -> None:
    content = national_make_content(rx_type="h")
    body = api5_payload(content, SIGNATURE)
    issued = content.issued_at.astimezone(VN).date()

    assert "hinh_thuc_dieu_tri" not in body
    assert body["dot_dung_thuoc"] == [{"dot": 1, "tu_ngay": issued.strftime("%d/%m/%Y"),
                                       "den_ngay": (issued + timedelta(days=6)).strftime("%d/%m/%Y")}]
    assert national_client.send_prescription(*LAN, body) == "Gửi đơn thuốc thành công"


def test_drug_without_a_short_registration_number_gets_our_code(national_make_content: MakeContent) -> None:
    content = national_make_content()
    long_number = line_with(content.lines[0], registration_number="QLĐB-123456789012345678")
    body = api5_payload(msgspec.structs.replace(content, lines=[long_number, content.lines[1]]), SIGNATURE)

    codes = [line["ma_thuoc"] for line in body["thong_tin_don_thuoc"]]
    assert codes == ["LT" + content.lines[0].drug_id.hex[:18], "LT" + content.lines[1].drug_id.hex[:18]]
    assert all(len(code) == 20 for code in codes)


def test_texts_are_cut_to_the_field_sizes(national_make_content: MakeContent, national_client: NationalClient) -> None:
    content = national_make_content()
    wordy = line_with(content.lines[0], usage="Uống sau ăn. " * 40)
    body = api5_payload(msgspec.structs.replace(content, lines=[wordy], note="Lưu ý " * 400), SIGNATURE)

    assert len(body["thong_tin_don_thuoc"][0]["cach_dung"]) == 500
    assert body["thong_tin_don_thuoc"][0]["cach_dung"].endswith("…")
    assert len(body["luu_y"]) == 2000
    assert national_client.send_prescription(*LAN, body) == "Gửi đơn thuốc thành công"


def line_with(line: SignedLine, **changes: Any) -> SignedLine:
    return msgspec.structs.replace(line, **changes)


def _without(body: dict[str, Any], path: str) -> dict[str, Any]:
    changed = msgspec.json.decode(msgspec.json.encode(body))
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    del target[int(last) if last.isdigit() else last]
    return changed


@pytest.mark.parametrize(("child", "rx_type", "change", "message"), [
    (False, "c", lambda b: _without(b, "ho_ten_benh_nhan"), "Trường ho_ten_benh_nhan không được bỏ trống."),
    (False, "c", lambda b: _without(b, "ngay_sinh_benh_nhan"), "Trường ngay_sinh_benh_nhan không được bỏ trống."),
    (False, "c", lambda b: _without(b, "dia_chi"), "Trường dia_chi không được bỏ trống."),
    (False, "c", lambda b: _without(b, "gioi_tinh"), "Trường gioi_tinh không được bỏ trống."),
    (False, "c", lambda b: {**b, "gioi_tinh": 4}, "Trường gioi_tinh phải là một trong các giá trị: 1, 2, 3."),
    (False, "c", lambda b: {**b, "loai_don_thuoc": "x"},
     "Trường loai_don_thuoc phải là một trong các giá trị: c, h, n, y."),
    (False, "c", lambda b: {**b, "chan_doan": []}, "Trường chan_doan không được bỏ trống."),
    (False, "c", lambda b: _without(b, "chan_doan.0.ket_luan"), "Trường chan_doan.0.ket_luan không được bỏ trống."),
    (False, "c", lambda b: _without(b, "thong_tin_don_thuoc"), "Trường thong_tin_don_thuoc không được bỏ trống."),
    (False, "c", lambda b: _without(b, "thong_tin_don_thuoc.0.ma_thuoc"),
     "Trường thong_tin_don_thuoc.0.ma_thuoc không được bỏ trống."),
    (False, "c", lambda b: _without(b, "hinh_thuc_dieu_tri"),
     "Trường hinh_thuc_dieu_tri không được bỏ trống khi loai_don_thuoc là c."),
    (False, "h", lambda b: _without(b, "dot_dung_thuoc"),
     "Trường dot_dung_thuoc không được bỏ trống khi loai_don_thuoc là h, n hoặc y."),
    (True, "c", lambda b: _without(b, "can_nang"),
     "Trường can_nang không được bỏ trống khi bệnh nhân dưới 72 tháng tuổi."),
    (True, "c", lambda b: _without(b, "thong_tin_nguoi_giam_ho"),
     "Trường thong_tin_nguoi_giam_ho không được bỏ trống khi bệnh nhân dưới 72 tháng tuổi."),
    (False, "c", lambda b: {**b, "ho_ten_benh_nhan": "A" * 501},
     "Trường ho_ten_benh_nhan không được lớn hơn 500 ký tự."),
    (False, "c", lambda b: {**b, "ngay_sinh_benh_nhan": "1978-11-02"},
     "Trường ngay_sinh_benh_nhan không khớp với định dạng d/m/Y."),
    (False, "c", lambda b: {**b, "ma_don_thuoc": "01234" + b["ma_don_thuoc"][5:]},
     "Mã đơn thuốc phải bắt đầu bằng mã cơ sở khám chữa bệnh 79026."),
    (False, "c", lambda b: {**b, "ma_don_thuoc": b["ma_don_thuoc"] + "x"},
     "Trường ma_don_thuoc phải có đúng 14 ký tự."),
    (False, "c", lambda b: {**b, "loai_don_thuoc": "h", "dot_dung_thuoc": [
        {"dot": 1, "tu_ngay": "01/01/2026", "den_ngay": "05/01/2026"}]}, "Loại đơn thuốc không khớp với mã đơn thuốc."),
])
def test_sandbox_rejects_a_body_missing_what_qd808_requires(
        national_make_content: MakeContent, national_client: NationalClient, national_sandbox: NationalRxSandbox,
        child: bool, rx_type: str, change: Any, message: str) -> None:
    body = change(api5_payload(national_make_content(child=child, rx_type=rx_type), SIGNATURE))

    with pytest.raises(NationalRejected) as caught:
        national_client.send_prescription(*LAN, body)

    assert caught.value.messages == [message]
    assert national_sandbox.prescriptions() == []


# ------------------------------------------------------------------------------------------- the outbox

async def outbox(pool: asyncpg.Pool, prescription_id: UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM national_rx_outbox WHERE prescription_id = $1", prescription_id)
    assert row is not None
    return row


async def make_due(pool: asyncpg.Pool) -> None:
    """What waiting out the backoff would do."""
    await pool.execute("UPDATE national_rx_outbox SET next_attempt_at = now() WHERE status = 'pending'")


async def audit_actions(pool: asyncpg.Pool, prescription_id: UUID) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch(
        """SELECT action, details, actor_account_id, actor_role FROM audit_log WHERE target_id = $1
           AND action LIKE 'prescription.national%' ORDER BY id""", str(prescription_id))
    assert all(r["actor_account_id"] is None and r["actor_role"] == "system" for r in rows)
    return [(r["action"], r["details"]) for r in rows]


def short_client(settings: Settings) -> NationalClient:
    """The worker's client with one-second timeouts, so a stalled request costs the test one second."""
    return NationalClient(dataclasses.replace(national_sync.national_config(settings), connect_timeout_s=1.0,
                                              read_timeout_s=1.0))


async def test_queued_prescription_is_sent_once(demo: None, pool: asyncpg.Pool, national_settings: Settings,
                                                national_sandbox: NationalRxSandbox,
                                                national_queue: QueuePrescription) -> None:
    content = await national_queue()

    assert await send_due(pool, national_settings) == 1
    assert await send_due(pool, national_settings) == 0

    [held] = national_sandbox.prescriptions()
    assert (held.code, held.doctor_code) == (content.code, MINH[0])
    assert held.body == api5_payload(content, bytes(range(64)))
    assert national_sandbox.facility_doctors("79026") == {MINH[0]}  # added by API-2 on the first send
    async with pool.acquire() as conn:
        status = await national_status(conn, content.prescription_id)
    assert status is not None
    assert (status.status, status.attempts, status.errors) == ("sent", 1, [])
    assert status.sent_at is not None
    assert await audit_actions(pool, content.prescription_id) == [
        ("prescription.national_sent", {"code": content.code, "attempts": 1, "already_held": False})]


async def test_child_prescription_from_the_database_is_accepted(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    content = await national_queue(for_child=True, doctor="bs.lan")

    await send_due(pool, national_settings)

    [held] = national_sandbox.prescriptions()
    assert (held.body["can_nang"], held.body["thong_tin_nguoi_giam_ho"]) == (
        11.5, "Nguyễn Thị Mai, 0912345678, 12 Nguyễn Huệ, Phường Bến Nghé, Quận 1, TP.HCM")
    assert (await outbox(pool, content.prescription_id))["status"] == "sent"


async def test_two_workers_at_once_send_each_prescription_once(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    contents = [await national_queue(slot=i) for i in range(30)]

    taken = await asyncio.gather(send_due(pool, national_settings, limit=30),
                                 send_due(pool, national_settings, limit=30))

    assert sum(taken) == 30
    assert national_sandbox.calls("API-5") == 30
    assert sorted(p.code for p in national_sandbox.prescriptions()) == sorted(c.code for c in contents)
    assert await pool.fetchval("SELECT count(*) FROM national_rx_outbox WHERE status = 'sent'") == 30


@pytest.mark.parametrize("mode", ["http500", "http429", "drop"])
async def test_transient_failure_is_retried_after_a_backoff_then_sent(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription, mode: Any) -> None:
    content = await national_queue()
    national_sandbox.fail_next(2, mode, api="API-5")

    await send_due(pool, national_settings)
    first = await outbox(pool, content.prescription_id)
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert first["last_error"].startswith("API-5: national system")
    wait_s = (first["next_attempt_at"] - await pool.fetchval("SELECT now()")).total_seconds()
    assert 24 - 1 <= wait_s <= 36  # 30 s ± 20 %
    assert await send_due(pool, national_settings) == 0  # not due yet

    await make_due(pool)
    await send_due(pool, national_settings)
    second = await outbox(pool, content.prescription_id)
    wait_s = (second["next_attempt_at"] - await pool.fetchval("SELECT now()")).total_seconds()
    assert second["attempts"] == 2
    assert 48 - 1 <= wait_s <= 72  # 1 min ± 20 %
    async with pool.acquire() as conn:
        status = await national_status(conn, content.prescription_id)
    assert status is not None
    assert (status.status, status.errors) == ("pending", [second["last_error"]])

    await make_due(pool)
    await send_due(pool, national_settings)
    third = await outbox(pool, content.prescription_id)
    assert (third["status"], third["attempts"], third["last_error"]) == ("sent", 3, None)
    assert len(national_sandbox.prescriptions()) == 1


async def test_answer_lost_to_a_timeout_counts_as_sent_on_the_next_attempt(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    content = await national_queue()
    client = short_client(national_settings)
    national_sandbox.fail_next(1, "timeout", api="API-5", delay_s=1.5)  # accepted after we gave up

    await send_due(pool, national_settings, client=client)
    assert (await outbox(pool, content.prescription_id))["status"] == "pending"
    await asyncio.sleep(0.7)  # the sandbox finishes the stalled request

    await make_due(pool)
    await send_due(pool, national_settings, client=client)

    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(national_sandbox.prescriptions()) == 1
    assert national_sandbox.calls("API-6") == 1
    assert (await audit_actions(pool, content.prescription_id))[-1] == (
        "prescription.national_sent", {"code": content.code, "attempts": 2, "already_held": True})
    client.close()


async def test_crash_between_send_and_commit_counts_as_sent_without_a_duplicate(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_client: NationalClient, national_queue: QueuePrescription) -> None:
    content = await national_queue()
    payload = (await outbox(pool, content.prescription_id))["payload"]
    # a worker sent it and died before recording the answer: the row is still pending and due
    national_client.send_prescription(*MINH, payload)

    await send_due(pool, national_settings)

    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["rejection"]) == ("sent", None)
    assert len(national_sandbox.prescriptions()) == 1
    assert national_sandbox.calls("API-5") == 2  # the lost send, then ours, refused as a duplicate
    assert (await audit_actions(pool, content.prescription_id))[-1][1]["already_held"] is True


async def test_validation_refusal_is_kept_for_the_doctor_and_not_retried(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    content = await national_queue(patient={"address": ""})

    assert await send_due(pool, national_settings) == 1

    async with pool.acquire() as conn:
        status = await national_status(conn, content.prescription_id)
    assert status is not None
    assert (status.status, status.attempts, status.errors) == ("rejected", 1, ["Trường dia_chi không được bỏ trống."])
    await make_due(pool)
    assert await send_due(pool, national_settings) == 0
    assert national_sandbox.calls("API-5") == 1
    assert national_sandbox.prescriptions() == []
    assert await audit_actions(pool, content.prescription_id) == [
        ("prescription.national_rejected",
         {"code": content.code, "attempts": 1, "errors": ["Trường dia_chi không được bỏ trống."]})]


async def test_duplicate_code_held_for_another_patient_is_a_rejection(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_client: NationalClient, national_queue: QueuePrescription) -> None:
    content = await national_queue()
    payload = dict((await outbox(pool, content.prescription_id))["payload"])
    national_client.send_prescription(*MINH, {**payload, "ho_ten_benh_nhan": "Người Khác"})

    await send_due(pool, national_settings)

    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["rejection"]) == ("rejected", [DUPLICATE_CODE])


async def test_doctor_without_a_national_code_is_rejected_with_a_clear_message(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    content = await national_queue()
    await pool.execute("UPDATE doctors SET national_rx_code = NULL WHERE national_rx_code = $1", MINH[0])

    await send_due(pool, national_settings)

    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["rejection"]) == ("rejected", [NO_NATIONAL_CODE])
    assert national_sandbox.calls("API-4") == national_sandbox.calls("API-5") == 0


async def test_prescription_cancelled_before_it_went_out_is_withheld(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    content = await national_queue()
    await pool.execute("UPDATE prescriptions SET status = 'cancelled', cancelled_at = now() WHERE id = $1",
                       content.prescription_id)

    await send_due(pool, national_settings)

    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["rejection"]) == ("rejected", [WITHHELD])
    assert national_sandbox.calls("API-5") == 0


async def test_refused_doctor_login_waits_for_the_account_to_be_fixed(
        demo: None, pool: asyncpg.Pool, national_settings: Settings, national_sandbox: NationalRxSandbox,
        national_queue: QueuePrescription) -> None:
    content = await national_queue()
    national_sandbox.register_doctor(MINH[0], "changed-on-the-national-site")

    await send_due(pool, national_settings)
    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["last_error"] == "API-4: Mã liên thông hoặc mật khẩu không đúng."

    national_sandbox.register_doctor(*MINH)
    await make_due(pool)
    await send_due(pool, national_settings)
    assert (await outbox(pool, content.prescription_id))["status"] == "sent"


async def test_gives_up_after_the_last_attempt(demo: None, pool: asyncpg.Pool, national_settings: Settings,
                                               national_sandbox: NationalRxSandbox,
                                               national_queue: QueuePrescription) -> None:
    content = await national_queue()
    await pool.execute("UPDATE national_rx_outbox SET attempts = $1", MAX_ATTEMPTS - 1)
    national_sandbox.fail_next(1, "http500", api="API-5")

    await send_due(pool, national_settings)

    row = await outbox(pool, content.prescription_id)
    assert (row["status"], row["attempts"]) == ("failed", MAX_ATTEMPTS)
    async with pool.acquire() as conn:
        status = await national_status(conn, content.prescription_id)
    assert status is not None
    assert status.status == "failed"
    assert re.match(r"API-5: national system answered HTTP 500", status.errors[0])
    assert [a for a, _ in await audit_actions(pool, content.prescription_id)] == ["prescription.national_failed"]


async def test_status_of_a_prescription_never_queued_is_none(demo: None, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await national_status(conn, UUID(int=1)) is None


async def test_worker_job_drains_more_than_one_batch(demo: None, pool: asyncpg.Pool, national_settings: Settings,
                                                     national_sandbox: NationalRxSandbox,
                                                     national_queue: QueuePrescription) -> None:
    for i in range(worker.NATIONAL_BATCH + 3):
        await national_queue(slot=i)

    assert ("send_national_prescriptions", 5.0, worker.send_national_prescriptions) in worker.JOBS
    await worker.send_national_prescriptions(pool, national_settings)

    assert len(national_sandbox.prescriptions()) == worker.NATIONAL_BATCH + 3
    assert await pool.fetchval("SELECT count(*) FROM national_rx_outbox WHERE status <> 'sent'") == 0


def test_retry_delays_double_from_30_seconds_to_an_hour() -> None:
    for attempts, base in ((1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (12, 3600)):
        delays = [national_sync.retry_delay(attempts) for _ in range(50)]
        assert all(0.8 * base - 1e-9 <= d <= 1.2 * base + 1e-9 for d in delays), attempts
        assert len(set(delays)) > 1
