"""Paying through the real HTTP app (its own process) and the VNPay sandbox: the sandbox's IPN reaches the app over
HTTP, the browser's Return is only shown, reconciliation asks querydr, refunds go to the sandbox."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from payments import reconcile
from payments.service import vnpay_config
from payments.vnpay import VnpayClient, canonical, sign
from payments.vnpay_sandbox import VnpaySandbox
from tests.eprescription.prescribing import staff_headers
from tests.payments.journeys import SECRET, TMN, auth, book_paid, open_pay_page, opened_payment, start_payment
from tests.pharmacy_link.dispensing_helpers import key, sale, signed_prescription

pytestmark = pytest.mark.usefixtures("demo")


async def status_of(pool: asyncpg.Pool, consultation_id: str) -> str:
    status: str = await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation_id)
    return status


async def payment_row(pool: asyncpg.Pool, txn_ref: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM payments WHERE txn_ref = $1", txn_ref)
    assert row is not None
    return dict(row)


def client_for(settings: Settings) -> VnpayClient:
    return VnpayClient(vnpay_config(settings))


async def test_book_pay_ipn_confirms_the_booking_and_return_shows_it(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        patient, consultation = await book_paid(http, pool, settings)
        payment = await start_payment(http, patient, consultation["id"])
        assert payment["amount_vnd"] == 150_000 and payment["status"] == "pending"
        again = await start_payment(http, patient, consultation["id"])  # the same open attempt, not a second one
        assert again["id"] == payment["id"]
        txn_ref = await open_pay_page(payment["pay_url"])
        return_query = vnpay.complete(txn_ref, "success")
        calls = vnpay.wait_for_ipn(txn_ref)
        assert [c.result for c in calls] == ["00"]
        assert await status_of(pool, consultation["id"]) == "booked"
        shown = await http.get(f"/payments/vnpay/return?{return_query}", headers={"accept": "application/json"})
        assert shown.json()["signature_valid"] is True
        assert shown.json()["payment"]["status"] == "paid"
        page = await http.get(f"/payments/vnpay/return?{return_query}")
        assert "Thanh toán thành công" in page.text
    row = await payment_row(pool, txn_ref)
    assert row["status"] == "paid" and row["vnp_transaction_no"] and row["paid_at"] is not None
    transitions = await pool.fetch("SELECT from_status, to_status, source, gateway_data FROM payment_transitions "
                                   "WHERE payment_id = $1 ORDER BY id", row["id"])
    assert [(t["from_status"], t["to_status"], t["source"]) for t in transitions] == [
        ("new", "pending", "api"), ("pending", "paid", "ipn")]
    assert transitions[1]["gateway_data"]["vnp_TxnRef"] == txn_ref
    assert "vnp_SecureHash" not in transitions[1]["gateway_data"]
    notices = {r["kind"] for r in await pool.fetch("SELECT kind FROM notification_outbox")}
    assert {"appointment_booked", "payment_confirmed"} <= notices  # announced once paid, not at booking


async def test_return_before_ipn_shows_pending_and_never_changes_state(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _payment, txn_ref = await opened_payment(http, pool, settings)
        vnpay.ipn_mode(txn_ref, "drop")
        return_query = vnpay.complete(txn_ref, "success")
        for _ in range(3):  # however often the browser comes back, only VNPay's IPN or querydr decide
            shown = await http.get(f"/payments/vnpay/return?{return_query}", headers={"accept": "application/json"})
            assert shown.json()["payment"]["status"] == "pending"
        assert "refresh" in (await http.get(f"/payments/vnpay/return?{return_query}")).text
    assert await status_of(pool, consultation["id"]) == "awaiting_payment"


async def test_customer_cancels_at_vnpay_then_pays_with_a_new_attempt(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        patient, consultation = await book_paid(http, pool, settings)
        first = await start_payment(http, patient, consultation["id"])
        first_ref = await open_pay_page(first["pay_url"])
        vnpay.complete(first_ref, "cancel")
        assert [c.result for c in vnpay.wait_for_ipn(first_ref)] == ["00"]
        assert (await payment_row(pool, first_ref))["status"] == "failed"
        assert await status_of(pool, consultation["id"]) == "awaiting_payment"
        second = await start_payment(http, patient, consultation["id"])
        assert second["id"] != first["id"]
        second_ref = await open_pay_page(second["pay_url"])
        vnpay.complete(second_ref, "success")
        vnpay.wait_for_ipn(second_ref)
    assert await status_of(pool, consultation["id"]) == "booked"


async def test_patient_cancelling_before_paying_is_never_charged(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        patient, consultation = await book_paid(http, pool, settings)
        cancelled = await http.post(f"/consultations/{consultation['id']}/cancel",
                                    headers=auth(patient["access_token"]), json={"reason": "Đổi lịch"})
        assert cancelled.status_code == 200, cancelled.text
        refused = await http.post(f"/payments/consultations/{consultation['id']}",
                                  headers=auth(patient["access_token"]))
        assert refused.status_code == 409
        assert refused.json()["type"] == "/problems/payment-not-needed"
    assert await pool.fetchval("SELECT count(*) FROM payments") == 0
    assert vnpay.payments() == []


async def test_doctor_cancelling_a_paid_booking_refunds_it(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
        vnpay.complete(txn_ref, "success")
        vnpay.wait_for_ipn(txn_ref)
        doctor = await staff_headers(pool, settings, "bs.lan")
        cancelled = await http.post(f"/consultations/{consultation['id']}/cancel", headers=doctor,
                                    json={"reason": "Bác sĩ bận đột xuất"})
        assert cancelled.status_code == 200, cancelled.text
    assert (await payment_row(pool, txn_ref))["status"] == "refund_pending"
    client = client_for(settings)
    try:
        assert await reconcile.process_refunds(pool, settings, client) == 1  # sent: VNPay accepted it
        await pool.execute("UPDATE payment_refunds SET next_attempt_at = now()")
        assert await reconcile.process_refunds(pool, settings, client) == 1  # querydr: done
    finally:
        client.close()
    row = await payment_row(pool, txn_ref)
    assert (row["status"], row["refunded_vnd"]) == ("refunded", 150_000)
    assert vnpay.payments(txn_ref)[0].refunded_vnd == 150_000


async def test_doctor_who_never_starts_the_call_is_refunded_by_the_worker(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    from consultations import service as consultations

    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
        vnpay.complete(txn_ref, "success")
        vnpay.wait_for_ipn(txn_ref)
    # the patient waited in the room; the doctor never came and the slot is over
    await pool.execute("""UPDATE consultations SET status = 'waiting', checked_in_at = now() - interval '2 hours',
                          slot = tstzrange(now() - interval '2 hours', now() - interval '1 hour')""")
    assert await consultations.settle_no_shows(pool, settings) == 1
    assert await status_of(pool, consultation["id"]) == "cancelled_by_doctor"
    assert (await payment_row(pool, txn_ref))["status"] == "refund_pending"
    assert await pool.fetchval("SELECT reason FROM payment_refunds") == "the doctor did not come"


async def test_reconciliation_settles_a_payment_whose_ipn_never_came(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "drop")
    vnpay.complete(txn_ref, "success")
    client = client_for(settings)
    try:
        assert await reconcile.settle_overdue(pool, settings, client) == 0  # still inside its window: not asked
        await pool.execute("UPDATE payments SET settle_after = now() - interval '1 second'")
        assert await reconcile.settle_overdue(pool, settings, client) == 1
    finally:
        client.close()
    assert (await payment_row(pool, txn_ref))["status"] == "paid"
    assert await status_of(pool, consultation["id"]) == "booked"
    source = await pool.fetchval("SELECT source FROM payment_transitions WHERE to_status = 'paid'")
    assert source == "querydr"


async def test_unpaid_booking_is_released_only_after_vnpay_confirms_nothing_was_paid(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    from consultations import service as consultations

    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
        # the customer walked away from VNPay's page; the deadline and the window pass
        await pool.execute("UPDATE consultations SET payment_due_at = now() - interval '1 second'")
        assert await consultations.release_unpaid(pool, settings) == 0  # an attempt is open: ask VNPay first
        await pool.execute("UPDATE payments SET settle_after = now() - interval '1 second'")
        client = client_for(settings)
        try:
            await reconcile.settle_overdue(pool, settings, client)
        finally:
            client.close()
        assert (await payment_row(pool, txn_ref))["status"] == "expired"
        assert await consultations.release_unpaid(pool, settings) == 1
        assert await status_of(pool, consultation["id"]) == "payment_expired"
        # the slot is free again: another patient books it
        _, rebooked = await book_paid(http, pool, settings)
        assert rebooked["starts_at"] == consultation["starts_at"]


async def test_money_arriving_after_the_booking_was_released_is_refunded(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, _consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "drop")
    vnpay.complete(txn_ref, "success")
    # we closed the attempt as expired (as if VNPay had not known it yet), the booking was released...
    await pool.execute("UPDATE payments SET status = 'expired'")
    await pool.execute("UPDATE consultations SET status = 'payment_expired'")
    # ...then VNPay's late IPN says the customer paid after all (signed as the sandbox signs it)
    row = vnpay.payments(txn_ref)[0]
    result = {"vnp_Amount": str(row.amount_vnd * 100), "vnp_BankCode": "NCB", "vnp_CardType": "ATM",
              "vnp_OrderInfo": row.order_info, "vnp_PayDate": row.create_date, "vnp_ResponseCode": "00",
              "vnp_TmnCode": TMN, "vnp_TransactionNo": row.transaction_no, "vnp_TransactionStatus": "00",
              "vnp_TxnRef": txn_ref}
    async with httpx.AsyncClient(base_url=api) as http:
        answer = await http.get(f"/payments/vnpay/ipn?{canonical(result)}&vnp_SecureHash={sign(result, SECRET)}")
    assert answer.json() == {"RspCode": "02", "Message": "Order already confirmed"}
    payment = await payment_row(pool, txn_ref)
    assert payment["status"] == "refund_pending"
    assert (await pool.fetchval("SELECT reason FROM payment_refunds")).startswith("paid after")


async def test_twenty_concurrent_duplicate_ipns_change_state_once(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, _consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "duplicate", copies=20)
    vnpay.complete(txn_ref, "success")
    calls = vnpay.wait_for_ipn(txn_ref, timeout_s=30)
    answers = [c.result for c in calls]
    assert len(answers) == 20
    assert set(answers) <= {"00", "02"} and answers.count("00") == 1
    assert await pool.fetchval("SELECT count(*) FROM payment_transitions WHERE to_status = 'paid'") == 1
    assert await pool.fetchval("SELECT count(*) FROM consultation_events WHERE kind = 'payment_confirmed'") == 1
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox WHERE kind = 'payment_confirmed'") == 1


async def test_forged_ipn_is_97_and_changes_nothing(api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool,
                                                    settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "bad_signature")
    vnpay.complete(txn_ref, "success")
    calls = vnpay.wait_for_ipn(txn_ref, timeout_s=30)
    assert {c.result for c in calls} == {"97"} and len(calls) == 10  # VNPay retried 10 times, then gave up
    assert (await payment_row(pool, txn_ref))["status"] == "pending"
    assert await status_of(pool, consultation["id"]) == "awaiting_payment"
    logged = await pool.fetch("SELECT signature_valid, answer, query FROM vnpay_callbacks WHERE channel = 'ipn'")
    assert len(logged) == 10 and not any(r["signature_valid"] for r in logged)
    assert all("SecureHash" not in r["query"] for r in logged)


async def test_wrong_amount_is_04_and_the_booking_is_not_confirmed(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "tamper_amount")
    vnpay.complete(txn_ref, "success")
    assert {c.result for c in vnpay.wait_for_ipn(txn_ref, timeout_s=30)} == {"04"}
    row = await payment_row(pool, txn_ref)
    assert row["status"] == "needs_review" and "differs" in row["review_reason"]
    assert await status_of(pool, consultation["id"]) == "awaiting_payment"


async def test_ipn_for_an_unknown_txn_ref_is_01(api: str, pool: asyncpg.Pool) -> None:
    result = {"vnp_Amount": "15000000", "vnp_BankCode": "NCB", "vnp_OrderInfo": "Thanh toan",
              "vnp_ResponseCode": "00", "vnp_TmnCode": TMN, "vnp_TransactionNo": "14226112",
              "vnp_TransactionStatus": "00",
              "vnp_TxnRef": "LTNOSUCHATTEMPT0000000"}
    async with httpx.AsyncClient(base_url=api) as http:
        answer = await http.get(f"/payments/vnpay/ipn?{canonical(result)}&vnp_SecureHash={sign(result, SECRET)}")
        empty = await http.get("/payments/vnpay/ipn")
    assert answer.status_code == 200 and answer.json()["RspCode"] == "01"
    assert empty.json()["RspCode"] == "99"


async def test_pharmacy_counter_payment_by_qr(api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool,
                                              settings: Settings) -> None:
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(create_app(settings)) as client:  # arranging the sale in-process is enough
        rx = await signed_prescription(client, pool, settings, lines=1)
        pharmacist = await staff_headers(pool, settings, "ds.hoa")
        sold = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses",
                                 headers={**pharmacist, **key()}, json=sale((1, 10)))
        assert sold.status_code == 201, sold.text
    dispense = sold.json()
    async with httpx.AsyncClient(base_url=api) as http:
        started = await http.post(f"/payments/dispenses/{dispense['id']}", headers=pharmacist)
        assert started.status_code == 201, started.text
        payment = started.json()
        assert payment["amount_vnd"] == dispense["total_vnd"] == 20_000
        assert payment["qr_svg"].startswith("<svg") and "xmlns=" in payment["qr_svg"]  # an <img> needs it
        txn_ref = await open_pay_page(payment["pay_url"])
        vnpay.complete(txn_ref, "success")
        vnpay.wait_for_ipn(txn_ref)
        seen = await http.get(f"/payments/{payment['id']}", headers=pharmacist)
        assert seen.json()["status"] == "paid" and seen.json()["pay_url"] is None
        from tests.pharmacy_link.dispensing_helpers import other_pharmacist
        _, other = await other_pharmacist(pool, settings)
        assert (await http.get(f"/payments/{payment['id']}", headers=other)).status_code == 404
        again = await http.post(f"/payments/dispenses/{dispense['id']}", headers=pharmacist)
        assert again.status_code == 409
        # the sale was a mistake: voiding it gives the customer's money back
        voided = await http.post(f"/dispensing/dispenses/{dispense['id']}/void", headers=pharmacist,
                                 json={"reason": "Nhầm thuốc"})
        assert voided.status_code == 200, voided.text
    assert (await payment_row(pool, txn_ref))["status"] == "refund_pending"


async def test_a_payment_started_from_a_peer_without_an_ip_address_still_gets_a_pay_url(
        vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    # behind a unix socket with no proxy header (here: the in-process test client, peer "testclient") the
    # customer's address is unknown; the payment must still start, with loopback as vnp_IpAddr
    from urllib.parse import parse_qs, urlsplit

    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(create_app(settings)) as client:
        rx = await signed_prescription(client, pool, settings, lines=1)
        pharmacist = await staff_headers(pool, settings, "ds.hoa")
        sold = await client.post(f"/dispensing/prescriptions/{rx['code']}/dispenses",
                                 headers={**pharmacist, **key()}, json=sale((1, 10)))
        started = await client.post(f"/payments/dispenses/{sold.json()['id']}", headers=pharmacist)
    assert started.status_code == 201, started.text
    assert parse_qs(urlsplit(started.json()["pay_url"]).query)["vnp_IpAddr"] == ["127.0.0.1"]


async def test_admin_partial_then_full_refund_and_over_refund_is_refused(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        patient, _consultation, payment, txn_ref = await opened_payment(http, pool, settings)
        vnpay.complete(txn_ref, "success")
        vnpay.wait_for_ipn(txn_ref)
        admin = await staff_headers(pool, settings, "admin")
        url = f"/payments/{payment['id']}/refunds"
        assert (await http.post(url, headers=auth(patient["access_token"]),
                                json={"reason": "x"})).status_code == 403
        too_much = await http.post(url, headers=admin, json={"reason": "Hoàn tiền", "amount_vnd": 150_001})
        assert too_much.status_code == 422 and too_much.json()["errors"][0]["path"] == "body.amount_vnd"
        partial = await http.post(url, headers=admin, json={"reason": "Hoàn một phần", "amount_vnd": 50_000})
        assert partial.status_code == 202, partial.text
        busy = await http.post(url, headers=admin, json={"reason": "Hoàn nữa"})
        assert busy.status_code == 409  # one refund in flight at a time
        client = client_for(settings)
        try:
            for _ in range(2):
                await reconcile.process_refunds(pool, settings, client)
                await pool.execute("UPDATE payment_refunds SET next_attempt_at = now()")
            assert (await payment_row(pool, txn_ref))["status"] == "partially_refunded"
            rest = await http.post(url, headers=admin, json={"reason": "Hoàn phần còn lại"})
            assert rest.status_code == 202
            for _ in range(2):
                await reconcile.process_refunds(pool, settings, client)
                await pool.execute("UPDATE payment_refunds SET next_attempt_at = now()")
        finally:
            client.close()
    row = await payment_row(pool, txn_ref)
    assert (row["status"], row["refunded_vnd"]) == ("refunded", 150_000)


async def test_querydr_rate_limit_pauses_every_worker(api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool,
                                                      settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        refs = []
        for skip in range(2):
            refs.append((await opened_payment(http, pool, settings, skip=skip))[3])
    for ref in refs:
        vnpay.ipn_mode(ref, "drop")
        vnpay.complete(ref, "success")
    vnpay.querydr_min_interval_s = 300
    await pool.execute("UPDATE payments SET settle_after = now() - interval '1 second'")
    client = client_for(settings)
    try:
        assert await reconcile.settle_overdue(pool, settings, client) == 1  # the second call was answered 94
        await pool.execute("UPDATE payments SET next_check_at = NULL")
        assert await reconcile.settle_overdue(pool, settings, client) == 0  # paused: not even asked
    finally:
        client.close()
    assert await pool.fetchval("SELECT not_before > now() + interval '4 minutes' FROM gateway_backoff")
    assert sorted([(await payment_row(pool, r))["status"] for r in refs]) == ["paid", "pending"]


async def test_admin_reconciliation_report_lists_what_needs_a_person(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        patient, _consultation, _, txn_ref = await opened_payment(http, pool, settings)
        vnpay.complete(txn_ref, "suspected_fraud")
        vnpay.wait_for_ipn(txn_ref)
        admin = await staff_headers(pool, settings, "admin")
        report = (await http.get("/admin/payments/reconciliation", headers=admin)).json()
        assert (await http.get("/admin/payments/reconciliation",
                               headers=auth(patient["access_token"]))).status_code == 403
    [item] = report["needs_review"]
    assert item["payment"]["txn_ref"] == txn_ref and "07" in item["problem"]
