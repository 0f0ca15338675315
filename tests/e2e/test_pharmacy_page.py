"""The pharmacist's counter page against the real app: sign in with password and authenticator code, find a signed
prescription by typed code or by a photo of its QR, hold it, dispense it in two parts, take the payment by VNPay QR
and print the receipt."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from api import db
from api.settings import Settings
from eprescription.codes import new_code
from notifications.sms_sandbox import SmsSandbox
from payments.vnpay_sandbox import VnpaySandbox
from tests import conftest as base
from tests.e2e.conftest import screenshot
from tests.e2e.console_steps import LOT_EXPIRY, fill_line, look_up, remaining
from tests.e2e.console_steps import pharmacist_signs_in as sign_in
from tests.eprescription.prescribing import patient_headers
from tests.payments.journeys import SECRET, TMN, open_pay_page
from tests.pharmacy_link.dispensing_helpers import signed_prescription


@pytest.fixture
def vnpay() -> Iterator[VnpaySandbox]:
    with VnpaySandbox(terminals={TMN: SECRET}, retry_interval_s=0.05, ipn_timeout_s=5) as sandbox:
        yield sandbox


@pytest.fixture
def settings(database: db.DatabaseTarget, sms: SmsSandbox, tmp_path: Path, vnpay: VnpaySandbox) -> Settings:
    """The app's VNPay terminal is the sandbox, so a customer can pay the counter's QR in the test."""
    return replace(base.test_settings(database.app_dsn, sms.base_url, tmp_path),
                   vnpay_sandbox_port=int(vnpay.base_url.rsplit(":", 1)[1]))


@pytest.fixture
async def http(console_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=console_url) as client:
        yield client


async def prescription(http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, *,
                       lines: int = 2) -> dict[str, Any]:
    """bs.lan's signed prescription for Nguyễn Thị Mai: paracetamol 500 mg × 10 (and loratadin 10 mg × 5)."""
    return await signed_prescription(http, pool, settings, lines=lines)  # type: ignore[arg-type]


