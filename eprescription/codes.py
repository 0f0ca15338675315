"""Prescription codes (mã đơn thuốc) per QĐ 808 VII.1: ``xxxxxyyyyyyy-z``, 14 characters.

Shared by prescribing (which issues codes) and pharmacy_link (which parses what a pharmacist types or scans).

* VN-3.2: 5-character facility (BHYT) code + 7 random characters + ``-`` + type letter.
* VN-3.3: validated case-insensitively; stored and sent with a lower-case random part and suffix.
* VN-3.4: ``y`` (traditional medicine) and ``t`` (đơn thuốc thang, TT 55/2025) are recognised when parsing but
  never issued: whether the national API accepts ``t`` is unconfirmed, so v1 only issues c/n/h.
* VN-3.5: the random part comes from a CSPRNG (``secrets``), never a sequence; uniqueness per facility is the
  database's job (``UNIQUE``) with a retry on collision by the caller.
* VN-3.6: the type follows the most controlled line: narcotic → n, else psychotropic/precursor → h, else c.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PrescriptionType = Literal["c", "n", "h", "y", "t"]
ControlClass = Literal["none", "narcotic", "psychotropic", "precursor"]

CODE_LENGTH = 14
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_CODE = re.compile(r"^([0-9A-Za-z]{5})([0-9A-Za-z]{7})-([cnhytCNHYT])$")
ISSUED_TYPES: frozenset[str] = frozenset({"c", "n", "h"})


class InvalidPrescriptionCode(ValueError):
    """Not a QĐ 808 prescription code; the message says what is wrong."""


@dataclass(frozen=True)
class PrescriptionCode:
    facility_code: str
    random_part: str
    type: PrescriptionType

    def __str__(self) -> str:
        return f"{self.facility_code}{self.random_part}-{self.type}"


def parse_code(raw: str) -> PrescriptionCode:
    """Parse what a pharmacist typed or a scanner read: surrounding spaces are ignored, case is not significant."""
    text = raw.strip()
    if len(text) != CODE_LENGTH:
        raise InvalidPrescriptionCode(
            f"A prescription code has {CODE_LENGTH} characters (e.g. 79026a1b2c3d-c); this has {len(text)}.")
    match = _CODE.match(text)
    if match is None:
        raise InvalidPrescriptionCode(
            "A prescription code is 5 letters/digits of the facility, 7 letters/digits, a hyphen and c, n, h, y or t.")
    facility, random_part, kind = match.groups()
    return PrescriptionCode(facility.upper(), random_part.lower(), kind.lower())  # type: ignore[arg-type]


def prescription_type(control_classes: Iterable[ControlClass]) -> Literal["c", "n", "h"]:
    """VN-3.6. Mixing types in one prescription is refused elsewhere (VN-3.1); this only names the form."""
    classes = set(control_classes)
    if "narcotic" in classes:
        return "n"
    if classes & {"psychotropic", "precursor"}:
        return "h"
    return "c"


def new_code(facility_code: str, kind: Literal["c", "n", "h"]) -> PrescriptionCode:
    """A fresh code with 7 CSPRNG characters (36^7 ≈ 7.8e10 per facility); the caller retries on a UNIQUE clash."""
    if not re.fullmatch(r"[0-9A-Za-z]{5}", facility_code):
        raise InvalidPrescriptionCode("The facility code must be 5 letters or digits (VN-3.2).")
    if kind not in ISSUED_TYPES:
        raise InvalidPrescriptionCode(f"Only c, n and h prescriptions are issued, not {kind!r} (VN-3.4).")
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(7))
    return PrescriptionCode(facility_code.upper(), random_part, kind)
