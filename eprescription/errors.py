"""Problems of the drug catalogue, its CSV import, and prescribing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from api.errors import Conflict, DomainError, FieldError, NotFound
from eprescription.schemas import Finding, RuleProblem

# An HTTP problem lists this many rejected rows; the rest are counted (the CLI prints its own summary).
LISTED_PROBLEMS = 100


class DrugNotFound(NotFound):
    slug, title = "drug-not-found", "Drug not found"


class RowProblem(NamedTuple):
    """Why one row of an import file was rejected. ``row`` counts the header as row 1, like a spreadsheet."""

    row: int
    column: str | None
    message: str

    def path(self) -> str:
        return f"row[{self.row}].{self.column}" if self.column else f"row[{self.row}]"

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}" if self.column else f"row {self.row}: {self.message}"


class DrugFileUnreadable(DomainError):
    """The file as a whole cannot be imported (size, encoding, not CSV, header)."""

    status, slug, title = 422, "drug-file-unreadable", "Drug file unreadable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[FieldError("file", detail)])


class DrugImportRejected(DomainError):
    """Some rows are invalid, so nothing was imported (the import is all-or-nothing)."""

    status, slug, title = 422, "drug-import-rejected", "Drug import rejected"

    def __init__(self, problems: Sequence[RowProblem], rows: int) -> None:
        self.problems = sorted(problems, key=lambda p: (p.row, p.column or "", p.message))
        rejected = len({p.row for p in self.problems})
        super().__init__(
            f"Nothing was imported: {rejected} of {rows} rows have problems. Fix them and import the file again.",
            errors=[FieldError(p.path(), p.message) for p in self.problems[:LISTED_PROBLEMS]],
            extra={"rows": rows, "rejected_rows": rejected},
        )


class DrugSourceConflict(Conflict):
    slug, title = "drug-source-conflict", "Drug source is of the other kind"


class PrescriptionNotFound(NotFound):
    slug, title = "prescription-not-found", "Prescription not found"


class PrescribingNotAllowed(DomainError):
    """Not the treating doctor, or the consultation is not in a state (or window) where prescribing is allowed."""

    status, slug, title = 403, "prescribing-not-allowed", "Prescribing not allowed"


class PrescriptionRuleViolated(DomainError):
    """A hard prescribing rule (VN-x, TM-x) is broken; ``errors`` name each rule and field."""

    status, slug, title = 422, "prescription-rule-violated", "Prescription breaks a prescribing rule"

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        rules = sorted({p.rule for p in problems})
        super().__init__(
            f"The prescription cannot be signed: {len(problems)} problem(s) with rule(s) {', '.join(rules)}.",
            errors=[FieldError(p.path, f"[{p.rule}] {p.message}") for p in problems],
            extra={"rules": rules},
        )


class OverrideRequired(DomainError):
    """A contraindicated clinical finding (CDS-x) needs the doctor's override reason before signing."""

    status, slug, title = 422, "clinical-override-required", "Clinical finding needs an override reason"

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__(
            f"{len(findings)} finding(s) block signing until you record why you prescribe anyway.",
            errors=[FieldError("overrides", f"[{f.rule}] {f.key}: {f.title}") for f in findings],
            extra={"findings": [msgspec.to_builtins(f) for f in findings]},
        )



class PrescriptionStateConflict(Conflict):
    """The prescription is not in a state that allows this (e.g. signing a signed one, cancelling a dispensed one)."""

    slug, title = "prescription-state-conflict", "Prescription is not in a state that allows this"


class PrescriptionExpired(Conflict):
    slug, title = "prescription-expired", "Prescription expired"


class SigningCodeRejected(DomainError):
    """The TOTP code at the signing ceremony is wrong or already used; nothing was signed."""

    status, slug, title = 422, "signing-code-rejected", "Signing code rejected"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[FieldError("body.totp_code", detail)])


class QrInvalid(DomainError):
    status, slug, title = 422, "qr-invalid", "QR code invalid"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[FieldError("body.qr", detail)])
