"""Vaccination schedule arithmetic: a child's plan (next dose per series and its dates) and the checks on a recorded
dose. Pure functions; the clock is the ``today`` argument. The rules themselves are data (migration 0012).

Dates follow spec notifications.md §1.2 and §2.2:

* ages are calendar months + days ("đủ N tháng" = N completed calendar months; 31 Jan + 1 month = 28/29 Feb);
* ``due_date`` = max(DOB + recommended age, previous dose + recommended interval, else + minimum interval);
* ``earliest_valid`` = max(DOB + minimum age, previous dose + minimum interval), later still when a live injectable
  vaccine was given less than 28 days before;
* a series is never restarted: the plan resumes with the dose after the highest one recorded;
* past a hard cutoff (rotavirus) a series is ``too_late``; past the free programme's target group it is
  ``ask_clinician`` (a paid vaccine or a catch-up campaign may still apply). Neither gets reminders.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Literal
from uuid import UUID

import msgspec

Program = Literal["tcmr", "paid"]
Scope = Literal["national", "pilot_provinces", "service"]
Confidence = Literal["verified", "secondary", "unconfirmed"]
Status = Literal["upcoming", "due", "overdue", "ask_clinician", "too_late", "complete", "optional"]

LIVE_SPACING_DAYS = 28  # live injectable vaccines: same day or at least 4 weeks apart
OVERDUE_AFTER_DAYS = 7  # "due" for a week after the due date, then "overdue" (the first recall, spec §2.2)
REMINDED: frozenset[str] = frozenset({"upcoming", "due", "overdue"})


def add_months(day: date, months: int) -> date:
    """Calendar-month arithmetic, clamped to the month's last day (as dateutil's relativedelta does)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class Span(msgspec.Struct, frozen=True):
    """An age or an interval: calendar months, then days."""

    months: int = 0
    days: int = 0

    def after(self, start: date) -> date:
        return add_months(start, self.months) + timedelta(days=self.days)


