"""Fixtures of the pharmacy registry, API key, stock and search tests: tokens from our own issuer for the demo staff
(the sign-in journey is tested in tests/api), pharmacies placed on the map, and pharmacists of those pharmacies."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import pytest

from api.auth.principal import Principal, issue_access_token
from api.settings import Settings
from pharmacy_link import db
from pharmacy_link.schemas import OpeningHours, PharmacyIn
from tests.eprescription.prescribing import patient_headers, staff_headers

MakePharmacy = Callable[..., Awaitable[UUID]]
PharmacistOf = Callable[[UUID], Awaitable[dict[str, str]]]
ALWAYS_OPEN = [OpeningHours(weekday=day, opens="00:00", closes="24:00") for day in range(1, 8)]


@pytest.fixture
async def admin(demo: None, pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    return await staff_headers(pool, settings, "admin")


@pytest.fixture
async def hoa(demo: None, pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    """ds.hoa, pharmacist (with a degree) of the demo pharmacy."""
    return await staff_headers(pool, settings, "ds.hoa")


@pytest.fixture
async def doctor(demo: None, pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    """bs.lan, demo doctor."""
    return await staff_headers(pool, settings, "bs.lan")


@pytest.fixture
async def mai(demo: None, pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    """Nguyễn Thị Mai, demo patient and guardian of Trần Gia Bảo."""
    return await patient_headers(pool, settings, "+84912345678")


@pytest.fixture
async def hung(demo: None, pool: asyncpg.Pool, settings: Settings) -> dict[str, str]:
    """Lê Văn Hùng, the other demo patient."""
    return await patient_headers(pool, settings, "+84987654321")


@pytest.fixture
def make_pharmacy(pool: asyncpg.Pool) -> MakePharmacy:
    """A registered pharmacy at (latitude, longitude), open around the clock unless ``hours`` say otherwise."""

    async def make(*, latitude: float = 10.7769, longitude: float = 106.7009, name: str | None = None,
                   hours: list[OpeningHours] | None = None, active: bool = True) -> UUID:
        number = secrets.token_hex(4)
        pharmacy = PharmacyIn(name=name or f"Nhà thuốc {number}", kind="nha_thuoc",
                              gpp_certificate_number=f"GPP-{number}", phone="02839990000", address="1 Đường Thử",
                              latitude=latitude, longitude=longitude,
                              opening_hours=ALWAYS_OPEN if hours is None else hours)
        async with pool.acquire() as conn:
            pharmacy_id = await db.insert_pharmacy(conn, pharmacy)
            if not active:
                await db.update_pharmacy(conn, pharmacy_id, {"active": False})
        return pharmacy_id

    return make


@pytest.fixture
def pharmacist_of(pool: asyncpg.Pool, settings: Settings) -> PharmacistOf:
    """Headers of a new pharmacist (with a degree) of ``pharmacy_id``, with a real access token."""

    async def make(pharmacy_id: UUID) -> dict[str, str]:
        account_id = await pool.fetchval(
            """INSERT INTO accounts (role, username, password_hash, full_name)
               VALUES ('pharmacist', $1, 'no-password-sign-in-in-these-tests', 'Dược sĩ Thử') RETURNING id""",
            f"ds.{secrets.token_hex(4)}")
        await pool.execute(
            "INSERT INTO pharmacists (account_id, pharmacy_id, has_pharmacist_degree) VALUES ($1, $2, true)",
            account_id, pharmacy_id)
        token = issue_access_token(Principal(account_id=account_id, role="pharmacist", pharmacy_id=pharmacy_id),
                                   settings)
        return {"Authorization": f"Bearer {token}"}

    return make
