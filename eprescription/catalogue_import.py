"""Administrator import of a drug catalogue from CSV: every row is checked first, then all rows are upserted in one
transaction, or none are. The column format is documented in the README, section "Drug catalogue"."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import get_args

import asyncpg

from api import audit
from api.audit import AuditContext
from api.errors import InvalidInput
from eprescription import catalogue_db as db
from eprescription.catalogue_schemas import ControlClass, DrugImportReport, PregnancyWarning, Route
from eprescription.errors import DrugFileUnreadable, DrugImportRejected, DrugSourceConflict, RowProblem

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 200_000  # the national registration database holds well under this many products
CHUNK_ROWS = 2_000  # rows per upsert statement: progress moves, and no statement nears the pool's command timeout

REQUIRED_COLUMNS = ("inn", "strength", "dosage_form", "route", "control_class")
OPTIONAL_COLUMNS = ("atc_code", "registration_number", "trade_names", "ingredients", "rx_required", "is_medicine",
                    "pregnancy_warning", "weight_based_dosing", "active", "source")
LIST_SEPARATOR = "|"

SOURCE_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,59}$")
_ATC = re.compile(r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$")
_REGISTRATION = re.compile(r"^[0-9A-ZĐ][0-9A-ZĐ./-]{2,39}$")
_LIMITS = {"inn": 200, "strength": 100, "dosage_form": 100, "source": 500, "name": 100}

Progress = Callable[[str, int, int], None]
"""Told (phase, done, total) as an import advances; phases are "checking", "loading" and "saving"."""


def _fold(text: str) -> str:
    """Lower case, no diacritics, single spaces: for matching the small vocabularies below, not for search."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


# Codes, and the Vietnamese words pharmacy software exports use for them.
_ROUTES: dict[str, str] = {code: code for code in get_args(Route)} | {
    "uong": "oral", "ngam duoi luoi": "sublingual", "dat duoi luoi": "sublingual", "ngam": "buccal",
    "hit": "inhalation", "khi dung": "inhalation", "nho mui": "nasal", "xit mui": "nasal",
    "dung ngoai": "topical", "boi": "topical", "boi ngoai da": "topical", "ngoai da": "topical",
    "dan": "transdermal", "dan qua da": "transdermal", "nho mat": "ophthalmic", "tra mat": "ophthalmic",
    "nho tai": "otic", "dat hau mon": "rectal", "dat truc trang": "rectal", "dat am dao": "vaginal",
    "tiem": "injection", "tiem bap": "injection", "tiem tinh mach": "injection", "tiem duoi da": "injection",
    "truyen tinh mach": "injection", "tiem truyen": "injection", "khac": "other",
}
_CONTROL_CLASSES: dict[str, str] = {code: code for code in get_args(ControlClass)} | {
    "thuong": "none", "khong": "none", "gay nghien": "narcotic", "huong than": "psychotropic",
    "huong tam than": "psychotropic", "tien chat": "precursor",
}
_PREGNANCY: dict[str, str] = {code: code for code in get_args(PregnancyWarning)}
_BOOLEANS = {"true": True, "yes": True, "y": True, "1": True, "co": True,
             "false": False, "no": False, "n": False, "0": False, "khong": False}

StagedRow = tuple[int, str, list[str], str, str, str, str | None, bool, str, bool, str | None, list[str], str, bool,
                  bool, str]


