"""SQL of the pharmacy registry, pharmacy API keys, published stock and the nearby-pharmacy search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec

from api.db import Conn
from pharmacy_link.schemas import (
    ApiKey,
    LineAvailability,
    NearbyPharmacy,
    Pharmacy,
    PharmacyIn,
    PharmacyStaffMember,
    StockItem,
    StockPage,
)

# ---------------------------------------------------------------------------------------------------- registry


async def insert_pharmacy(conn: Conn, pharmacy: PharmacyIn, pharmacy_id: UUID | None = None) -> UUID:
    """``pharmacy.phone`` must already be in its stored, domestic form."""
    created: UUID = await conn.fetchval(
        """INSERT INTO pharmacies (id, name, kind, gpp_certificate_number, national_outlet_id, phone, address,
                                   province, latitude, longitude, opening_hours)
           VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        pharmacy_id, pharmacy.name, pharmacy.kind, pharmacy.gpp_certificate_number, pharmacy.national_outlet_id,
        pharmacy.phone, pharmacy.address, pharmacy.province, pharmacy.latitude, pharmacy.longitude,
        pharmacy.opening_hours)
    return created


async def pharmacy(conn: Conn, pharmacy_id: UUID, minute_of_week: int) -> Pharmacy | None:
    row = await conn.fetchrow(
        """SELECT id, name, kind, gpp_certificate_number, national_outlet_id, phone, address, province, latitude,
                  longitude, opening_hours, open_week_minutes @> $2::integer AS open_now, active
           FROM pharmacies WHERE id = $1""", pharmacy_id, minute_of_week)
    return msgspec.convert(dict(row), Pharmacy) if row else None


async def pharmacy_active_for_update(conn: Conn, pharmacy_id: UUID) -> bool | None:
    """Whether the pharmacy is active, None when there is no such pharmacy."""
    active: bool | None = await conn.fetchval(
        "SELECT active FROM pharmacies WHERE id = $1 FOR NO KEY UPDATE", pharmacy_id)
    return active


async def pharmacy_exists(conn: Conn, pharmacy_id: UUID) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT FROM pharmacies WHERE id = $1)", pharmacy_id)
    return found


_PATCHABLE = ("name", "kind", "gpp_certificate_number", "national_outlet_id", "phone", "address", "province",
              "latitude", "longitude", "opening_hours", "active")


async def update_pharmacy(conn: Conn, pharmacy_id: UUID, changes: dict[str, Any]) -> None:
    # Column names come from the fixed whitelist above, never from the client.
    columns = [c for c in _PATCHABLE if c in changes]
    if not columns:
        return
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(f"UPDATE pharmacies SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608
                       pharmacy_id, *(changes[c] for c in columns))


async def staff(conn: Conn, pharmacy_id: UUID) -> list[PharmacyStaffMember]:
    """The people of the pharmacy; the service accounts of its software are listed with its API keys instead."""
    rows = await conn.fetch(
        """SELECT a.id AS account_id, a.full_name, p.has_pharmacist_degree
           FROM pharmacists p JOIN accounts a ON a.id = p.account_id
           WHERE p.pharmacy_id = $1
             AND NOT EXISTS (SELECT FROM pharmacy_api_keys k WHERE k.account_id = a.id)
           ORDER BY a.full_name""", pharmacy_id)
    return [msgspec.convert(dict(r), PharmacyStaffMember) for r in rows]


# ---------------------------------------------------------------------------------------------------- API keys

class KeyRow(msgspec.Struct, frozen=True):
    id: UUID
    account_id: UUID
    label: str
    prefix: str
    still_valid: bool
    rotated: bool


class LiveKey(msgspec.Struct, frozen=True):
    id: UUID
    pharmacy_id: UUID
    account_id: UUID
    prefix: str
    pharmacy_active: bool


async def is_machine_account(conn: Conn, account_id: UUID) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pharmacy_api_keys WHERE account_id = $1)", account_id)
    return found


