"""Schedule arithmetic against the seeded schedule (migration 0012): fixed birth dates, histories and clocks."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from api import embedded_pg
from notifications import vaccination as vx
from notifications import vaccination_db


@pytest.fixture(scope="session")
async def catalogue(pg_cluster: embedded_pg.EmbeddedCluster, template_db: str) -> vx.Catalogue:
    conn = await asyncpg.connect(pg_cluster.admin_dsn(template_db))
    try:
        return await vaccination_db.catalogue(conn)
    finally:
        await conn.close()  # a template must have no connections when it is cloned


def d(text: str) -> date:
    return date.fromisoformat(text)


def doses(*entries: tuple[str, int, str]) -> list[vx.GivenDose]:
    return [vx.GivenDose(vaccine=v, dose_number=n, given_on=d(on)) for v, n, on in entries]


def plan_by_series(catalogue: vx.Catalogue, dob: str, given: list[vx.GivenDose],
                   today: str) -> dict[str, vx.SeriesPlan]:
    return {p.series: p for p in vx.plan(d(dob), catalogue, given, d(today))}


@pytest.mark.parametrize(("start", "months", "expected"), [
    ("2025-01-31", 1, "2025-02-28"),
    ("2024-01-31", 1, "2024-02-29"),  # leap year
    ("2025-01-31", 2, "2025-03-31"),
    ("2025-01-31", 3, "2025-04-30"),
    ("2025-08-31", 6, "2026-02-28"),
    ("2025-11-15", 2, "2026-01-15"),  # across the year
    ("2025-03-31", -1, "2025-02-28"),
    ("2024-05-10", 18, "2025-11-10"),
])
def test_add_months_is_calendar_arithmetic_clamped_to_month_end(start: str, months: int, expected: str) -> None:
    assert vx.add_months(d(start), months) == d(expected)


# (case, dob, history, today, series, status, next vaccine, next dose, due_date, earliest_valid)
CASES = [
    ("first dose ahead", "2025-01-15", [], "2025-03-10",
     "DTP", "upcoming", "DTP_HEPB_HIB", 1, "2025-03-15", "2025-03-15"),
    ("first dose on its day", "2025-01-15", [], "2025-03-15",
     "DTP", "due", "DTP_HEPB_HIB", 1, "2025-03-15", "2025-03-15"),
    ("due for a week", "2025-01-15", [], "2025-03-21",
     "DTP", "due", "DTP_HEPB_HIB", 1, "2025-03-15", "2025-03-15"),
    ("overdue from D+7", "2025-01-15", [], "2025-03-22",
     "DTP", "overdue", "DTP_HEPB_HIB", 1, "2025-03-15", "2025-03-15"),
    ("on time: next at the recommended age", "2025-01-15", [("DTP_HEPB_HIB", 1, "2025-03-15")], "2025-03-20",
     "DTP", "upcoming", "DTP_HEPB_HIB", 2, "2025-04-15", "2025-04-12"),
    ("late dose moves the next one: a calendar month to recommend, 28 days to be valid", "2025-01-15",
     [("DTP_HEPB_HIB", 1, "2025-05-02")], "2025-05-10",
     "DTP", "upcoming", "DTP_HEPB_HIB", 2, "2025-06-02", "2025-05-30"),
    ("missing doses: never restart, resume with the next", "2025-01-15",
     [("DTP_HEPB_HIB", 1, "2025-03-15")], "2025-09-01",
     "DTP", "overdue", "DTP_HEPB_HIB", 2, "2025-04-15", "2025-04-12"),
    ("a gap in the record: resume after the highest dose", "2025-01-15",
     [("OPV", 1, "2025-03-15"), ("OPV", 3, "2025-05-20")], "2025-06-01",
     "OPV", "complete", None, None, None, None),
    ("dose 4 needs 6 months after dose 3 as well as 18 months of age", "2024-01-10",
     [("DTP_HEPB_HIB", 1, "2024-03-10"), ("DTP_HEPB_HIB", 2, "2024-04-10"), ("DTP_HEPB_HIB", 3, "2025-05-01")],
     "2025-06-01", "DTP", "upcoming", "DTP_BOOST", 4, "2025-10-28", "2025-10-28"),
    ("measles series: monovalent at 9 months, then MR at 18", "2024-01-10", [("MEASLES", 1, "2024-10-10")],
     "2025-06-01", "MEASLES", "upcoming", "MR", 2, "2025-07-10", "2025-07-10"),
    ("live injectable spacing: MR waits 28 days after another live vaccine", "2024-01-10",
     [("MEASLES", 1, "2024-10-10"), ("JE_LIVE", 1, "2025-07-01")], "2025-07-05",
     "MEASLES", "upcoming", "MR", 2, "2025-07-29", "2025-07-29"),
    ("oral live vaccines do not push injectables back", "2025-01-15",
     [("OPV", 1, "2025-09-20")], "2025-09-25", "MEASLES", "upcoming", "MEASLES", 1, "2025-10-15", "2025-10-15"),
    ("JE dose 2 one to two weeks after dose 1", "2024-01-10", [("JE", 1, "2025-01-20")], "2025-01-22",
     "JE", "upcoming", "JE", 2, "2025-01-27", "2025-01-27"),
    ("JE dose 3 a year after dose 2", "2024-01-10", [("JE", 1, "2025-01-20"), ("JE", 2, "2025-01-30")],
     "2025-03-01", "JE", "upcoming", "JE", 3, "2026-01-30", "2026-01-30"),
    ("month ends: born 31 Jan, 2 months is 31 Mar", "2025-01-31", [], "2025-03-01",
     "DTP", "upcoming", "DTP_HEPB_HIB", 1, "2025-03-31", "2025-03-31"),
    ("month ends: a month after 31 Mar is 30 Apr", "2025-01-31", [("DTP_HEPB_HIB", 1, "2025-03-31")], "2025-04-01",
     "DTP", "upcoming", "DTP_HEPB_HIB", 2, "2025-04-30", "2025-04-28"),
    ("month ends: 5 months after 31 Jan is 30 Jun", "2025-01-31", [], "2025-06-01",
     "IPV", "upcoming", "IPV", 1, "2025-06-30", "2025-06-30"),
    ("catch-up limit: primary series past the first birthday goes to a clinician", "2024-01-10", [], "2025-01-10",
     "DTP", "ask_clinician", "DTP_HEPB_HIB", 1, "2024-03-10", "2024-03-10"),
    ("catch-up limit: MR past 2 years goes to a clinician", "2023-01-10", [("MEASLES", 1, "2023-10-10")],
     "2025-01-10", "MEASLES", "ask_clinician", "MR", 2, "2024-07-10", "2024-07-10"),
    ("hepatitis B birth dose is not scheduled late", "2025-01-15", [], "2025-01-20",
     "HEPB_BD", "ask_clinician", "HEPB_BD", 0, "2025-01-15", "2025-01-15"),
    ("BCG is due from birth and stays catchable in the first year", "2025-01-15", [], "2025-06-01",
     "BCG", "overdue", "BCG", 1, "2025-01-15", "2025-01-15"),
    ("rotavirus (pilot provinces) is optional until started", "2025-01-15", [], "2025-03-01",
     "ROTA", "optional", "ROTA", 1, "2025-03-15", "2025-02-26"),
    ("rotavirus started: dose 2 planned", "2025-01-15", [("ROTA", 1, "2025-03-15")], "2025-03-20",
     "ROTA", "upcoming", "ROTA", 2, "2025-04-15", "2025-04-12"),
    ("rotavirus hard cutoff at 6 months", "2025-01-15", [("ROTA", 1, "2025-03-15")], "2025-07-15",
     "ROTA", "too_late", "ROTA", 2, "2025-04-15", "2025-04-12"),
    ("rotavirus: dose 1 so late that dose 2 cannot fit before the cutoff", "2025-01-15",
     [("ROTA", 1, "2025-06-25")], "2025-06-26", "ROTA", "too_late", "ROTA", 2, "2025-07-25", "2025-07-23"),
    ("rotavirus close to the cutoff: due as early as valid", "2025-01-15", [("ROTA", 1, "2025-06-16")],
     "2025-06-18", "ROTA", "upcoming", "ROTA", 2, "2025-07-14", "2025-07-14"),
    ("Rotarix cutoff is 24 weeks", "2025-01-15", [("ROTA_RX", 1, "2025-05-20")], "2025-07-02",
     "ROTA_RX", "too_late", "ROTA_RX", 2, "2025-06-20", "2025-06-17"),
    ("paid 6-in-1 started: its own series goes on", "2025-01-15", [("HEXA", 1, "2025-03-15")], "2025-03-20",
     "HEXA", "upcoming", "HEXA", 2, "2025-04-15", "2025-04-12"),
    ("paid 6-in-1 started: the free 5-in-1 asks a clinician instead of doubling", "2025-01-15",
     [("HEXA", 1, "2025-03-15")], "2025-03-20",
     "DTP", "ask_clinician", "DTP_HEPB_HIB", 1, "2025-03-15", "2025-03-15"),
    ("complete series", "2025-01-15", [("IPV", 1, "2025-06-15"), ("IPV", 2, "2025-10-15")], "2025-11-01",
     "IPV", "complete", None, None, None, None),
]


@pytest.mark.parametrize(
    ("dob", "history", "today", "series", "status", "vaccine", "dose_number", "due", "earliest"),
    [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_plan(catalogue: vx.Catalogue, dob: str, history: list[tuple[str, int, str]], today: str, series: str,
              status: str, vaccine: str | None, dose_number: int | None, due: str | None,
              earliest: str | None) -> None:
    entry = plan_by_series(catalogue, dob, doses(*history), today)[series]
    assert entry.status == status, entry
    if vaccine is None:
        assert entry.next is None
        return
    assert entry.next is not None
    assert (entry.next.vaccine, entry.next.dose_number) == (vaccine, dose_number)
    assert (entry.next.due_date, entry.next.earliest_valid) == (d(due or ""), d(earliest or ""))


def test_plan_leaves_out_paid_series_not_started_and_adult_series(catalogue: vx.Catalogue) -> None:
    series = set(plan_by_series(catalogue, "2025-01-15", [], "2025-03-01"))
    assert {"HEPB_BD", "BCG", "DTP", "OPV", "IPV", "MEASLES", "JE", "ROTA", "PCV"} == series


def test_mixed_products_send_both_series_to_a_clinician(catalogue: vx.Catalogue) -> None:
    plans = plan_by_series(catalogue, "2025-01-15", doses(("DTP_HEPB_HIB", 1, "2025-03-15"), ("HEXA", 2, "2025-04-15")),
                           "2025-04-20")
    assert plans["DTP"].status == plans["HEXA"].status == "ask_clinician"
    assert plans["DTP"].reason and "HEXA" in plans["DTP"].reason


def test_hard_cutoff_dates_are_reported(catalogue: vx.Catalogue) -> None:
    entry = plan_by_series(catalogue, "2025-01-15", doses(("ROTA", 1, "2025-03-15")), "2025-03-20")["ROTA"]
    assert entry.next is not None and entry.next.hard_cutoff
    assert entry.next.latest_date == d("2025-07-14")  # before 6 months of age


def test_every_schedule_row_says_where_it_comes_from(catalogue: vx.Catalogue) -> None:
    for row in catalogue.doses:
        assert row.legal_basis and row.source and row.confidence in ("verified", "secondary", "unconfirmed")
    pcv = [r for r in catalogue.doses if r.series == "PCV"]
    assert pcv and all(r.confidence == "unconfirmed" and r.program_scope == "pilot_provinces" for r in pcv)


# (case, dob, history, vaccine, dose, given_on, today, problem paths, warning codes)
CHECKS = [
    ("on time", "2025-01-15", [], "DTP_HEPB_HIB", 1, "2025-03-15", "2025-03-20", [], []),
    ("unknown vaccine", "2025-01-15", [], "NOPE", 1, "2025-03-15", "2025-03-20", ["body.vaccine"], []),
    ("dose number not in the schedule", "2025-01-15", [], "IPV", 3, "2025-03-15", "2025-03-20",
     ["body.dose_number"], []),
    ("in the future", "2025-01-15", [], "BCG", 1, "2025-03-21", "2025-03-20", ["body.given_on"], []),
    ("before birth", "2025-01-15", [], "BCG", 1, "2025-01-14", "2025-03-20", ["body.given_on"], []),
    ("before an earlier dose of the series", "2025-01-15", [("DTP_HEPB_HIB", 1, "2025-04-15")], "DTP_HEPB_HIB", 2,
     "2025-04-01", "2025-05-01", ["body.given_on"], []),
    ("after a later dose of the series", "2025-01-15", [("DTP_HEPB_HIB", 3, "2025-05-15")], "DTP_HEPB_HIB", 2,
     "2025-05-20", "2025-06-01", ["body.given_on"], []),
    ("too early: recorded with a warning", "2025-01-15", [], "DTP_HEPB_HIB", 1, "2025-03-01", "2025-03-20",
     [], ["before_earliest_valid"]),
    ("too soon after the previous dose", "2025-01-15", [("DTP_HEPB_HIB", 1, "2025-03-15")], "DTP_HEPB_HIB", 2,
     "2025-04-01", "2025-04-10", [], ["before_earliest_valid"]),
    ("previous dose not recorded", "2025-01-15", [], "DTP_HEPB_HIB", 3, "2025-05-15", "2025-06-01",
     [], ["previous_dose_missing"]),
    ("live injectables 10 days apart", "2024-01-10", [("JE_LIVE", 1, "2025-07-01")], "MR", 2, "2025-07-11",
     "2025-08-01", [], ["previous_dose_missing", "live_vaccine_spacing"]),
    ("live injectables the same day are fine", "2024-01-10", [("MEASLES", 1, "2024-10-10"), ("JE_LIVE", 1,
     "2025-07-10")], "MR", 2, "2025-07-10", "2025-08-01", [], []),
    ("rotavirus after the cutoff", "2025-01-15", [("ROTA", 1, "2025-03-15")], "ROTA", 2, "2025-07-20",
     "2025-08-01", [], ["after_hard_cutoff"]),
    ("outside the programme's age", "2024-01-10", [], "BCG", 1, "2025-02-01", "2025-03-01",
     [], ["outside_target_group"]),
]


@pytest.mark.parametrize(
    ("dob", "history", "vaccine", "dose_number", "given_on", "today", "problems", "warnings"),
    [case[1:] for case in CHECKS], ids=[case[0] for case in CHECKS])
def test_check_dose(catalogue: vx.Catalogue, dob: str, history: list[tuple[str, int, str]], vaccine: str,
                    dose_number: int, given_on: str, today: str, problems: list[str], warnings: list[str]) -> None:
    check = vx.check_dose(d(dob), catalogue, doses(*history), vaccine, dose_number, d(given_on), d(today))
    assert [p.path for p in check.problems] == problems
    assert [w.code for w in check.warnings] == warnings