def source_code_for(file_name: str) -> str:
    """A source code from a file name: "DAV 2026-01.csv" -> "dav-2026-01"."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    code = re.sub(r"[^a-z0-9._-]+", "-", _fold(stem)).strip("-._")[:60]
    return code if SOURCE_CODE.match(code) else "import"


# ---------------------------------------------------------------- reading the file

def check_size(size: int) -> None:
    """Refuse a file by its size alone, before anything reads it into memory."""
    if size > MAX_FILE_BYTES:
        raise DrugFileUnreadable(f"The file is {size / 1_048_576:.1f} MiB; the limit is "
                                 f"{MAX_FILE_BYTES // 1_048_576} MiB. Split it into several files.")


def _decode(data: bytes) -> str:
    check_size(len(data))
    if not data.strip():
        raise DrugFileUnreadable("The file is empty: expected a header row naming the columns, then one drug a row.")
    if data.startswith(b"PK\x03\x04"):
        raise DrugFileUnreadable("This is a spreadsheet workbook (.xlsx), not CSV. Save it as 'CSV UTF-8'.")
    if b"\x00" in data:
        raise DrugFileUnreadable("The file contains NUL bytes, so it is not CSV text (UTF-16, or a binary file?). "
                                 "Save it as 'CSV UTF-8'.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DrugFileUnreadable(f"The file is not UTF-8 text: line {line} has a byte that is not (offset "
                                 f"{exc.start}). Save it as 'CSV UTF-8'.") from None


def _header(raw: list[str]) -> list[str]:
    columns = [_fold(name).replace(" ", "_") for name in raw]
    while columns and not columns[-1]:  # spreadsheets pad the header with empty cells; their rows stay empty
        columns.pop()
    if "" in columns:
        raise DrugFileUnreadable(f"Column {columns.index('') + 1} of the header has no name.")
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    unknown = [name for name in columns if name not in known]
    if unknown:
        raise DrugFileUnreadable(
            f"Unknown column(s) {', '.join(repr(c) for c in unknown)} in the header. Required: "
            f"{', '.join(REQUIRED_COLUMNS)}; optional: {', '.join(OPTIONAL_COLUMNS)}.")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DrugFileUnreadable(f"Column(s) {', '.join(repeated)} appear more than once in the header.")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DrugFileUnreadable(f"Missing required column(s): {', '.join(missing)}.")
    return columns


def _read_rows(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header columns and the non-blank records with their row numbers (header = row 1), or DrugFileUnreadable."""
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    # Excel writes ';' where the decimal separator is a comma, as in Vietnamese ("7,5 mg").
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    row_no = 0  # the last row read whole; a csv.Error is about the next one
    try:
        header = next(reader, None)
        if header is None:
            raise DrugFileUnreadable("The file is empty: expected a header row naming the columns.")
        columns = _header(header)
        row_no = 1
        records: list[tuple[int, list[str]]] = []
        for row_no, record in enumerate(reader, start=2):
            if not any(field.strip() for field in record):
                continue
            if len(records) == MAX_ROWS:
                raise DrugFileUnreadable(f"The file has more than {MAX_ROWS} drug rows. Split it into several files.")
            records.append((row_no, record))
    except csv.Error as exc:
        raise DrugFileUnreadable(f"Row {row_no + 1} is not valid CSV ({exc}). Check quoting around that row.") from None
    if not records:
        raise DrugFileUnreadable("The file has a header but no drug rows.")
    return columns, records


# ---------------------------------------------------------------- checking one row

class _Row:
    """Collects one record's problems while its fields are turned into staged values."""

    def __init__(self, row_no: int, values: dict[str, str]) -> None:
        self.row_no = row_no
        self.values = values
        self.problems: list[RowProblem] = []

    def problem(self, column: str | None, message: str) -> None:
        self.problems.append(RowProblem(self.row_no, column, message))

    def text(self, column: str, *, required: bool = False) -> str:
        raw = self.values.get(column, "")
        value = " ".join(unicodedata.normalize("NFC", raw).split())
        if required and not value:
            self.problem(column, "is required")
        elif len(value) > _LIMITS[column]:
            self.problem(column, f"is {len(value)} characters long; at most {_LIMITS[column]}")
        elif any(unicodedata.category(c) == "Cc" for c in value):
            self.problem(column, "contains control characters")
        return value

    def names(self, column: str, default: list[str], most: int) -> list[str]:
        raw = " ".join(unicodedata.normalize("NFC", self.values.get(column, "")).split())
        names = list(dict.fromkeys(n.strip() for n in raw.split(LIST_SEPARATOR) if n.strip())) if raw else default
        if len(names) > most:
            self.problem(column, f"lists {len(names)} names; at most {most}")
        too_long = [n for n in names if len(n) > _LIMITS["name"]]
        if too_long:
            self.problem(column, f"name {too_long[0][:30]!r}... is longer than {_LIMITS['name']} characters")
        return names

    def choice(self, column: str, vocabulary: dict[str, str], default: str | None = None) -> str:
        raw = self.values.get(column, "").strip()
        if not raw and default is not None:
            return default
        value = vocabulary.get(_fold(raw))
        if value is None:
            codes = sorted(set(vocabulary.values()))
            self.problem(column, f"{raw[:40]!r} is not one of {', '.join(codes)}" if raw else "is required")
            return codes[0]
        return value

    def flag(self, column: str, default: bool) -> bool:
        raw = self.values.get(column, "").strip()
        if not raw:
            return default
        value = _BOOLEANS.get(_fold(raw))
        if value is None:
            self.problem(column, f"{raw[:40]!r} is not true or false")
            return default
        return value

    def code(self, column: str, pattern: re.Pattern[str], example: str) -> str | None:
        raw = self.values.get(column, "").strip()
        if not raw:
            return None
        value = raw.upper().replace(" ", "")
        if not pattern.match(value):
            self.problem(column, f"{raw[:40]!r} is not {example}")
        return value


