"""Steps the browser tests share: signing in to the doctor console and the pharmacist page, picking from a
type-ahead, a patient waiting in bs.minh's queue, and the pharmacist's lookup and sale form."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from uuid import UUID

import asyncpg
import httpx
import pyotp
from playwright.async_api import Page, expect

from notifications.sms_sandbox import SmsSandbox
from tests.helpers import demo_password, demo_totp_secret, latest_otp

HUNG = "+84987654321"
LOT_EXPIRY = date.today() + timedelta(days=400)


def totp_code(username: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(demo_totp_secret(username)).at(time.time() + 30 * steps_ahead)


async def doctor_signs_in(page: Page, username: str = "bs.minh") -> None:
    await page.goto("/console/doctor/")
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(demo_password(username))
    await page.get_by_label("Mã xác thực (6 số từ ứng dụng xác thực)").fill(totp_code(username))
    await page.get_by_role("button", name="Đăng nhập").click()
    await expect(page.get_by_role("heading", name="Bệnh nhân hôm nay")).to_be_visible()


async def pick(page: Page, label: str, query: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label)
    await box.fill(query)
    await page.get_by_role("listbox", name=label).get_by_role("option", name=re.compile(option)).first.click()


async def waiting_patient(base_url: str, sms: SmsSandbox, pool: asyncpg.Pool) -> tuple[str, str]:
    """Lê Văn Hùng books bs.minh's first free slot through the API and checks in (returns the consultation id and
    his access token). Booking needs 30 minutes' notice
    and check-in opens 15 minutes before the start, so the booked slot is then moved to now (the clock is the
    only thing arranged in the database)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        assert (await http.post("/auth/otp/request", json={"phone": HUNG})).status_code == 202
        verified = await http.post("/auth/otp/verify", json={"phone": HUNG, "code": latest_otp(sms, HUNG)})
        patient = {"Authorization": f"Bearer {verified.json()['access_token']}"}
        minh = (await http.get("/doctors", params={"q": "Trần Quang Minh"})).json()["items"][0]["id"]
        slot = (await http.get(f"/doctors/{minh}/slots", params={"days": 2})).json()[0]
        booked = await http.post("/consultations", headers=patient, json={
            "doctor_id": minh, "starts_at": slot["starts_at"], "reason": "Đau đầu, huyết áp cao"})
        assert booked.status_code == 201, booked.text
        consultation_id: str = booked.json()["id"]
        await pool.execute("""UPDATE consultations SET slot = tstzrange(now() - interval '2 minutes',
                                                                         now() + interval '13 minutes')
                              WHERE id = $1""", UUID(consultation_id))
        checked_in = await http.post(f"/consultations/{consultation_id}/check-in", headers=patient)
        assert checked_in.json()["status"] == "waiting", checked_in.text
    return consultation_id, verified.json()["access_token"]


async def pharmacist_signs_in(page: Page) -> None:
    await page.goto("/console/pharmacy/")
    await page.get_by_label("Tên đăng nhập").fill("ds.hoa")
    await page.get_by_label("Mật khẩu").fill(demo_password("ds.hoa"))
    await page.get_by_label("Mã xác thực").fill(pyotp.TOTP(demo_totp_secret("ds.hoa")).now())
    await page.get_by_role("button", name="Đăng nhập", exact=True).click()
    await expect(page.locator("#who")).to_have_text("Phạm Thu Hoa · Nhà thuốc Liên Thông (demo)")


async def look_up(page: Page, code: str) -> None:
    await page.get_by_label("Mã đơn thuốc").fill(code)
    await page.get_by_role("button", name="Kiểm tra đơn").click()
    await expect(page.locator("#rx-title")).to_have_text(f"Đơn thuốc {code}")


async def fill_line(page: Page, position: int, quantity: int, lot: str, price: int) -> None:
    line = page.locator(f'fieldset[data-position="{position}"]')
    await line.get_by_label("Số lượng bán", exact=True).fill(str(quantity))
    if quantity:
        await line.get_by_label("Số lô", exact=True).fill(lot)
        await line.get_by_label("Hạn dùng", exact=True).fill(LOT_EXPIRY.isoformat())
        await line.get_by_label("Đơn giá (đ)", exact=True).fill(str(price))


async def remaining(page: Page) -> list[str]:
    return await page.locator("#rx-lines td.remaining").all_inner_texts()
