"""Drug catalogue reads: type-ahead search, a drug, its interaction rules, and the datasets rows come from."""

from __future__ import annotations

import re
import unicodedata
from uuid import UUID

import asyncpg

from eprescription import catalogue_db as db
from eprescription.catalogue_schemas import Drug, DrugPage, DrugSource, Interaction
from eprescription.errors import DrugNotFound

# Something that reads as the start of an ATC code ("N02", "c09aa"): only then do code prefixes rank first, so a
# doctor typing "m" for metformin is not shown the whole musculo-skeletal group.
_ATC_LIKE = re.compile(r"^[A-Z][0-9]{2}[A-Z0-9]{0,4}$")


def _normalize_query(text: str) -> str:
    """NFC (a decomposed "ê" from a Mac keyboard folds like a composed one) and single spaces."""
    return " ".join(unicodedata.normalize("NFC", text).split())


async def search(pool: asyncpg.Pool, q: str | None, limit: int, offset: int) -> DrugPage:
    query = _normalize_query(q or "")
    async with pool.acquire() as conn:
        if not query:
            items, total = await db.browse(conn, limit, offset)
        else:
            code = query.upper().replace(" ", "")
            items, total = await db.search(conn, query, code if _ATC_LIKE.match(code) else None, limit, offset)
    return DrugPage(items=items, total=total, demo_data=any(d.demo_data for d in items))


async def get_drug(pool: asyncpg.Pool, drug_id: UUID) -> Drug:
    async with pool.acquire() as conn:
        found = await db.drug(conn, drug_id)
    if found is None:
        raise DrugNotFound("No drug with this id in the catalogue.")
    return found


async def interactions(pool: asyncpg.Pool, drug_id: UUID) -> list[Interaction]:
    async with pool.acquire() as conn:
        if await db.drug(conn, drug_id) is None:
            raise DrugNotFound("No drug with this id in the catalogue.")
        return await db.interactions_of(conn, drug_id)


async def sources(pool: asyncpg.Pool) -> list[DrugSource]:
    async with pool.acquire() as conn:
        return await db.sources(conn)
