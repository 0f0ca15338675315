"""The doctor console in a real browser: signing in with an authenticator code, today's queue with a patient who
booked and checked in through the API, notes with an ICD-10 diagnosis, prescribing two interacting drugs and signing,
the schedule editor, a wrong code, and prescribing by keyboard alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pyotp
from playwright.async_api import Browser, Locator, Page, expect

from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.e2e.conftest import new_page, screenshot
from tests.e2e.console_steps import HUNG, pick, waiting_patient
from tests.e2e.console_steps import doctor_signs_in as sign_in
from tests.e2e.console_steps import totp_code as code
from tests.eprescription.prescribing import staff_headers
from tests.helpers import demo_password

VN = timedelta(hours=7)


async def test_doctor_signs_in_sees_the_waiting_patient_writes_notes_and_signs_a_prescription(
        page: Page, console_url: str, sms: SmsSandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    consultation_id, _ = await waiting_patient(console_url, sms, pool)
    await sign_in(page)
    row = page.locator(f"tr[data-consultation='{consultation_id}']")
    await expect(row).to_contain_text("Lê Văn Hùng")
    await expect(row).to_contain_text("Đang chờ")
    await expect(row).to_contain_text(re.compile(r"Đang chờ từ \d\d:\d\d \(\d+ phút\)"))
    await expect(row.get_by_role("link", name="Bắt đầu khám")).to_have_attribute(
        "href", f"/console/doctor/call.html?consultation={consultation_id}")
    await screenshot(page, "doctor-queue")

    doctor = await staff_headers(pool, settings, "bs.minh")
    async with httpx.AsyncClient(base_url=console_url, headers=doctor) as api:
        assert (await api.post(f"/consultations/{consultation_id}/start")).status_code == 200
        await expect(row).to_contain_text("Đang khám")  # the queue refreshes by itself
        await row.get_by_role("link", name="Mở bệnh án").click()

        await expect(page.get_by_role("heading", name="Lượt khám của Lê Văn Hùng")).to_be_visible()
        await expect(page.get_by_role("complementary")).to_contain_text("Chưa ghi nhận dị ứng.")
        await page.get_by_label("Bệnh sử, triệu chứng (S)").fill("Đau đầu vùng chẩm, HA đo tại nhà 160/95.")
        await pick(page, "Tìm mã ICD-10 (mã hoặc tên bệnh, có dấu hoặc không dấu)", "tang huyet ap", "^I10 ")
        await expect(page.get_by_role("radio", name=re.compile("I10 Tăng huyết áp"))).to_be_checked()
        await page.get_by_role("button", name="Lưu bệnh án").click()
        await expect(page.get_by_role("status").filter(has_text="Đã lưu.")).to_be_visible()
        record = (await api.get(f"/consultations/{consultation_id}/record")).json()
        assert [(d["code"], d["is_principal"]) for d in record["diagnoses"]] == [("I10", True)]

        drug = "Thuốc (tên hoạt chất, biệt dược hoặc mã ATC)"
        await pick(page, drug, "warfarin", "Warfarin")
        await page.get_by_label("Số lần/ngày").fill("1")
        await page.get_by_label("Số ngày", exact=True).fill("10")
        await expect(page.get_by_label("Số lượng", exact=True)).to_have_value("10")
        await page.get_by_role("button", name="Thêm thuốc").click()
        await pick(page, drug, "metronidazol", "Metronidazol")
        await page.get_by_label("Số lần/ngày").fill("3")
        await page.get_by_label("Số ngày", exact=True).fill("7")
        await expect(page.get_by_label("Số lượng", exact=True)).to_have_value("21")  # 1 × 3 × 7, computed
        # the check runs on the line being written, before it is added
        finding = page.locator(".finding").filter(has_text=re.compile("Tương tác.*Warfarin.*Metronidazol", re.I))
        await expect(finding).to_be_visible()
        await page.get_by_label("Cách dùng").fill("Uống sau ăn")
        await page.get_by_role("button", name="Thêm thuốc").click()
        await expect(page.locator("table").filter(has_text="Liều dùng").locator("tbody tr")).to_have_count(2)

        blocking = await finding.get_attribute("data-blocking") == "true"
        reason = "Đã cân nhắc, giảm liều warfarin và hẹn kiểm tra INR sau 3 ngày."
        if blocking:
            await finding.get_by_label("Lý do vẫn kê (ít nhất 10 ký tự)").fill(reason)
        await screenshot(page, "doctor-prescribing")

        # the sign-in used this step's code; the next one is still accepted (±1 step) and not yet used
        await page.get_by_label("Mã xác thực để ký (6 số)").fill(code("bs.minh", steps_ahead=1))
        await page.get_by_role("button", name="Ký và phát hành đơn").click()
        shown = page.locator("#rx-code")
        await expect(shown).to_have_text(re.compile(r"^79026[0-9a-z]{7}-c$"))
        qr = page.get_by_role("img", name=re.compile("Mã QR của đơn thuốc"))
        await expect(qr).to_be_visible()
        await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await qr.element_handle())
        await screenshot(page, "doctor-signed")

        listed = (await api.get("/prescriptions", params={"consultation_id": consultation_id})).json()
        [summary] = [p for p in listed if p["code"] == await shown.text_content()]
        rx: dict[str, Any] = (await api.get(f"/prescriptions/{summary['id']}")).json()
    assert rx["status"] == "issued"
    assert [d["code"] for d in rx["diagnoses"]] == ["I10"]
    assert [(line["drug_name"], line["times_per_day"], line["days"], line["quantity"], line["usage"])
            for line in rx["lines"]] == [("Warfarin", 1, 10, 10, ""), ("Metronidazol", 3, 7, 21, "Uống sau ăn")]
    interaction = [f for f in rx["findings"] if f["rule"] == "CDS-1"]
    assert interaction, rx["findings"]
    if blocking:
        assert interaction[0]["override_reason"] == reason


async def test_schedule_editor_changes_weekly_hours_and_adds_a_leave_day(
        page: Page, console_url: str, pool: asyncpg.Pool, settings: Settings) -> None:
    leave_day = (datetime.now(UTC) + VN).date() + timedelta(days=9)
    await sign_in(page)
    # an access token about to expire is refreshed before the next call
    before = await page.evaluate("""() => {
        const s = JSON.parse(sessionStorage.getItem('lienthong.session.doctor'));
        s.expiresAt = new Date(Date.now() + 20000).toISOString();
        sessionStorage.setItem('lienthong.session.doctor', JSON.stringify(s));
        return s; }""")
    await page.get_by_role("link", name="Lịch làm việc").click()
    await expect(page.get_by_role("heading", name="Giờ làm việc hằng tuần (giờ Việt Nam)")).to_be_visible()
    weekly = page.locator("form").filter(has=page.get_by_role("heading", name="Giờ làm việc hằng tuần (giờ Việt Nam)"))

    def day(name: str) -> Locator:
        return weekly.locator("tbody tr").filter(has=page.locator("option:checked", has_text=name))

    await expect(weekly.locator("tbody tr")).to_have_count(7)
    await day("Chủ Nhật").get_by_role("button", name="Xoá").click()
    await day("Thứ Bảy").get_by_label("Đến", exact=True).fill("12:00")
    await weekly.get_by_role("button", name="Lưu giờ làm việc").click()
    await expect(weekly.get_by_text("Đã lưu.")).to_be_visible()
    await page.get_by_label("Loại").select_option("leave")
    await page.get_by_label("Ngày bắt đầu").fill(leave_day.isoformat())
    await page.get_by_label("Lý do", exact=True).fill("Hội nghị tim mạch")
    await page.get_by_role("button", name="Thêm", exact=True).click()
    await expect(page.locator("tr").filter(has_text="Hội nghị tim mạch")).to_contain_text("Nghỉ")
    await screenshot(page, "doctor-schedule")

    async with httpx.AsyncClient(base_url=console_url, headers=await staff_headers(pool, settings, "bs.minh")) as api:
        schedule = (await api.get("/doctors/me/schedule")).json()
    assert sorted((r["weekday"], r["start_time"], r["end_time"]) for r in schedule["rules"]) == [
        *((d, "06:00:00", "23:00:00") for d in range(1, 6)), (6, "06:00:00", "12:00:00")]
    [leave] = [x for x in schedule["exceptions"] if x["reason"] == "Hội nghị tim mạch"]
    assert leave["kind"] == "leave"
    assert datetime.fromisoformat(leave["starts_at"]) == datetime.fromisoformat(f"{leave_day}T00:00:00+07:00")
    assert datetime.fromisoformat(leave["ends_at"]) == datetime.fromisoformat(f"{leave_day}T23:59:00+07:00")

    after = await page.evaluate("JSON.parse(sessionStorage.getItem('lienthong.session.doctor'))")
    assert after["refreshToken"] != before["refreshToken"] and after["account"] == before["account"]
    assert datetime.fromisoformat(after["expiresAt"].replace("Z", "+00:00")) > datetime.now(UTC) + timedelta(minutes=10)
    await page.get_by_role("button", name="Đăng xuất").click()
    await expect(page.get_by_role("heading", name="Đăng nhập bác sĩ")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('lienthong.session.doctor')") is None
    async with httpx.AsyncClient(base_url=console_url) as http:  # signing out revoked the refresh token
        refreshed = await http.post("/auth/refresh", json={"refresh_token": after["refreshToken"]})
    assert refreshed.status_code == 401


async def test_a_wrong_authenticator_code_shows_the_problem_and_stays_on_sign_in(page: Page) -> None:
    await page.goto("/console/doctor/")
    await page.get_by_label("Tên đăng nhập").fill("bs.minh")
    await page.get_by_label("Mật khẩu").fill(demo_password("bs.minh"))
    right = {code("bs.minh", s) for s in (-1, 0, 1)}
    await page.get_by_label("Mã xác thực (6 số từ ứng dụng xác thực)").fill(
        next(c for c in ("000000", "111111", "222222", "333333") if c not in right))
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page.get_by_role("alert")).to_contain_text("Sai tên đăng nhập, mật khẩu hoặc mã xác thực")
    await expect(page.get_by_role("heading", name="Đăng nhập bác sĩ")).to_be_visible()
    await expect(page.get_by_role("button", name="Đăng xuất")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('lienthong.session.doctor')") is None


async def test_a_prescription_line_is_added_with_the_keyboard_only(page: Page, pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool, doctor_username="bs.minh", patient_phone=HUNG, status="in_call")
    await sign_in(page)
    await page.goto(f"/console/doctor/#/consultations/{consultation_id}")
    drug = page.get_by_role("combobox", name="Thuốc (tên hoạt chất, biệt dược hoặc mã ATC)")
    await drug.focus()
    await page.keyboard.type("paracetamol 500")
    options = page.get_by_role("listbox", name="Thuốc (tên hoạt chất, biệt dược hoặc mã ATC)").get_by_role("option")
    await expect(options.first).to_contain_text("Paracetamol 500 mg")
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("Enter")  # picks the highlighted drug and moves on to the dose
    await expect(page.get_by_label("Liều mỗi lần")).to_be_focused()
    for keys in ("Control+A", "1", "Tab", "Tab", "Control+A", "3", "Tab", "Control+A", "4", "Tab"):
        await page.keyboard.press(keys)
    await expect(page.get_by_label("Số lượng", exact=True)).to_be_focused()
    await expect(page.get_by_label("Số lượng", exact=True)).to_have_value("12")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Uống khi sốt")
    await page.keyboard.press("Enter")  # Enter adds the line

    lines = page.locator("table").filter(has_text="Liều dùng").locator("tbody tr")
    await expect(lines).to_have_count(1)
    await expect(lines.first).to_contain_text("Paracetamol")
    await expect(lines.first).to_contain_text("Mỗi lần 1 viên, ngày 3 lần, 4 ngày")
    await expect(lines.first).to_contain_text("12 viên")
    await expect(drug).to_be_focused()  # ready for the next drug
    await expect(page.locator("#status")).to_contain_text("Đã thêm Paracetamol")


async def test_a_contraindicated_pair_needs_a_reason_before_signing_then_the_visit_is_completed(
        page: Page, pool: asyncpg.Pool, console_url: str, settings: Settings) -> None:
    consultation_id = await make_consultation(pool, doctor_username="bs.minh", patient_phone=HUNG, status="in_call")
    await sign_in(page)
    await page.goto(f"/console/doctor/#/consultations/{consultation_id}")
    await pick(page, "Tìm mã ICD-10 (mã hoặc tên bệnh, có dấu hoặc không dấu)", "I10", "^I10 ")
    drug = "Thuốc (tên hoạt chất, biệt dược hoặc mã ATC)"
    for name in ("Simvastatin", "Clarithromycin"):
        await pick(page, drug, name.lower(), name)
        await page.get_by_role("button", name="Thêm thuốc").click()
    finding = page.locator(".finding[data-blocking='true']")
    await expect(finding).to_contain_text("Chống chỉ định phối hợp: Simvastatin + Clarithromycin")

    sign_code = page.get_by_label("Mã xác thực để ký (6 số)")
    await sign_code.fill(code("bs.minh", steps_ahead=1))
    await page.get_by_role("button", name="Ký và phát hành đơn").click()
    await expect(page.get_by_role("alert")).to_contain_text("Nhập lý do cho mọi cảnh báo cần lý do trước khi ký.")
    reason = finding.get_by_label("Lý do vẫn kê (ít nhất 10 ký tự)")
    await expect(reason).to_be_focused()
    async with httpx.AsyncClient(base_url=console_url, headers=await staff_headers(pool, settings, "bs.minh")) as api:
        assert (await api.get("/prescriptions", params={"consultation_id": str(consultation_id)})).json() == []
        await reason.fill("Bệnh nhân ngừng simvastatin trong 7 ngày dùng kháng sinh.")
        await page.get_by_role("button", name="Ký và phát hành đơn").click()
        await expect(page.locator("#rx-code")).to_have_text(re.compile(r"-c$"))
        [summary] = (await api.get("/prescriptions", params={"consultation_id": str(consultation_id)})).json()
        rx = (await api.get(f"/prescriptions/{summary['id']}")).json()
    assert rx["status"] == "issued" and [d["code"] for d in rx["diagnoses"]] == ["I10"]
    [blocking] = [f for f in rx["findings"] if f["blocks_signing"]]
    assert blocking["override_reason"] == "Bệnh nhân ngừng simvastatin trong 7 ngày dùng kháng sinh."

    await page.get_by_role("button", name="Kết thúc lượt khám").click()
    await expect(page.locator("#status")).to_have_text("Lượt khám đã kết thúc.")
    await expect(page.get_by_role("button", name="Kết thúc lượt khám")).to_have_count(0)
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id) == "completed"


async def test_the_console_speaks_english_when_chosen(browser: Browser, console_url: str) -> None:
    page = await new_page(browser, console_url, language="en")
    try:
        await page.goto("/console/doctor/")
        await expect(page.get_by_role("heading", name="Doctor sign-in")).to_be_visible()
        assert await page.locator("html").get_attribute("lang") == "en"
        await page.get_by_label("Username").fill("bs.lan")
        await page.get_by_label("Password").fill(demo_password("bs.lan"))
        await page.get_by_label("Authenticator code (6 digits)").fill(code("bs.lan"))
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Today's patients")).to_be_visible()
        await expect(page.get_by_text("No consultations today.")).to_be_visible()
    finally:
        await page.context.close()


async def test_a_new_doctor_enrols_an_authenticator_then_reaches_the_queue(
        page: Page, console_url: str, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=console_url, headers=await staff_headers(pool, settings, "admin")) as api:
        created = await api.post("/admin/accounts", json={
            "role": "doctor", "username": "bs.tam", "password": "mat-khau-Tam-2026", "full_name": "Lý Minh Tâm",
            "facility_code": "79026", "licence_number": "000789/HCM-CCHN"})
        assert created.status_code == 201, created.text
    await page.goto("/console/doctor/")
    await page.get_by_label("Tên đăng nhập").fill("bs.tam")
    await page.get_by_label("Mật khẩu").fill("mat-khau-Tam-2026")
    await page.get_by_role("button", name="Đăng nhập").click()  # no code: this account has no authenticator yet

    await expect(page.get_by_role("heading", name="Cài đặt ứng dụng xác thực")).to_be_visible()
    qr = page.get_by_role("img", name="Mã QR để thêm tài khoản vào ứng dụng xác thực")
    await expect(qr).to_be_visible()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await qr.element_handle())
    secret = (await page.locator("form code").text_content() or "").strip()
    await page.get_by_label("Mã 6 số trong ứng dụng").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Xác nhận").click()

    await expect(page.get_by_role("heading", name="Mã khôi phục")).to_be_visible()
    await expect(page.locator(".recovery li")).to_have_count(10)
    await page.get_by_role("button", name="Tiếp tục").click()
    await expect(page.get_by_role("heading", name="Bệnh nhân hôm nay")).to_be_visible()
    await expect(page.get_by_text("Đang đăng nhập: Lý Minh Tâm")).to_be_visible()


async def test_an_absent_patient_is_marked_no_show_from_the_queue(page: Page, pool: asyncpg.Pool) -> None:
    late = await make_consultation(pool, doctor_username="bs.minh", starts_in=timedelta(minutes=-12), minutes=8)
    upcoming = await make_consultation(pool, doctor_username="bs.minh", patient_phone=HUNG,
                                       starts_in=timedelta(minutes=1), minutes=15)
    await sign_in(page)
    absent = page.locator(f"tr[data-consultation='{late}']")
    await expect(absent).to_contain_text("Đã đặt, chưa vào")
    # only once the start has passed
    await expect(page.locator(f"tr[data-consultation='{upcoming}']")).to_contain_text("Bắt đầu khám")
    await expect(page.locator(f"tr[data-consultation='{upcoming}']").get_by_role("button")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    await absent.get_by_role("button", name="Đánh dấu vắng mặt").click()
    await expect(absent).to_contain_text("Vắng mặt")
    await expect(absent.get_by_role("button")).to_have_count(0)
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", late) == "no_show"