def _check_row(row_no: int, values: dict[str, str], file_label: str) -> tuple[StagedRow, list[RowProblem]]:
    """One record as staged values, with what is wrong with it (nothing is staged when anything is)."""
    row = _Row(row_no, values)
    inn = row.text("inn", required=True)
    strength = row.text("strength", required=True)
    dosage_form = row.text("dosage_form", required=True)
    route = row.choice("route", _ROUTES)
    control_class = row.choice("control_class", _CONTROL_CLASSES)
    atc_code = row.code("atc_code", _ATC, "an ATC code (e.g. N02BE01, or a group such as C09AA)")
    registration_number = row.code("registration_number", _REGISTRATION,
                                   "a registration number (e.g. VD-12345-19, VN-20532-17, QLĐB-531-16)")
    ingredients = row.names("ingredients", [p.strip() for p in inn.split("+") if p.strip()], 10)
    trade_names = row.names("trade_names", [], 20)
    source = row.text("source") or f"{file_label} row {row_no}"
    staged: StagedRow = (
        row_no, inn, ingredients, strength, dosage_form, route, atc_code, row.flag("rx_required", True),
        control_class, row.flag("is_medicine", True), registration_number, trade_names,
        row.choice("pregnancy_warning", _PREGNANCY, "none"), row.flag("weight_based_dosing", False),
        row.flag("active", True), source,
    )
    return staged, row.problems


def _check_rows(columns: list[str], records: list[tuple[int, list[str]]], file_label: str,
               progress: Progress) -> tuple[list[StagedRow], list[RowProblem]]:
    staged: list[StagedRow] = []
    problems: list[RowProblem] = []
    for done, (row_no, record) in enumerate(records, start=1):
        if len(record) < len(columns) or any(f.strip() for f in record[len(columns):]):
            problems.append(RowProblem(row_no, None, f"has {len(record)} fields; the header has {len(columns)}"))
        else:
            values, row_problems = _check_row(row_no, dict(zip(columns, record, strict=False)), file_label)
            if row_problems:
                problems += row_problems
            else:
                staged.append(values)
        if done % 1000 == 0 or done == len(records):
            progress("checking", done, len(records))
    return staged, problems


# ---------------------------------------------------------------- the import

def _silent(phase: str, done: int, total: int) -> None:
    """Progress for callers that show none (the HTTP endpoint)."""


async def import_drugs(pool: asyncpg.Pool, data: bytes, *, source: str, file_label: str, demo_data: bool,
                       ctx: AuditContext, progress: Progress = _silent) -> DrugImportReport:
    """Import ``data`` (CSV bytes) as dataset ``source``: every row, or nothing.

    Any rejected row rejects the whole file: a catalogue that is silently missing drugs is worse than a re-run,
    and the report names every problem at once so one correction pass is enough. Rows are upserted by drug key
    (registration number, else INN + strength + dosage form); rows equal to the stored ones count as unchanged.
    """
    if not SOURCE_CODE.match(source):
        raise InvalidInput("source", "a source code is 2-60 characters: lower-case letters, digits, '.', '_', '-'")
    columns, records = _read_rows(data)
    staged, problems = _check_rows(columns, records, file_label, progress)
    digest = hashlib.sha256(data).hexdigest()
    async with pool.acquire() as conn, conn.transaction():
        progress("loading", 0, len(staged))
        await db.stage(conn, staged)
        for group in await db.duplicate_rows(conn):
            problems += [RowProblem(row, None, f"is the same drug as row {group[0]} (same registration number, or "
                                               "same INN, strength and dosage form when there is none)")
                         for row in group[1:]]
        progress("loading", len(staged), len(staged))
        if problems:
            raise DrugImportRejected(problems, len(records))  # leaving the block rolls everything back
        notes = (f"Created by the import of {file_label} ({len(records)} rows, sha256 {digest}) on "
                 f"{datetime.now(UTC).isoformat(timespec='seconds')}; every import is in the audit log.")
        if not await db.upsert_source(conn, source, file_label, demo_data, notes):
            kind = "demonstration" if not demo_data else "real (non-demo)"
            raise DrugSourceConflict(f"Source {source!r} holds {kind} data; import under another source code, "
                                     "or match its demo flag.")
        inserted = updated = 0
        for start in range(0, len(staged), CHUNK_ROWS):
            chunk = staged[start:start + CHUNK_ROWS]
            added, changed = await db.upsert_staged(conn, source, chunk[0][0], chunk[-1][0])
            inserted, updated = inserted + added, updated + changed
            progress("saving", start + len(chunk), len(staged))
        if inserted + updated:
            await db.after_bulk_load(conn)
        report = DrugImportReport(source=source, demo_data=demo_data, rows=len(records), inserted=inserted,
                                  updated=updated, unchanged=len(records) - inserted - updated)
        await audit.record(conn, ctx, "drug_catalogue.imported", target_type="drug_source", target_id=source,
                           details={"file": file_label, "sha256": digest, "rows": report.rows,
                                    "inserted": inserted, "updated": updated, "unchanged": report.unchanged,
                                    "demo_data": demo_data})
    return report


def summary_lines(problems: Sequence[RowProblem], listed: int = 50) -> list[str]:
    """The rejected rows as a person reads them on a terminal."""
    lines = [f"  {p}" for p in problems[:listed]]
    if len(problems) > listed:
        lines.append(f"  ... and {len(problems) - listed} more problem(s)")
    return lines
