"""The demo's developer inbox shows what the SMS and FCM sandboxes received; production has no such page."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from notifications.fcm_sandbox import FcmSandbox, demo_service_account
from notifications.sms_sandbox import SmsSandbox
from tests.notifications.delivery import account_with_phone, add_device, dispatcher, queue, vaccination_notice


async def test_demo_inbox_lists_sms_and_pushes_the_sandboxes_received(pool: asyncpg.Pool, settings: Settings,
                                                                      sms: SmsSandbox) -> None:
    with FcmSandbox(project_id=settings.fcm_project_id) as fcm:
        demo = replace(settings, sms_gateway_url=None, sms_sandbox_port=int(sms.base_url.rsplit(":", 1)[1]),
                       fcm_sandbox_port=fcm.port)
        fcm.trust_service_account(demo_service_account(demo))
        account = await account_with_phone(pool, "+84912400001")
        await add_device(pool, account, "fid-demo-inbox")
        await queue(pool, demo, vaccination_notice(account, channels=("push", "sms")))
        async with dispatcher(pool, demo) as d:
            await d.dispatch_once()
        async with AsyncTestClient(create_app(demo)) as client:
            listed = (await client.get("/dev/inbox", params={"format": "json"})).json()
            page = await client.get("/dev/inbox")
    assert [m["phone"] for m in listed["sms"]] == ["0912400001"]
    assert [m["target"] for m in listed["push"]] == ["fid-demo-inbox"]
    assert listed["errors"] == []
    assert page.headers["content-type"].startswith("text/html")
    assert "Sắp đến lịch tiêm của bé Bảo" in page.text and "Lienthong: be Bao co lich tiem" in page.text


async def test_production_has_no_developer_inbox(settings: Settings) -> None:
    production = replace(settings, mode="production", sms_gateway_url="https://rest.esms.vn",
                         fcm_credentials_file=None)
    async with AsyncTestClient(create_app(production)) as client:
        response = await client.get("/dev/inbox")
    assert response.status_code == 404
