"""Finding a pharmacy: the nearest ones that can fill the most lines of a patient's prescription (or of a list of
drugs), each flagged open or closed now. Other pharmacies' stock shows only as enough / not enough per line."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api import audit
from api.audit import AuditContext
from api.auth.principal import Principal
from api.errors import InvalidInput
from eprescription.errors import PrescriptionNotFound
from pharmacy_link import db
from pharmacy_link.dispensing import PrescriptionNotDispensable
from pharmacy_link.schemas import NearbyPharmacy
from pharmacy_link.service import minute_of_week

MAX_DRUGS = 30
MAX_RADIUS_KM = 50
DEFAULT_RADIUS_KM = 5


def parse_drug_ids(raw: str) -> list[UUID]:
    """The comma-separated ``drug_ids`` query parameter, in the order given (that order numbers the lines)."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not 1 <= len(parts) <= MAX_DRUGS:
        raise InvalidInput("query.drug_ids", f"List 1 to {MAX_DRUGS} catalogue drug ids, separated by commas.")
    drug_ids = []
    for part in parts:
        try:
            drug_ids.append(UUID(part))
        except ValueError:
            raise InvalidInput("query.drug_ids", f"{part[:40]!r} is not a drug id.") from None
    if len(set(drug_ids)) != len(drug_ids):
        raise InvalidInput("query.drug_ids", "List each drug once.")
    return drug_ids


async def nearby(pool: asyncpg.Pool, principal: Principal, *, latitude: float, longitude: float, radius_km: float,
                 limit: int, open_only: bool, prescription_id: UUID | None, drug_ids: str | None,
                 ctx: AuditContext) -> list[NearbyPharmacy]:
    """Ranked: pharmacies that have every line first, then the most lines, then the nearest.

    With ``prescription_id`` the lines are what is still to be dispensed of it, and the caller must be its patient
    or that patient's guardian (anyone else gets the same 404 as for an unknown id); the search is audited as a
    read of the prescription. With ``drug_ids`` each drug is a line that one unit in stock satisfies.
    """
    if (prescription_id is None) == (drug_ids is None):
        raise InvalidInput("query.prescription_id", "Search for a prescription_id or for drug_ids: one of them.")
    wanted = parse_drug_ids(drug_ids) if drug_ids is not None else []
    patient_id = principal.patient_id if principal.role == "patient" else None
    if prescription_id is not None and patient_id is None:
        raise PrescriptionNotFound("No such prescription, or you may not see it.")
    async with pool.acquire() as conn:
        result = await db.nearby(
            conn, latitude=latitude, longitude=longitude, radius_m=radius_km * 1000, limit=limit,
            minute_of_week=minute_of_week(), open_only=open_only, prescription_id=prescription_id,
            patient_id=patient_id, drug_ids=wanted)
        if result.unknown_drugs:
            raise InvalidInput("query.drug_ids", f"No drug in the catalogue has the id {result.unknown_drugs[0]}.")
        if prescription_id is not None:
            if result.prescription_patient_id is None:
                raise PrescriptionNotFound("No such prescription, or you may not see it.")
            if not result.prescription_open:
                raise PrescriptionNotDispensable(
                    "This prescription is no longer dispensable (fully dispensed, cancelled, superseded or expired).")
            # a read with nothing to change: the audit row stands on its own rather than in a transaction
            await audit.record(conn, ctx, "prescription.pharmacies_searched", target_type="prescription",
                               target_id=prescription_id, subject_patient_id=result.prescription_patient_id,
                               details={"radius_km": radius_km, "results": len(result.pharmacies)})
    return result.pharmacies