class Series(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name_vi: str
    program: Program
    program_scope: Scope
    for_children: bool
    overlaps_with: tuple[str, ...] = ()
    note: str = ""


class Vaccine(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name_vi: str
    short_name_vi: str
    series: str
    program: Program
    live: bool
    route: Literal["injection", "oral"]
    note: str = ""

    @property
    def live_injectable(self) -> bool:
        return self.live and self.route == "injection"


class ScheduleDose(msgspec.Struct, frozen=True, kw_only=True):
    series: str
    dose_number: int
    vaccine: str
    rec_age: Span
    min_age: Span
    min_interval_days: int
    rec_interval: Span | None
    max_age: Span | None  # given before DOB + max_age
    hard_cutoff: bool
    program_scope: Scope
    legal_basis: str
    source: str
    confidence: Confidence
    note: str
    valid_from: date
    valid_to: date | None

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


class Catalogue(msgspec.Struct, frozen=True, kw_only=True):
    series: list[Series]
    vaccines: list[Vaccine]
    doses: list[ScheduleDose]


class GivenDose(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded dose that counts (entered-in-error rows never reach these functions)."""

    vaccine: str
    dose_number: int
    given_on: date


class NextDose(msgspec.Struct, frozen=True, kw_only=True):
    vaccine: str
    vaccine_name: str
    dose_number: int
    due_date: date
    earliest_valid: date
    latest_date: date | None  # last day it may be given (hard cutoff) or the target group still covers it
    hard_cutoff: bool
    confidence: Confidence
    legal_basis: str


class SeriesPlan(msgspec.Struct, frozen=True, kw_only=True):
    series: str
    series_name: str
    program: Program
    program_scope: Scope
    status: Status
    doses_given: int
    next: NextDose | None
    reason: str | None = None  # why a clinician must decide, in plain words


class DoseWarning(msgspec.Struct, frozen=True):
    code: Literal["before_earliest_valid", "previous_dose_missing", "live_vaccine_spacing", "after_hard_cutoff",
                  "outside_target_group", "not_scheduled_for_children"]
    message: str


class DoseProblem(msgspec.Struct, frozen=True):
    """A reason to refuse the dose: ``path`` is the body field at fault."""

    path: str
    message: str


class DoseCheck(msgspec.Struct, frozen=True):
    problems: list[DoseProblem]
    warnings: list[DoseWarning]


def _vaccines(catalogue: Catalogue) -> dict[str, Vaccine]:
    return {v.code: v for v in catalogue.vaccines}


def _series_doses(catalogue: Catalogue, series: str, day: date) -> list[ScheduleDose]:
    rows = [d for d in catalogue.doses if d.series == series and d.in_force(day)]
    return sorted(rows, key=lambda d: d.dose_number)


def _live_floor(given: Iterable[GivenDose], vaccines: dict[str, Vaccine], day: date) -> date | None:
    """The first day a live injectable vaccine may be given after those given on or before ``day``."""
    floors = [g.given_on + timedelta(days=LIVE_SPACING_DAYS) for g in given
              if g.given_on <= day and (v := vaccines.get(g.vaccine)) is not None and v.live_injectable]
    return max(floors, default=None)


def _overlapping(catalogue: Catalogue, code: str) -> set[str]:
    out: set[str] = set()
    for s in catalogue.series:
        if s.code == code:
            out.update(s.overlaps_with)
        elif code in s.overlaps_with:
            out.add(s.code)
    return out


def plan(dob: date, catalogue: Catalogue, given: Sequence[GivenDose], today: date) -> list[SeriesPlan]:
    """The next dose of every series that applies to a child born on ``dob``, as of ``today``."""
    vaccines = _vaccines(catalogue)
    by_series: dict[str, list[GivenDose]] = {}
    for g in given:
        if (v := vaccines.get(g.vaccine)) is not None:
            by_series.setdefault(v.series, []).append(g)
    plans = []
    for series in catalogue.series:
        rows = _series_doses(catalogue, series.code, today)
        done = sorted(by_series.get(series.code, []), key=lambda g: g.dose_number)
        if not series.for_children or not rows or (series.program == "paid" and not done):
            continue
        plans.append(_series_plan(dob, catalogue, series, rows, done, given, vaccines, today, by_series))
    return plans


def _series_plan(dob: date, catalogue: Catalogue, series: Series, rows: list[ScheduleDose], done: list[GivenDose],
                 given: Sequence[GivenDose], vaccines: dict[str, Vaccine], today: date,
                 by_series: dict[str, list[GivenDose]]) -> SeriesPlan:
    def result(status: Status, next_dose: NextDose | None, reason: str | None = None) -> SeriesPlan:
        return SeriesPlan(series=series.code, series_name=series.name_vi, program=series.program,
                          program_scope=series.program_scope, status=status, doses_given=len(done), next=next_dose,
                          reason=reason)

    last = done[-1] if done else None
    remaining = [r for r in rows if last is None or r.dose_number > last.dose_number]
    if not remaining:
        return result("complete", None)
    row = remaining[0]
    vaccine = vaccines[row.vaccine]
    earliest = row.min_age.after(dob)
    due = row.rec_age.after(dob)
    if last is not None:
        earliest = max(earliest, last.given_on + timedelta(days=row.min_interval_days))
        after_prev = (row.rec_interval.after(last.given_on) if row.rec_interval is not None
                      else last.given_on + timedelta(days=row.min_interval_days))
        due = max(due, after_prev)
    if vaccine.live_injectable and (floor := _live_floor(given, vaccines, today)) is not None:
        earliest = max(earliest, floor)
    due = max(due, earliest)
    cutoff = row.max_age.after(dob) if row.max_age is not None else None
    if cutoff is not None and cutoff <= due and earliest < cutoff:
        due = earliest  # still possible, but only by going early
    next_dose = NextDose(
        vaccine=vaccine.code, vaccine_name=vaccine.name_vi, dose_number=row.dose_number, due_date=due,
        earliest_valid=earliest, latest_date=cutoff - timedelta(days=1) if cutoff is not None else None,
        hard_cutoff=row.hard_cutoff, confidence=row.confidence, legal_basis=row.legal_basis)

    mixed = sorted(s for s in _overlapping(catalogue, series.code) if by_series.get(s))
    if mixed and (done or series.program == "tcmr"):
        return result("ask_clinician", next_dose,
                      f"Trẻ đã tiêm vắc xin thay thế ({', '.join(mixed)}): bác sĩ quyết định mũi tiếp theo.")
    if cutoff is not None and (today >= cutoff or earliest >= cutoff):
        if row.hard_cutoff:
            return result("too_late", next_dose, "Đã quá tuổi tối đa cho mũi này: không tiêm nữa.")
        return result("ask_clinician", next_dose,
                      "Ngoài độ tuổi của chương trình: hỏi bác sĩ về tiêm bù hoặc vắc xin dịch vụ.")
    status: Status = ("upcoming" if today < due else
                      "due" if (today - due).days < OVERDUE_AFTER_DAYS else "overdue")
    if series.program_scope == "pilot_provinces" and not done:
        return result("optional", next_dose,
                      "Miễn phí chỉ ở một số tỉnh: hỏi trạm y tế hoặc bác sĩ.")
    return result(status, next_dose)


def check_dose(dob: date | None, catalogue: Catalogue, given: Sequence[GivenDose], vaccine_code: str,
               dose_number: int, given_on: date, today: date) -> DoseCheck:
    """Whether a dose may be recorded (``problems``) and what a clinician should look at (``warnings``).

    Doses given too early or outside the schedule happened all the same: they are recorded with a warning, because
    the record must say what was given. Only impossible facts are refused.
    """
    problems: list[DoseProblem] = []
    warnings: list[DoseWarning] = []
    vaccines = _vaccines(catalogue)
    vaccine = vaccines.get(vaccine_code)
    if vaccine is None:
        return DoseCheck([DoseProblem("body.vaccine", f"unknown vaccine {vaccine_code!r}")], [])
    rows = [d for d in catalogue.doses if d.vaccine == vaccine_code]
    numbers = sorted({d.dose_number for d in rows})
    candidates = [d for d in rows if d.dose_number == dose_number]
    if not candidates:
        listed = ", ".join(str(n) for n in numbers)
        return DoseCheck([DoseProblem("body.dose_number", f"{vaccine_code} has doses {listed}")], [])
    in_force = [d for d in candidates if d.valid_from <= given_on]
    row = max(in_force or candidates, key=lambda d: d.valid_from)
    if given_on > today:
        problems.append(DoseProblem("body.given_on", "a dose cannot be recorded before it is given"))
    if dob is not None and given_on < dob:
        problems.append(DoseProblem("body.given_on", f"before the date of birth ({dob.isoformat()})"))
    same_series = [g for g in given if (v := vaccines.get(g.vaccine)) is not None and v.series == vaccine.series]
    for g in same_series:
        if g.dose_number < dose_number and g.given_on > given_on:
            problems.append(DoseProblem(
                "body.given_on", f"before dose {g.dose_number} ({g.given_on.isoformat()}) of the same series"))
        elif g.dose_number > dose_number and g.given_on < given_on:
            problems.append(DoseProblem(
                "body.given_on", f"after dose {g.dose_number} ({g.given_on.isoformat()}) of the same series"))
    if problems:
        return DoseCheck(problems, [])

    series = next((s for s in catalogue.series if s.code == vaccine.series), None)
    if series is not None and not series.for_children:
        warnings.append(DoseWarning("not_scheduled_for_children",
                                    "Lịch của vắc xin này không được lập tự động; nhân viên y tế theo dõi."))
    series_numbers = sorted({d.dose_number for d in catalogue.doses if d.series == vaccine.series})
    earlier = [n for n in series_numbers if n < dose_number]
    recorded = {g.dose_number for g in same_series}
    missing = [n for n in earlier if n not in recorded]
    if missing:
        warnings.append(DoseWarning("previous_dose_missing",
                                    f"Chưa ghi nhận mũi {', '.join(str(n) for n in missing)} của loạt này."))
    earliest = row.min_age.after(dob) if dob is not None else None
    prev = max((g for g in same_series if g.dose_number < dose_number), key=lambda g: g.dose_number, default=None)
    if prev is not None:
        after_prev = prev.given_on + timedelta(days=row.min_interval_days)
        earliest = max(earliest, after_prev) if earliest is not None else after_prev
    if earliest is not None and given_on < earliest:
        warnings.append(DoseWarning(
            "before_earliest_valid",
            f"Tiêm trước ngày sớm nhất hợp lệ ({earliest:%d/%m/%Y}): bác sĩ xem lại mũi này có được tính không."))
    if vaccine.live_injectable:
        near = [g for g in given if g.given_on != given_on and abs((g.given_on - given_on).days) < LIVE_SPACING_DAYS
                and (v := vaccines.get(g.vaccine)) is not None and v.live_injectable]
        if near:
            warnings.append(DoseWarning(
                "live_vaccine_spacing",
                "Cách một vắc xin sống tiêm khác dưới 28 ngày (và không cùng ngày): bác sĩ xem lại."))
    if dob is not None and row.max_age is not None and given_on >= row.max_age.after(dob):
        if row.hard_cutoff:
            warnings.append(DoseWarning("after_hard_cutoff",
                                        "Tiêm sau tuổi tối đa của vắc xin: cần báo bác sĩ."))
        else:
            warnings.append(DoseWarning("outside_target_group", "Tiêm ngoài độ tuổi của chương trình."))
    return DoseCheck([], warnings)


def reminder_subject(patient_id: UUID, vaccine: str, dose_number: int) -> str:
    """The outbox subject of one dose's reminders: recording the dose cancels them all."""
    return f"vaccination:{patient_id}:{vaccine}:{dose_number}"


def series_subjects(catalogue: Catalogue, patient_id: UUID, series_codes: Iterable[str]) -> list[str]:
    """Reminder subjects of every dose of these series: what a change to the record makes stale."""
    codes = set(series_codes)
    return sorted({reminder_subject(patient_id, d.vaccine, d.dose_number) for d in catalogue.doses
                   if d.series in codes})


def affected_series(catalogue: Catalogue, vaccine_code: str) -> set[str]:
    """The series whose plan a dose of ``vaccine_code`` can change: its own and those it overlaps."""
    vaccine = _vaccines(catalogue).get(vaccine_code)
    if vaccine is None:
        return set()
    return {vaccine.series} | _overlapping(catalogue, vaccine.series)
