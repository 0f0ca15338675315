"""Slot arithmetic in Vietnam time: weekly rules, leave, extra hours, taken slots, lead time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from consultations.slots import VN, WeeklyRule, free_slots, local_day, working_windows

MONDAY = date(2026, 11, 30)
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def vn(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), VN)


def rule(weekday: int, start: tuple[int, int], end: tuple[int, int], valid_until: date | None = None) -> WeeklyRule:
    return WeeklyRule(weekday, time(*start), time(*end), date(2000, 1, 1), valid_until)


MORNINGS = [rule(1, (8, 0), (10, 0)), rule(2, (8, 0), (10, 0))]


@pytest.mark.parametrize(("rules", "extras", "leaves", "taken", "expected"), [
    (MORNINGS, [], [], [], ["08:00", "08:30", "09:00", "09:30"]),
    # leave 08:40-09:20 removes the slots it touches; slots restart after it; a 10-minute remainder is not a slot
    (MORNINGS, [], [(vn(MONDAY, 8, 40), vn(MONDAY, 9, 20))], [], ["08:00", "09:20"]),
    # extra evening hours on the Monday only
    (MORNINGS, [(vn(MONDAY, 19), vn(MONDAY, 20))], [], [], ["08:00", "08:30", "09:00", "09:30", "19:00", "19:30"]),
    # a booked 08:30-09:00 is not offered again
    (MORNINGS, [], [], [(vn(MONDAY, 8, 30), vn(MONDAY, 9))], ["08:00", "09:00", "09:30"]),
    # overlapping rules merge instead of offering the same time twice
    ([*MORNINGS, rule(1, (9, 0), (11, 0))], [], [], [], ["08:00", "08:30", "09:00", "09:30", "10:00", "10:30"]),
    # a rule that ended before the day does not apply
    ([rule(1, (8, 0), (10, 0), valid_until=MONDAY - timedelta(days=1))], [], [], [], []),
])
def test_monday_slots(rules: list[WeeklyRule], extras: list[tuple[datetime, datetime]],
                      leaves: list[tuple[datetime, datetime]], taken: list[tuple[datetime, datetime]],
                      expected: list[str]) -> None:
    windows = working_windows(rules, extras, leaves, MONDAY, 1)
    found = free_slots(windows, 30, taken, FAR_PAST, FAR_FUTURE)
    assert [s.astimezone(VN).strftime("%H:%M") for s, _ in found] == expected
    assert all(e - s == timedelta(minutes=30) for s, e in found)


def test_slots_are_in_vietnam_time_whatever_the_utc_date() -> None:
    # 06:00 in Hà Nội is 23:00 UTC the day before: the rule still belongs to the Vietnamese Monday
    windows = working_windows([rule(1, (6, 0), (7, 0))], [], [], MONDAY, 1)
    (start, _), = free_slots(windows, 60, [], FAR_PAST, FAR_FUTURE)
    assert start == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)


def test_lead_time_and_horizon_cut_slots() -> None:
    windows = working_windows(MORNINGS, [], [], MONDAY, 2)
    found = free_slots(windows, 30, [], vn(MONDAY, 9, 0), vn(MONDAY + timedelta(days=1), 8, 30))
    assert [s.astimezone(VN).strftime("%a %H:%M") for s, _ in found] == ["Mon 09:00", "Mon 09:30", "Tue 08:00",
                                                                         "Tue 08:30"]


def test_local_day_is_24_hours_from_vietnamese_midnight() -> None:
    start, end = local_day(MONDAY)
    assert start == datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1)
