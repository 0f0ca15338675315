"""Problems the drug catalogue and its CSV import can run into."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from api.errors import Conflict, DomainError, FieldError, NotFound

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
