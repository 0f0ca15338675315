"""The background worker's housekeeping removes dead credentials and keeps live ones."""

from __future__ import annotations

import asyncpg

from api.settings import Settings
from api.worker import purge_expired_credentials
from notifications.sms_sandbox import SmsSandbox
from tests.helpers import Client, sign_in_patient


async def test_purge_drops_day_old_codes_and_long_expired_refresh_tokens_only(
        client: Client, sms: SmsSandbox, pool: asyncpg.Pool, settings: Settings) -> None:
    await sign_in_patient(client, sms, "+84911111111")
    await sign_in_patient(client, sms, "+84922222222")
    await pool.execute("""UPDATE otp_challenges SET created_at = now() - interval '25 hours'
                          WHERE phone = '+84911111111'""")
    await pool.execute("""UPDATE refresh_tokens SET expires_at = now() - interval '8 days'
                          WHERE account_id = (SELECT id FROM accounts WHERE phone = '+84911111111')""")
    await purge_expired_credentials(pool, settings)
    assert [r["phone"] for r in await pool.fetch("SELECT phone FROM otp_challenges")] == ["+84922222222"]
    assert await pool.fetchval("SELECT count(*) FROM refresh_tokens") == 1
