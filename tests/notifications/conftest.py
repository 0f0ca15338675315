"""Fixtures for the notifications tests: a running SMS sandbox and gateways pointed at it."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from notifications.sms import SmsGateway, SmsGatewayConfig
from notifications.sms_sandbox import SmsSandbox


@pytest.fixture
def sandbox() -> Iterator[SmsSandbox]:
    with SmsSandbox() as running:
        yield running


@pytest.fixture
def make_gateway(sandbox: SmsSandbox) -> Iterator[Callable[..., SmsGateway]]:
    """Build gateways for the sandbox; keyword arguments override fields of a working config."""
    base = SmsGatewayConfig(
        base_url=sandbox.base_url,
        api_key="sandbox-key",
        secret_key="sandbox-secret",
        brandname="LIENTHONG",
        timeout_s=2.0,
    )
    made: list[SmsGateway] = []

    def make(**changes: Any) -> SmsGateway:
        gateway = SmsGateway(replace(base, **changes))
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()


@pytest.fixture
def gateway(make_gateway: Callable[..., SmsGateway]) -> SmsGateway:
    return make_gateway()
