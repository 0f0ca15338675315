"""Wire shapes of the drug catalogue: drugs, their interaction rules, where rows come from, and import reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

Route = Literal["oral", "sublingual", "buccal", "inhalation", "nasal", "topical", "transdermal", "ophthalmic", "otic",
                "rectal", "vaginal", "injection", "other"]
ControlClass = Literal["none", "narcotic", "psychotropic", "precursor"]
PrescriptionType = Literal["c", "n", "h"]
PregnancyWarning = Literal["none", "warn", "block"]
Severity = Literal["contraindicated", "major", "moderate", "minor"]
SideKind = Literal["ingredient", "atc_class"]


class Drug(msgspec.Struct):
    """One catalogue row. ``demo_data`` is true when the row comes from demonstration data (not for clinical use)."""

    id: UUID
    inn: str
    ingredients: list[str]
    strength: str
    dosage_form: str
    route: Route
    atc_code: str | None
    rx_required: bool
    control_class: ControlClass
    prescription_type: PrescriptionType  # VN-3.6: the prescription form this drug forces
    is_medicine: bool  # VN-1.11: false for functional foods and other non-medicines
    registration_number: str | None
    trade_names: list[str]
    pregnancy_warning: PregnancyWarning
    weight_based_dosing: bool
    active: bool
    source: str  # code of the dataset the row came from (GET /drugs/sources)
    source_ref: str  # citation of this row within it
    demo_data: bool


class DrugPage(msgspec.Struct):
    items: list[Drug]
    total: int
    demo_data: bool  # some drug on this page is demonstration data


class DrugSource(msgspec.Struct):
    code: str
    title: str
    demo_data: bool
    notes: str
    drugs: int
    interactions: int
    updated_at: datetime


class InteractionSide(msgspec.Struct):
    """An ingredient (folded INN) or an ATC class prefix that stands for every catalogue drug in the class."""

    kind: SideKind
    code: str
    label: str


class Interaction(msgspec.Struct):
    id: UUID
    severity: Severity
    drug: InteractionSide  # the side the drug asked about matched
    other: InteractionSide
    effect: str
    advice: str
    effect_vi: str  # the same in Vietnamese, as the clinical checks (CDS-1) show it to doctors
    advice_vi: str
    source: str
    source_ref: str
    demo_data: bool


class DrugImportReport(msgspec.Struct):
    source: str
    demo_data: bool
    rows: int
    inserted: int
    updated: int
    unchanged: int
