"""What the clinical checks (CDS-1..CDS-5) read from the database: everything a draft is checked against, as the SQL
function ``clinical_check_data`` (migrations 0007, 0018) returns it; prescribing reads it inside ``prescribing_facts``
(migration 0019), in the same round trip as the rest of what a prescription needs."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from eprescription.schemas import Severity


class DraftDrug(msgspec.Struct):
    """A catalogue drug written on the draft, with what CDS-2/4/5 compare."""

    id: UUID
    inn: str
    strength: str
    ingredients: list[str]
    allergy_keys: list[str]  # allergy_key() of each ingredient, same order
    atc_code: str  # '' when unknown
    pregnancy_warning: str
    weight_based_dosing: bool
    pregnancy_risk: str | None  # why the drug is flagged (CDS-5), in Vietnamese
    pregnancy_source: str | None


class ActiveMedication(msgspec.Struct):
    """A line of the patient's prescription that is still being taken (CDS-1, CDS-3)."""

    drug_id: UUID
    inn: str
    strength: str
    ingredients: list[str]
    atc_code: str
    code: str  # the prescription's code (mã đơn thuốc)
    issued_at: datetime


class InteractionRule(msgspec.Struct):
    """A drug_interactions row with the drugs (draft or active) each of its sides names (CDS-1)."""

    id: UUID
    severity: Severity
    effect_vi: str
    advice_vi: str
    source_ref: str
    a_ids: list[UUID]
    b_ids: list[UUID]


class Allergen(msgspec.Struct):
    """A recorded allergy, resolved (CDS-2): a drug class, or ingredient keys and the ATC level-4 groups of the
    catalogue drugs containing them."""

    substance: str  # as typed (the first spelling, when several share a key)
    key: str  # allergy_key(substance)
    class_code: str | None
    class_label: str | None
    ingredient_keys: list[str]
    groups: list[str]


class ClassHit(msgspec.Struct):
    """A draft drug that a class allergy reaches, through the most specific member of the class (CDS-2)."""

    key: str  # the allergen's key
    drug_id: UUID
    severity: Severity
    rationale_vi: str
    advice_vi: str
    source_ref: str


class DoseLimit(msgspec.Struct):
    """Paediatric mg/kg limits of an ingredient (CDS-4)."""

    ingredient: str
    min_mg_per_kg_dose: float | None
    max_mg_per_kg_dose: float
    max_mg_per_kg_day: float
    max_doses_per_day: int | None
    below_age_months: int
    source_ref: str


class CheckData(msgspec.Struct):
    drugs: list[DraftDrug]
    active: list[ActiveMedication]
    interactions: list[InteractionRule]
    allergens: list[Allergen]
    class_hits: list[ClassHit]
    limits: list[DoseLimit]
