"""Fixtures of the payment tests: the VNPay sandbox, settings pointing at it, and the app in its own process
registered as the terminal's IPN URL (VNPay's IPN reaches it over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from api import db
from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from payments.vnpay_sandbox import VnpaySandbox
from tests.conftest import test_settings
from tests.payments.journeys import SECRET, TMN


@pytest.fixture
def vnpay() -> Iterator[VnpaySandbox]:
    # VNPay retries an unanswered IPN every 5 minutes; here every 50 ms
    with VnpaySandbox(terminals={TMN: SECRET}, retry_interval_s=0.05, ipn_timeout_s=5) as sandbox:
        yield sandbox


@pytest.fixture
def settings(database: db.DatabaseTarget, sms: SmsSandbox, tmp_path: Path, vnpay: VnpaySandbox) -> Settings:
    return replace(test_settings(database.app_dsn, sms.base_url, tmp_path),
                   vnpay_sandbox_port=int(vnpay.base_url.rsplit(":", 1)[1]))


@pytest.fixture
def api(live_server: str, vnpay: VnpaySandbox) -> str:
    """The live app, registered with the sandbox as the terminal's IPN URL (out of band, as with VNPay)."""
    vnpay.register_ipn_url(TMN, f"{live_server}/payments/vnpay/ipn")
    return live_server
