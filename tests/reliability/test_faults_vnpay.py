"""VNPay faults that tests/payments does not already cover (it has duplicate and concurrent IPNs, a missing IPN
settled by querydr, and querydr's rate limit): an IPN arriving after reconciliation already settled the payment, and
querydr failing (HTTP 5xx, an unreachable API, an error code) before it answers. Payments converge to the state
VNPay holds, each transition recorded once."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api import db
from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from payments import reconcile
from payments.service import vnpay_config
from payments.vnpay import VnpayClient
from payments.vnpay_sandbox import VnpaySandbox
from tests.conftest import free_port
from tests.conftest import test_settings as settings_of
from tests.payments.journeys import SECRET, TMN, opened_payment

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
def vnpay() -> Iterator[VnpaySandbox]:
    with VnpaySandbox(terminals={TMN: SECRET}, retry_interval_s=0.05, ipn_timeout_s=5) as sandbox:
        yield sandbox


@pytest.fixture
def settings(database: db.DatabaseTarget, sms: SmsSandbox, tmp_path: Path, vnpay: VnpaySandbox) -> Settings:
    return replace(settings_of(database.app_dsn, sms.base_url, tmp_path),
                   vnpay_sandbox_port=int(vnpay.base_url.rsplit(":", 1)[1]))


@pytest.fixture
def api(live_server: str, vnpay: VnpaySandbox) -> str:
    vnpay.register_ipn_url(TMN, f"{live_server}/payments/vnpay/ipn")
    return live_server


class _Broken(BaseHTTPRequestHandler):
    """VNPay's merchant API having a bad day: 502 from its gateway, or a 200 whose code is 99 (unknown error)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.mode == "502":  # type: ignore[attr-defined]
            self.send_response(502)
            self.end_headers()
            self.wfile.write(b"<html>Bad Gateway</html>")
            return
        body = b'{"vnp_ResponseId":"x","vnp_Command":"querydr","vnp_ResponseCode":"99","vnp_Message":"Unknown"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken_api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    server.mode = "502"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def _payment(pool: asyncpg.Pool, txn_ref: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM payments WHERE txn_ref = $1", txn_ref)
    assert row is not None
    return dict(row)


async def _transitions(pool: asyncpg.Pool, txn_ref: str) -> list[tuple[str, str]]:
    return [(r["to_status"], r["source"]) for r in await pool.fetch(
        """SELECT t.to_status, t.source FROM payment_transitions t JOIN payments p ON p.id = t.payment_id
           WHERE p.txn_ref = $1 AND t.to_status <> 'pending' ORDER BY t.id""", txn_ref)]


async def test_ipn_arriving_after_querydr_settled_the_payment_is_acknowledged_and_changes_nothing(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "late", delay_s=2.0)
    vnpay.complete(txn_ref, "success")
    await pool.execute("UPDATE payments SET settle_after = now() - interval '1 second' WHERE txn_ref = $1", txn_ref)
    client = VnpayClient(vnpay_config(settings))
    try:
        assert await reconcile.settle_overdue(pool, settings, client) == 1
    finally:
        client.close()
    assert (await _payment(pool, txn_ref))["status"] == "paid"
    assert vnpay.ipn_calls(txn_ref) == []  # the IPN was still on its way

    calls = vnpay.wait_for_ipn(txn_ref, timeout_s=15)
    # VNPay is told the order is already confirmed (02) and stops retrying; nothing moves twice
    assert [c.result for c in calls] == ["02"]
    assert (await _payment(pool, txn_ref))["status"] == "paid"
    assert await _transitions(pool, txn_ref) == [("paid", "querydr")]
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation["id"]) == "booked"


@pytest.mark.parametrize("fault", ["502", "99", "unreachable"])
async def test_querydr_failures_leave_the_payment_pending_until_vnpay_answers_then_it_settles(
        api: str, vnpay: VnpaySandbox, pool: asyncpg.Pool, settings: Settings, broken_api: ThreadingHTTPServer,
        fault: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        _patient, consultation, _, txn_ref = await opened_payment(http, pool, settings)
    vnpay.ipn_mode(txn_ref, "drop")  # the IPN never comes: only querydr can tell
    vnpay.complete(txn_ref, "success")
    await pool.execute("UPDATE payments SET settle_after = now() - interval '1 second' WHERE txn_ref = $1", txn_ref)

    broken_api.mode = fault  # type: ignore[attr-defined]
    api_url = (f"http://127.0.0.1:{free_port()}/merchant_webapi/api/transaction" if fault == "unreachable"
               else f"http://127.0.0.1:{broken_api.server_port}/merchant_webapi/api/transaction")
    config = dataclasses.replace(vnpay_config(settings), api_url=api_url, connect_timeout_s=1, read_timeout_s=2)
    failing = VnpayClient(config)
    try:
        for _ in range(2):
            assert await reconcile.settle_overdue(pool, settings, failing) == 0
            await pool.execute("UPDATE payments SET next_check_at = NULL WHERE txn_ref = $1", txn_ref)
    finally:
        failing.close()
    row = await _payment(pool, txn_ref)
    assert row["status"] == "pending"  # an error is never taken for "not paid"
    assert row["checks"] == 2
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation["id"]) != "cancelled"

    working = VnpayClient(vnpay_config(settings))
    try:
        assert await reconcile.settle_overdue(pool, settings, working) == 1
        assert await reconcile.settle_overdue(pool, settings, working) == 0
    finally:
        working.close()
    assert (await _payment(pool, txn_ref))["status"] == "paid"
    assert await _transitions(pool, txn_ref) == [("paid", "querydr")]
    assert await pool.fetchval("SELECT status FROM consultations WHERE id = $1", consultation["id"]) == "booked"
