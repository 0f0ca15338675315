"""Published stock: bulk upload by a pharmacy's software or pharmacists (every item is checked first, then all are
written or none), the pharmacy's own view of it, and the decrement dispensing applies."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.auth.schemas import Strict
from api.db import Conn
from api.errors import DomainError, FieldError, InvalidInput
from pharmacy_link import db
from pharmacy_link.schemas import StockItemIn, StockPage, StockUploadReport
from pharmacy_link.service import PharmacyNotFound, require_own_pharmacy

MAX_ITEMS = 20_000
MAX_BODY_BYTES = 4 * 1024 * 1024  # 20,000 items named by drug id come to about 1.5 MB
# A 422 lists this many problems; the rest are counted.
LISTED_PROBLEMS = 1_000

_AT_PATH = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


class StockBodyUnreadable(DomainError):
    """Not JSON at all (well-formed JSON of the wrong shape is a 422, as everywhere)."""

    status, slug, title = 400, "validation-error", "Invalid input"


class StockUploadRejected(DomainError):
    """Some items are invalid, so nothing was saved (an upload is all-or-nothing)."""

    status, slug, title = 422, "stock-upload-rejected", "Stock upload rejected"

    def __init__(self, problems: Sequence[tuple[int, FieldError]], items: int) -> None:
        ordered = [error for _, error in sorted(problems, key=lambda p: p[0])]
        rejected = len({index for index, _ in problems})
        super().__init__(
            f"Nothing was saved: {rejected} of {items} items have problems. Fix them and send the upload again.",
            errors=ordered[:LISTED_PROBLEMS], extra={"items": items, "rejected_items": rejected})


class _Upload(Strict):
    # Items stay raw here so that each is checked on its own and every bad one is reported, not just the first.
    items: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_ITEMS)]


def _field_error(base: str, exc: msgspec.ValidationError) -> FieldError:
    """msgspec's "Expected `int >= 0`, got `-5` - at `$.quantity`" as path body.items[3].quantity."""
    message = str(exc)
    match = _AT_PATH.match(message)
    if match:
        return FieldError(f"{base}{match.group('path')}", match.group("message"))
    field = _NAMED_FIELD.search(message)
    return FieldError(f"{base}.{field.group(1)}" if field else base, message)


def _read_upload(body: bytes) -> list[msgspec.Raw]:
    try:
        return msgspec.json.decode(body, type=_Upload).items
    except msgspec.ValidationError as exc:
        error = _field_error("body", exc)
        raise InvalidInput(error.path, error.message) from None
    except msgspec.DecodeError as exc:
        raise StockBodyUnreadable(f"The body is not valid JSON ({exc}).",
                                  errors=[FieldError("body", str(exc))]) from None


def _check_items(raws: Sequence[msgspec.Raw]) -> tuple[list[tuple[int, StockItemIn]], list[tuple[int, FieldError]]]:
    items: list[tuple[int, StockItemIn]] = []
    problems: list[tuple[int, FieldError]] = []
    for index, raw in enumerate(raws):
        try:
            item = msgspec.json.decode(raw, type=StockItemIn)
        except msgspec.ValidationError as exc:
            problems.append((index, _field_error(f"body.items[{index}]", exc)))
            continue
        except UnicodeDecodeError:  # msgspec's word for bytes that are not UTF-8 inside a string
            problems.append((index, FieldError(f"body.items[{index}]", "The item holds text that is not UTF-8.")))
            continue
        if (item.drug_id is None) == (item.registration_number is None):
            problems.append((index, FieldError(f"body.items[{index}]",
                                               "Name the drug by drug_id or by registration_number: one of them.")))
            continue
        items.append((index, item))
    return items, problems


async def upload(pool: asyncpg.Pool, principal: Principal, pharmacy_id: UUID, body: bytes,
                 ctx: AuditContext) -> StockUploadReport:
    """Set the published quantity of each drug listed; drugs not listed keep theirs (send 0 for "none left")."""
    require_own_pharmacy(principal, pharmacy_id)
    raws = _read_upload(body)
    items, problems = _check_items(raws)
    async with pool.acquire() as conn, conn.transaction():
        if not await db.pharmacy_exists(conn, pharmacy_id):
            raise PharmacyNotFound("No such pharmacy.")
        resolved = await db.resolve_drugs(conn, [item.drug_id for _, item in items],
                                          [item.registration_number for _, item in items])
        first_seen: dict[UUID, int] = {}
        rows: list[tuple[UUID, int, str]] = []
        for (index, item), drug_id in zip(items, resolved, strict=True):
            if drug_id is None:
                named_by = "drug_id" if item.drug_id is not None else "registration_number"
                problems.append((index, FieldError(f"body.items[{index}].{named_by}",
                                                   "No drug in the catalogue has this " + named_by.replace("_", " ")
                                                   + ".")))
            elif drug_id in first_seen:
                problems.append((index, FieldError(f"body.items[{index}]",
                                                   f"The same drug as items[{first_seen[drug_id]}]; list each once.")))
            else:
                first_seen[drug_id] = index
                rows.append((drug_id, item.quantity, item.unit))
        if problems:
            raise StockUploadRejected(problems, len(raws))  # leaving the block rolls back; nothing was written
        rows.sort()
        await db.lock_stock_upload(conn, pharmacy_id)
        inserted = await db.upsert_stock(conn, pharmacy_id, [r[0] for r in rows], [r[1] for r in rows],
                                         [r[2] for r in rows])
        report = StockUploadReport(items=len(rows), inserted=inserted, updated=len(rows) - inserted)
        await audit.record(conn, ctx, "pharmacy_stock.uploaded", target_type="pharmacy", target_id=pharmacy_id,
                           details={"items": report.items, "inserted": report.inserted, "updated": report.updated})
    return report


async def stock_page(pool: asyncpg.Pool, principal: Principal, pharmacy_id: UUID, limit: int,
                     offset: int) -> StockPage:
    require_own_pharmacy(principal, pharmacy_id)
    async with pool.acquire() as conn:
        if not await db.pharmacy_exists(conn, pharmacy_id):
            raise PharmacyNotFound("No such pharmacy.")
        return await db.stock_page(conn, pharmacy_id, limit, offset)


async def consume_stock(conn: Conn, pharmacy_id: UUID, items: Sequence[tuple[UUID, int]]) -> None:
    """Take sold quantities ``(drug_id, quantity)`` off the pharmacy's published stock, in the caller's transaction.

    The published stock is informational: it never goes below zero, a drug without a stock row is skipped, and
    nothing here can refuse a sale. A drug listed twice is taken off twice.
    """
    sold: defaultdict[UUID, int] = defaultdict(int)
    for drug_id, quantity in items:
        if quantity < 0:
            raise ValueError(f"a sold quantity cannot be negative (drug {drug_id}: {quantity})")
        sold[drug_id] += quantity
    drug_ids = sorted(drug_id for drug_id, quantity in sold.items() if quantity > 0)
    if drug_ids:
        await db.consume_stock(conn, pharmacy_id, drug_ids, [sold[d] for d in drug_ids])