async def test_pharmacist_holds_and_dispenses_a_prescription_in_two_parts(
        page: Page, http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await prescription(http, pool, settings)
    await sign_in(page)
    await look_up(page, rx["code"])
    await expect(page.locator("#rx-status")).to_have_text("Chưa bán")
    await expect(page.locator("#prescription")).to_contain_text("Nguyễn Thị Mai")
    await expect(page.locator("#prescription")).to_contain_text("Nguyễn Thị Lan")
    assert await remaining(page) == ["10 viên", "5 viên"]
    await screenshot(page, "pharmacy-verify")

    await page.get_by_role("button", name="Giữ đơn").click()
    await expect(page.locator("#hold-state")).to_contain_text("Nhà thuốc của bạn đang giữ đơn đến")
    await expect(page.locator("#rx-status")).to_have_text("Đang được nhà thuốc giữ")
    assert await page.get_by_role("button", name="Trả đơn").is_visible()

    # part of paracetamol only; loratadin waits for later
    await fill_line(page, 1, 4, "PA2401", 1500)
    await fill_line(page, 2, 0, "", 0)
    await page.get_by_role("button", name="Bán thuốc", exact=True).click()
    await expect(page.locator("#sale-done")).to_have_text("Đã bán. Tổng tiền 6.000\xa0₫.")
    await expect(page.locator("#rx-status")).to_have_text("Đã bán một phần")
    assert await remaining(page) == ["6 viên", "5 viên"]
    # the form now offers what is left
    await expect(page.locator('fieldset[data-position="1"]').get_by_label("Số lượng bán")).to_have_value("6")
    await screenshot(page, "pharmacy-dispense")

    await fill_line(page, 1, 6, "PA2401", 1500)
    await fill_line(page, 2, 5, "LO2402", 3000)
    await page.get_by_role("button", name="Bán thuốc", exact=True).click()
    await expect(page.locator("#sale-done")).to_have_text("Đã bán. Tổng tiền 24.000\xa0₫.")
    await expect(page.locator("#rx-status")).to_have_text("Đã bán đủ")
    assert await remaining(page) == ["0 viên", "0 viên"]
    await expect(page.locator("#dispense")).to_be_hidden()

    rx_id = UUID(rx["id"])
    assert await pool.fetchval("SELECT status FROM prescriptions WHERE id = $1", rx_id) == "dispensed"
    lines = await pool.fetch("SELECT position, quantity, dispensed_quantity FROM prescription_lines "
                             "WHERE prescription_id = $1 ORDER BY position", rx_id)
    assert [tuple(r) for r in lines] == [(1, 10, 10), (2, 5, 5)]
    sold = await pool.fetch(
        """SELECT d.total_vnd, d.idempotency_key, l.position, l.quantity, l.lot_number, l.expiry_date,
                  l.unit_price_vnd
           FROM dispenses d JOIN dispense_lines l ON l.dispense_id = d.id
           WHERE d.prescription_id = $1 ORDER BY d.created_at, l.position""", rx_id)
    assert [(r["total_vnd"], r["position"], r["quantity"], r["lot_number"], r["expiry_date"], r["unit_price_vnd"])
            for r in sold] == [(6000, 1, 4, "PA2401", LOT_EXPIRY, 1500), (24000, 1, 6, "PA2401", LOT_EXPIRY, 1500),
                               (24000, 2, 5, "LO2402", LOT_EXPIRY, 3000)]
    assert len({r["idempotency_key"] for r in sold}) == 2  # one key per sale


async def test_a_sale_made_by_mistake_is_voided_from_the_counter(
        page: Page, http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await prescription(http, pool, settings)
    await sign_in(page)
    await look_up(page, rx["code"])
    await fill_line(page, 1, 4, "PA2401", 1500)
    await fill_line(page, 2, 0, "", 0)
    await page.get_by_role("button", name="Bán thuốc", exact=True).click()
    await expect(page.locator("#rx-status")).to_have_text("Đã bán một phần")

    await page.get_by_text("Huỷ lần bán này (bán nhầm)").click()
    reason = page.get_by_label("Lý do huỷ (ít nhất 5 ký tự)")
    await reason.fill("sai")
    await page.get_by_role("button", name="Huỷ lần bán", exact=True).click()
    await expect(reason).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#void-reason-error")).to_have_text("Nhập lý do huỷ, ít nhất 5 ký tự.")
    await reason.fill("Bán nhầm số lượng, khách chỉ lấy 2 viên")
    await page.get_by_role("button", name="Huỷ lần bán", exact=True).click()
    await expect(page.locator("#sale-done")).to_contain_text("Đã huỷ lần bán này")
    await expect(page.locator("#rx-status")).to_have_text("Chưa bán")
    assert await remaining(page) == ["10 viên", "5 viên"]
    await expect(page.locator("#void-sale")).to_have_count(0)

    rx_id = UUID(rx["id"])
    voided = await pool.fetchrow("SELECT voided_at, void_reason FROM dispenses WHERE prescription_id = $1", rx_id)
    assert voided["voided_at"] is not None and voided["void_reason"] == "Bán nhầm số lượng, khách chỉ lấy 2 viên"
    assert await pool.fetchval("SELECT sum(dispensed_quantity) FROM prescription_lines WHERE prescription_id = $1",
                               rx_id) == 0


async def test_substitution_needs_the_buyers_consent_shown_next_to_the_checkbox(
        page: Page, http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await prescription(http, pool, settings, lines=1)
    generic = await pool.fetchval(
        """INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, atc_code, trade_names, source_code,
                              source_ref)
           VALUES ('Paracetamol', '{paracetamol}', '500mg', 'viên nén sủi', 'oral', 'N02BE01', '{Hapacol}',
                   'lienthong-demo-seed', 'e2e generic') RETURNING id""")
    await sign_in(page)
    await look_up(page, rx["code"])
    line = page.locator('fieldset[data-position="1"]')
    await line.locator("summary").click()
    await line.get_by_label("Tìm thuốc thay thế").fill("Hapacol")
    await line.get_by_role("button", name="Tìm").click()
    substitute = line.get_by_label("Thuốc thay thế", exact=True)
    await expect(substitute.locator(f'option[value="{generic}"]')).to_have_count(1)
    await substitute.select_option(str(generic))
    await fill_line(page, 1, 10, "HA2403", 1800)
    await page.get_by_role("button", name="Bán thuốc", exact=True).click()
    await expect(page.locator("#consent-1-error")).to_have_text("Substitution needs the buyer's consent (PH-4).")
    await expect(page.locator("#dispense-error [role=alert]")).to_contain_text("Phiếu bán vi phạm quy định bán thuốc")

    await line.get_by_label("Người mua đồng ý thay thế").check()
    await page.get_by_role("button", name="Bán thuốc", exact=True).click()
    await expect(page.locator("#sale-lines")).to_contain_text("Paracetamol 500mg viên nén sủi (Hapacol) (thay thế)")
    await expect(page.locator("#rx-status")).to_have_text("Đã bán đủ")
    sold = await pool.fetchrow("""SELECT l.drug_id, l.substituted, l.buyer_consent FROM dispense_lines l
                                  JOIN dispenses d ON d.id = l.dispense_id WHERE d.prescription_id = $1""",
                               UUID(rx["id"]))
    assert sold is not None
    assert (sold["drug_id"], sold["substituted"], sold["buyer_consent"]) == (generic, True, True)


async def test_a_photo_of_the_prescription_qr_opens_it(
        page: Page, http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, tmp_path: Path) -> None:
    rx = await prescription(http, pool, settings, lines=1)
    png = await http.get(f"/prescriptions/{rx['id']}/qr.png", headers=await patient_headers(pool, settings,
                                                                                          "+84912345678"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    photo = tmp_path / "don-thuoc.png"
    photo.write_bytes(png.content)

    await sign_in(page)
    await page.get_by_label("Tải ảnh chụp mã QR").set_input_files(photo)
    await expect(page.locator("#rx-title")).to_have_text(f"Đơn thuốc {rx['code']}")
    await expect(page.get_by_label("Mã đơn thuốc")).to_have_value(rx["code"])
    assert await remaining(page) == ["10 viên"]
    # the page sent the QR itself, so the server checked the prescriber's signature over the code
    verified = await pool.fetchval(
        "SELECT details FROM audit_log WHERE action = 'prescription.verified' AND target_id = $1", rx["id"])
    assert verified["by"] == "qr"


# Stands in for the counter's webcam: a grey picture, and after a while the prescription's QR held up in it. The
# page's own video element, canvas sampling and the server's decoder run for real.
FAKE_CAMERA = """
navigator.mediaDevices.getUserMedia = async () => {
  const qr = new Image();
  qr.src = window.QR_PNG;
  await qr.decode();
  const canvas = Object.assign(document.createElement("canvas"), { width: 640, height: 480 });
  const context = canvas.getContext("2d");
  const shownFrom = Date.now() + 1200;
  setInterval(() => {
    context.fillStyle = "#8a8a8a";
    context.fillRect(0, 0, 640, 480);
    if (Date.now() > shownFrom) context.drawImage(qr, 170, 90, 300, 300);
  }, 50);
  return canvas.captureStream(20);
};
"""


async def test_the_camera_samples_frames_until_the_qr_appears(
        page: Page, http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings) -> None:
    rx = await prescription(http, pool, settings, lines=1)
    png = await http.get(f"/prescriptions/{rx['id']}/qr.png", headers=await patient_headers(pool, settings,
                                                                                          "+84912345678"))
    await page.add_init_script(f"window.QR_PNG = 'data:image/png;base64,{base64.b64encode(png.content).decode()}';"
                               + FAKE_CAMERA)
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if r.url.endswith("/dispensing/qr-scan") else None)
    await sign_in(page)
    await page.get_by_role("button", name="Quét bằng camera").click()
    await expect(page.locator("#scan-status")).to_have_text("Đang tìm mã QR… đưa mã QR vào giữa khung hình.")
    await expect(page.get_by_role("button", name="Dừng camera")).to_be_visible()
    await expect(page.locator("#rx-title")).to_have_text(f"Đơn thuốc {rx['code']}")
    assert answers[0] == 422 and answers[-1] == 200  # looked at grey frames first, then found the QR
    await expect(page.locator("#camera")).to_be_hidden()  # the camera stops once the code is found
    await expect(page.get_by_role("button", name="Quét bằng camera")).to_be_visible()


async def test_a_photo_without_a_qr_and_a_wrong_code_show_the_problem_next_to_the_input(
        page: Page, tmp_path: Path) -> None:
    await sign_in(page)
    blank = tmp_path / "blank.png"
    blank.write_bytes(await page.screenshot())  # the page itself: no QR code in it
    await page.get_by_label("Tải ảnh chụp mã QR").set_input_files(blank)
    await expect(page.locator("#scan-error")).to_contain_text("Không tìm thấy mã QR trong ảnh")
    await expect(page.locator("#scan-error")).to_contain_text("No readable QR code in the picture")

    unknown = str(new_code("79026", "c"))
    await page.get_by_label("Mã đơn thuốc").fill(unknown)
    await page.get_by_role("button", name="Kiểm tra đơn").click()
    alert = page.locator("#verify-error [role=alert]")
    await expect(alert).to_contain_text("Không tìm thấy đơn thuốc")
    await expect(alert).to_contain_text(f"No prescription has the code {unknown}")  # the API's own words
    await expect(page.get_by_label("Mã đơn thuốc")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#prescription")).to_be_hidden()

    await page.get_by_label("Mã đơn thuốc").fill("không phải mã")
    await page.get_by_role("button", name="Kiểm tra đơn").click()
    await expect(alert).to_contain_text("Dữ liệu chưa hợp lệ")


async def test_receipt_and_vnpay_qr_for_a_sale_paid_at_the_counter(
        page: Page, http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, vnpay: VnpaySandbox,
        console_url: str) -> None:
    vnpay.register_ipn_url(TMN, f"{console_url}/payments/vnpay/ipn")
    rx = await prescription(http, pool, settings, lines=1)
    await sign_in(page)
    await look_up(page, rx["code"])
    await fill_line(page, 1, 10, "PA2401", 2500)
    await page.get_by_role("button", name="Bán thuốc", exact=True).click()
    await expect(page.locator("#sale-done")).to_have_text("Đã bán. Tổng tiền 25.000\xa0₫.")

    await page.get_by_role("button", name="Thanh toán VNPay QR").click()
    await expect(page.get_by_role("img", name="Mã QR VNPay để khách quét")).to_be_visible()
    await page.wait_for_function("() => document.getElementById('payment-qr').naturalWidth > 0")  # the SVG rendered
    await expect(page.locator("#payment-amount")).to_have_text("25.000\xa0₫")
    await expect(page.locator("#payment-status")).to_have_text("Đang chờ khách thanh toán…")
    await screenshot(page, "pharmacy-payment")
    # the customer pays on VNPay's page; VNPay tells the server; the counter sees it on its next poll
    pay_url = await page.get_by_role("link", name="Mở trang thanh toán").get_attribute("href")
    assert pay_url
    txn_ref = await open_pay_page(pay_url)
    vnpay.complete(txn_ref, "success")
    vnpay.wait_for_ipn(txn_ref)
    await expect(page.locator("#payment-status")).to_have_text("Đã thanh toán", timeout=10_000)
    await expect(page.locator("#payment-qr")).to_be_hidden()
    assert await pool.fetchval("SELECT status FROM payments WHERE txn_ref = $1", txn_ref) == "paid"

    await page.get_by_role("button", name="Xem phiếu in").click()
    receipt = page.locator("#receipt")
    await expect(receipt.get_by_role("heading", name="PHIẾU BÁN THUỐC THEO ĐƠN")).to_be_visible()
    for text in ("Nhà thuốc Liên Thông (demo)", "220 Hồng Bàng", rx["code"], "PA2401", "Paracetamol 500 mg",
                 "25.000\xa0₫", "Đã thanh toán qua VNPay", "Phạm Thu Hoa"):
        await expect(receipt).to_contain_text(text)
    sold_at = await pool.fetchval("SELECT created_at FROM dispenses WHERE prescription_id = $1", UUID(rx["id"]))
    shown = await page.evaluate(
        """iso => new Intl.DateTimeFormat('vi-VN', {timeZone: 'Asia/Ho_Chi_Minh', dateStyle: 'short',
                                                     timeStyle: 'short'}).format(new Date(iso))""",
        sold_at.isoformat())
    await expect(receipt).to_contain_text(shown)
    await expect(page.locator("#lookup")).to_be_hidden()
    await screenshot(page, "pharmacy-receipt")
    await page.emulate_media(media="print")
    await expect(page.get_by_role("button", name="In phiếu")).to_be_hidden()
    await expect(receipt.locator("#receipt-lines")).to_be_visible()


async def test_an_expired_session_returns_to_sign_in_with_a_message(page: Page) -> None:
    await page.goto("/console/pharmacy/")
    await page.evaluate("""sessionStorage.setItem('lienthong.session.pharmacy', JSON.stringify(
        {accessToken: 'expired.token.value', refreshToken: 'a-refresh-token-that-was-revoked-long-ago',
         name: 'Phạm Thu Hoa'}))""")
    await page.reload()
    await page.get_by_label("Mã đơn thuốc").fill("79026a1b2c3d4-c")
    await page.get_by_role("button", name="Kiểm tra đơn").click()
    await expect(page.locator("#sign-in-message")).to_have_text("Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại.")
    await expect(page.get_by_label("Tên đăng nhập")).to_be_focused()
    assert await page.evaluate("sessionStorage.getItem('lienthong.session.pharmacy')") is None


async def test_the_page_speaks_english_when_chosen(page: Page) -> None:
    await page.goto("/console/pharmacy/")
    async with page.expect_navigation():
        await page.select_option("#language-select", "en")
    await expect(page.get_by_role("heading", name="Pharmacist sign-in")).to_be_visible()
    assert await page.get_by_label("Authenticator code").is_visible()