async def insert_api_key(conn: Conn, pharmacy_id: UUID, account_id: UUID, label: str, prefix: str,
                         secret_hash: bytes, created_by: UUID | None) -> UUID:
    key_id: UUID = await conn.fetchval(
        """INSERT INTO pharmacy_api_keys (pharmacy_id, account_id, label, prefix, secret_hash, created_by)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        pharmacy_id, account_id, label, prefix, secret_hash, created_by)
    return key_id


async def api_keys(conn: Conn, pharmacy_id: UUID, key_id: UUID | None = None) -> list[ApiKey]:
    """The pharmacy's keys, newest first (or just ``key_id``)."""
    rows = await conn.fetch(
        """SELECT id, pharmacy_id, account_id, label, prefix,
                  CASE WHEN revoked_at IS NULL THEN 'active' WHEN revoked_at > now() THEN 'expiring'
                       ELSE 'revoked' END AS status,
                  created_at, created_by, last_used_at, revoked_at, replaced_by
           FROM pharmacy_api_keys WHERE pharmacy_id = $1 AND ($2::uuid IS NULL OR id = $2)
           ORDER BY created_at DESC, prefix""", pharmacy_id, key_id)
    return [msgspec.convert(dict(r), ApiKey) for r in rows]


async def api_key_for_update(conn: Conn, pharmacy_id: UUID, key_id: UUID) -> KeyRow | None:
    row = await conn.fetchrow(
        """SELECT id, account_id, label, prefix, revoked_at IS NULL OR revoked_at > now() AS still_valid,
                  replaced_by IS NOT NULL AS rotated
           FROM pharmacy_api_keys WHERE id = $1 AND pharmacy_id = $2 FOR UPDATE""", key_id, pharmacy_id)
    return msgspec.convert(dict(row), KeyRow) if row else None


async def end_api_key(conn: Conn, key_id: UUID, after_s: int, by: UUID | None, replaced_by: UUID | None) -> None:
    await conn.execute(
        """UPDATE pharmacy_api_keys
           SET revoked_at = least(coalesce(revoked_at, 'infinity'), now() + make_interval(secs => $2)),
               revoked_by = $3, replaced_by = coalesce($4, replaced_by)
           WHERE id = $1""", key_id, after_s, by, replaced_by)


async def live_key_by_hash(conn: Conn, secret_hash: bytes) -> LiveKey | None:
    row = await conn.fetchrow(
        """SELECT k.id, k.pharmacy_id, k.account_id, k.prefix, p.active AS pharmacy_active
           FROM pharmacy_api_keys k JOIN pharmacies p ON p.id = k.pharmacy_id JOIN accounts a ON a.id = k.account_id
           WHERE k.secret_hash = $1 AND (k.revoked_at IS NULL OR k.revoked_at > now()) AND a.status = 'active'""",
        secret_hash)
    return msgspec.convert(dict(row), LiveKey) if row else None


async def touch_api_key(conn: Conn, key_id: UUID) -> None:
    await conn.execute("UPDATE pharmacy_api_keys SET last_used_at = now() WHERE id = $1", key_id)


async def recent_exchange_failures(conn: Conn, client_ip: str, window_s: int) -> tuple[int, int]:
    """Failed key exchanges from ``client_ip`` within the window, and seconds until the oldest of them leaves it."""
    row = await conn.fetchrow(
        """SELECT count(*) AS failures,
                  coalesce(ceil(extract(epoch FROM min(at) + make_interval(secs => $2) - now())), 0)::integer
                    AS reset_s
           FROM audit_log
           WHERE action = 'pharmacy_api_key.exchange_failed' AND client_ip = $1::inet
             AND at > now() - make_interval(secs => $2)""", client_ip, window_s)
    assert row is not None
    return row["failures"], row["reset_s"]


# ---------------------------------------------------------------------------------------------------- stock

async def lock_stock_upload(conn: Conn, pharmacy_id: UUID) -> None:
    """Transaction-scoped: one upload per pharmacy at a time, so two uploads cannot interleave their rows."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('pharmacy_stock:' || $1::uuid::text, 0))",
                       pharmacy_id)


async def resolve_drugs(conn: Conn, drug_ids: Sequence[UUID | None],
                        registration_numbers: Sequence[str | None]) -> list[UUID | None]:
    """The catalogue id each item names (by id, or by registration number through the drug key), None if none."""
    rows = await conn.fetch(
        """SELECT coalesce(by_id.id, by_number.id) AS drug_id
           FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS item(drug_id, registration_number, n)
           LEFT JOIN drugs by_id ON by_id.id = item.drug_id
           LEFT JOIN drugs by_number ON by_number.drug_key = 'reg:' || upper(item.registration_number)
           ORDER BY item.n""", drug_ids, registration_numbers)
    return [r["drug_id"] for r in rows]


async def upsert_stock(conn: Conn, pharmacy_id: UUID, drug_ids: Sequence[UUID], quantities: Sequence[int],
                       units: Sequence[str]) -> int:
    """Set the quantities of these drugs (given sorted by drug id, the order rows are locked in everywhere, so an
    upload and a dispense cannot deadlock); returns how many rows were new."""
    inserted: int = await conn.fetchval(
        """WITH written AS (
             INSERT INTO pharmacy_stock AS s (pharmacy_id, drug_id, quantity, unit)
             SELECT $1, item.drug_id, item.quantity, item.unit
             FROM unnest($2::uuid[], $3::integer[], $4::text[]) WITH ORDINALITY AS item(drug_id, quantity, unit, n)
             ORDER BY item.n
             ON CONFLICT (pharmacy_id, drug_id)
               DO UPDATE SET quantity = EXCLUDED.quantity, unit = EXCLUDED.unit, updated_at = now()
             RETURNING xmax = 0 AS new)
           SELECT count(*) FILTER (WHERE new) FROM written""", pharmacy_id, drug_ids, quantities, units)
    return inserted


async def stock_page(conn: Conn, pharmacy_id: UUID, limit: int, offset: int) -> StockPage:
    total: int = await conn.fetchval("SELECT count(*) FROM pharmacy_stock WHERE pharmacy_id = $1", pharmacy_id)
    rows = await conn.fetch(
        """SELECT s.drug_id, d.registration_number, d.inn, d.strength, d.dosage_form, s.quantity, s.unit,
                  s.updated_at
           FROM pharmacy_stock s JOIN drugs d ON d.id = s.drug_id WHERE s.pharmacy_id = $1
           ORDER BY d.inn, d.strength, d.dosage_form, s.drug_id LIMIT $2 OFFSET $3""", pharmacy_id, limit, offset)
    return StockPage(total=total, items=[msgspec.convert(dict(r), StockItem) for r in rows])


async def consume_stock(conn: Conn, pharmacy_id: UUID, drug_ids: Sequence[UUID], quantities: Sequence[int]) -> None:
    # Locked first, in drug id order, like uploads write them: a dispense must never die in a deadlock over stock.
    await conn.execute(
        """SELECT FROM pharmacy_stock WHERE pharmacy_id = $1 AND drug_id = ANY($2::uuid[])
           ORDER BY drug_id FOR NO KEY UPDATE""", pharmacy_id, drug_ids)
    await conn.execute(
        """UPDATE pharmacy_stock s SET quantity = greatest(0, s.quantity - sold.quantity), updated_at = now()
           FROM unnest($2::uuid[], $3::integer[]) AS sold(drug_id, quantity)
           WHERE s.pharmacy_id = $1 AND s.drug_id = sold.drug_id""", pharmacy_id, drug_ids, quantities)


# ---------------------------------------------------------------------------------------------------- search

class NearbyResult(msgspec.Struct):
    prescription_patient_id: UUID | None  # None: no such prescription, or not the caller's to see
    prescription_open: bool
    unknown_drugs: list[UUID]
    pharmacies: list[NearbyPharmacy]


async def nearby(conn: Conn, *, latitude: float, longitude: float, radius_m: float, limit: int, minute_of_week: int,
                 open_only: bool, prescription_id: UUID | None, patient_id: UUID | None,
                 drug_ids: Sequence[UUID]) -> NearbyResult:
    """Pharmacies within ``radius_m`` ranked by how many lines they can fill, then distance: one statement.

    The lines are the prescription's remaining ones (only if ``patient_id`` is its patient or their guardian) or
    ``drug_ids`` (one unit each). The first row always comes back and carries what the caller needs to tell "no
    such prescription" from "no pharmacy nearby"; its pharmacy columns are NULL when none matched.
    """
    rows = await conn.fetch(
        """WITH rx AS (
             SELECT p.id, p.patient_id,
                    p.status IN ('issued', 'with_dispenser', 'partially_dispensed') AND p.valid_until > now() AS open
             FROM prescriptions p
             WHERE p.id = $6 AND p.status <> 'draft'
               AND (p.patient_id = $7 OR EXISTS (SELECT FROM guardianships g
                                                 WHERE g.guardian_id = $7 AND g.dependent_id = p.patient_id))),
           need AS MATERIALIZED (
             SELECT l.position::integer AS position, l.drug_id, l.quantity - l.dispensed_quantity AS remaining
             FROM rx JOIN prescription_lines l ON l.prescription_id = rx.id
             WHERE rx.open AND l.dispensed_quantity < l.quantity
             UNION ALL
             SELECT d.n::integer, d.drug_id, 1 FROM unnest($8::uuid[]) WITH ORDINALITY AS d(drug_id, n)),
           -- distances compare as chords through the earth (monotonic in the great-circle distance): a cheap
           -- cube_distance per candidate instead of the trigonometry of earth_distance
           origin AS (SELECT ll_to_earth($1, $2) AS point, gc_to_sec($3) AS chord),
           around AS MATERIALIZED (
             SELECT p.id, cube_distance(o.point, p.location) AS chord, p.open_week_minutes @> $5::integer AS open_now
             FROM pharmacies p CROSS JOIN origin o
             WHERE p.active AND p.location IS NOT NULL
               AND earth_box(o.point, $3) @> p.location AND cube_distance(o.point, p.location) <= o.chord
               AND (NOT $9 OR p.open_week_minutes @> $5::integer)
               AND ($6::uuid IS NULL OR EXISTS (SELECT FROM rx WHERE rx.open))),
           -- From the drug side: per wanted drug, one scan of its stock rows that skips to the pharmacies around
           -- (a probe per pharmacy and line costs a B-tree descent each: 3x slower where pharmacies are dense).
           -- Merged with the pharmacies by grouping, not by a join: the planner cannot estimate how many pharmacies
           -- a radius holds and would pick a nested loop that goes quadratic in dense districts.
           scored AS (
             SELECT id, min(chord) AS chord, bool_or(open_now) AS open_now,
                    coalesce(array_agg(position ORDER BY position) FILTER (WHERE position IS NOT NULL), '{}')
                      AS available
             FROM (SELECT a.id, a.chord, a.open_now, NULL::integer AS position FROM around a
                   UNION ALL
                   SELECT s.pharmacy_id, NULL, NULL, need.position
                   FROM need JOIN pharmacy_stock s ON s.drug_id = need.drug_id AND s.quantity >= need.remaining
                   WHERE s.pharmacy_id = ANY((SELECT array_agg(id) FROM around)::uuid[])) AS facts
             GROUP BY id),
           best AS (
             SELECT s.*, row_number() OVER (ORDER BY cardinality(s.available) = (SELECT count(*) FROM need) DESC,
                                                     cardinality(s.available) DESC, s.chord, s.id) AS rank
             FROM scored s
             ORDER BY rank LIMIT $4)
         SELECT (SELECT patient_id FROM rx) AS prescription_patient_id,
                coalesce((SELECT bool_or(open) FROM rx), false) AS prescription_open,
                coalesce((SELECT array_agg(position ORDER BY position) FROM need), '{}') AS positions,
                coalesce((SELECT array_agg(drug_id ORDER BY position) FROM need), '{}') AS line_drugs,
                coalesce((SELECT array_agg(d) FROM unnest($8::uuid[]) AS d
                          WHERE NOT EXISTS (SELECT FROM drugs WHERE id = d)), '{}') AS unknown_drugs,
                p.id, p.name, p.kind, p.address, p.province, p.phone, p.latitude, p.longitude,
                round(sec_to_gc(b.chord))::integer AS distance_m, b.open_now, b.available AS available_positions
         FROM (VALUES (true)) AS header (always)
         LEFT JOIN best b ON true LEFT JOIN pharmacies p ON p.id = b.id
         ORDER BY b.rank""",
        latitude, longitude, radius_m, limit, minute_of_week, prescription_id, patient_id, list(drug_ids), open_only)
    first = rows[0]
    lines = list(zip(first["positions"], first["line_drugs"], strict=True))
    found = []
    for row in rows:
        if row["id"] is None:
            continue
        available = set(row["available_positions"])
        found.append(NearbyPharmacy(
            id=row["id"], name=row["name"], kind=row["kind"], address=row["address"], province=row["province"],
            phone=row["phone"], latitude=row["latitude"], longitude=row["longitude"], distance_m=row["distance_m"],
            open_now=row["open_now"], lines_available=len(available), lines_total=len(lines),
            lines=[LineAvailability(position=pos, drug_id=drug, available=pos in available) for pos, drug in lines]))
    return NearbyResult(prescription_patient_id=first["prescription_patient_id"],
                        prescription_open=first["prescription_open"], unknown_drugs=list(first["unknown_drugs"]),
                        pharmacies=found)

