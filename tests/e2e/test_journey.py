"""The whole journey in one go, as the platform's users live it: Lê Văn Hùng books bs.minh from his phone and checks
in; the doctor signs in to the console with an authenticator code, sees him waiting, starts the video call (the
patient's app is an aiortc peer here, and the doctor's browser plays its video), leaves the call to write notes with
an ICD-10 diagnosis (on the telemedicine list), prescribes two drugs that must not be combined, overrides the
finding with a reason and signs with a second code. The pharmacist finds that code at the counter and dispenses
part of it, then the rest."""

from __future__ import annotations

import re
from uuid import UUID

import asyncpg
import av
import httpx
import pytest
from playwright.async_api import Browser, expect

from notifications.sms_sandbox import SmsSandbox
from tests.e2e.conftest import new_page, screenshot
from tests.e2e.console_steps import (
    doctor_signs_in,
    fill_line,
    look_up,
    pharmacist_signs_in,
    pick,
    remaining,
    totp_code,
    waiting_patient,
)
from tests.e2e.patient_app import PatientApp, remote_video_plays

pytestmark = pytest.mark.usefixtures("demo", "loopback")
ICD_SEARCH = "Tìm mã ICD-10 (mã hoặc tên bệnh, có dấu hoặc không dấu)"
DRUG_SEARCH = "Thuốc (tên hoạt chất, biệt dược hoặc mã ATC)"
OVERRIDE = "Bệnh nhân tạm ngừng simvastatin trong 7 ngày dùng kháng sinh."


async def test_from_booking_to_the_last_tablet_dispensed(
        browser: Browser, console_url: str, sms: SmsSandbox, pool: asyncpg.Pool, frames: list[av.VideoFrame]) -> None:
    consultation_id, patient_token = await waiting_patient(console_url, sms, pool)
    doctor = await new_page(browser, console_url)
    async with httpx.AsyncClient(base_url=console_url, timeout=15) as http:
        patient = PatientApp(http, patient_token, consultation_id, frames)
        try:
            # the doctor's queue shows him waiting; the patient's app is in the waiting room
            await doctor_signs_in(doctor)
            row = doctor.locator(f"tr[data-consultation='{consultation_id}']")
            await expect(row).to_contain_text("Lê Văn Hùng")
            await expect(row).to_contain_text("Đang chờ")
            assert (await patient.join())["peers"] == []

            # the call: the page starts the consultation, joins and offers; video flows both ways
            await row.get_by_role("link", name="Bắt đầu khám").click()
            await expect(doctor.get_by_role("heading", name="Khám từ xa với Lê Văn Hùng")).to_be_visible()
            await remote_video_plays(doctor)
            await patient.receive_video(30)
            await expect(doctor.locator("#call-status")).to_have_text("Đã kết nối với bệnh nhân.")
            assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1",
                                       UUID(consultation_id)) == "in_call"

            # leave the call for the notes; the patient's app is told the doctor has stepped out
            await doctor.get_by_role("button", name="Rời cuộc gọi, ghi chép").click()
            await expect(doctor.get_by_role("heading", name="Lượt khám của Lê Văn Hùng")).to_be_visible()
            left = await patient.expect("peer-left")
            assert left["role"] == "doctor"
        finally:
            await patient.close()

    await doctor.get_by_label("Bệnh sử, triệu chứng (S)").fill("Tái khám tăng huyết áp, HA 150/90; ho có đờm 5 ngày.")
    await pick(doctor, ICD_SEARCH, "tang huyet ap", "^I10 ")
    await doctor.get_by_role("button", name="Lưu bệnh án").click()
    await expect(doctor.get_by_role("status").filter(has_text="Đã lưu.")).to_be_visible()

    # simvastatin + clarithromycin: contraindicated, so signing needs a reason
    await pick(doctor, DRUG_SEARCH, "simvastatin", "Simvastatin")
    await doctor.get_by_label("Số lần/ngày").fill("1")
    await doctor.get_by_label("Số ngày", exact=True).fill("10")
    await doctor.get_by_role("button", name="Thêm thuốc").click()
    await pick(doctor, DRUG_SEARCH, "clarithromycin", "Clarithromycin")
    await doctor.get_by_label("Số lần/ngày").fill("2")
    await doctor.get_by_label("Số ngày", exact=True).fill("7")
    await expect(doctor.get_by_label("Số lượng", exact=True)).to_have_value("14")  # 1 × 2 × 7, computed
    await doctor.get_by_role("button", name="Thêm thuốc").click()
    finding = doctor.locator(".finding[data-blocking='true']")
    await expect(finding).to_contain_text("Chống chỉ định phối hợp: Simvastatin + Clarithromycin")
    await finding.get_by_label("Lý do vẫn kê (ít nhất 10 ký tự)").fill(OVERRIDE)
    # the sign-in spent this step's code; the next step's is accepted (±1) and unused
    await doctor.get_by_label("Mã xác thực để ký (6 số)").fill(totp_code("bs.minh", steps_ahead=1))
    await doctor.get_by_role("button", name="Ký và phát hành đơn").click()
    shown = doctor.locator("#rx-code")
    await expect(shown).to_have_text(re.compile(r"^79026[0-9a-z]{7}-c$"))
    code = await shown.text_content()
    assert code is not None
    rx = await pool.fetchrow(
        """SELECT id, status, (SELECT array_agg(f->>'override_reason') FROM jsonb_array_elements(findings) f
                              WHERE (f->>'blocks_signing')::boolean) AS overrides
           FROM prescriptions WHERE code = $1""", code)
    assert (rx["status"], rx["overrides"]) == ("issued", [OVERRIDE])
    await doctor.context.close()

    # the counter: the code the patient shows, part of it today, the rest later
    pharmacist = await new_page(browser, console_url)
    try:
        await pharmacist_signs_in(pharmacist)
        await look_up(pharmacist, code)
        await expect(pharmacist.locator("#prescription")).to_contain_text("Lê Văn Hùng")
        await expect(pharmacist.locator("#rx-status")).to_have_text("Chưa bán")
        assert [re.sub(r"\D", "", text) for text in await remaining(pharmacist)] == ["10", "14"]

        await fill_line(pharmacist, 1, 10, "SV2501", 2500)
        await fill_line(pharmacist, 2, 0, "", 0)
        await pharmacist.get_by_role("button", name="Bán thuốc", exact=True).click()
        await expect(pharmacist.locator("#rx-status")).to_have_text("Đã bán một phần")
        assert [re.sub(r"\D", "", text) for text in await remaining(pharmacist)] == ["0", "14"]

        await fill_line(pharmacist, 2, 14, "CL2503", 6000)
        await pharmacist.get_by_role("button", name="Bán thuốc", exact=True).click()
        await expect(pharmacist.locator("#rx-status")).to_have_text("Đã bán đủ")
        await expect(pharmacist.locator("#dispense")).to_be_hidden()
        await screenshot(pharmacist, "journey-dispensed")
    finally:
        await pharmacist.context.close()
    assert await pool.fetchval("SELECT status FROM prescriptions WHERE id = $1", rx["id"]) == "dispensed"
    sales = await pool.fetch(
        """SELECT d.total_vnd, array_agg(l.quantity ORDER BY l.position) AS quantities
           FROM dispenses d JOIN dispense_lines l ON l.dispense_id = d.id
           WHERE d.prescription_id = $1 GROUP BY d.id, d.created_at ORDER BY d.created_at""", rx["id"])
    assert [(s["total_vnd"], s["quantities"]) for s in sales] == [(25_000, [10]), (84_000, [14])]
