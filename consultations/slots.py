"""Bookable slots from weekly rules and one-off exceptions, computed in Vietnam local time.

Pure functions: the caller passes the rules, exceptions, taken ranges and the clock, so the arithmetic is testable
on its own and the same code both lists free slots and checks a requested booking time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")

Range = tuple[datetime, datetime]


@dataclass(frozen=True)
class WeeklyRule:
    weekday: int  # ISO, 1 = Monday
    start_time: time
    end_time: time
    valid_from: date
    valid_until: date | None


def _union(ranges: Iterable[Range]) -> list[Range]:
    merged: list[Range] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(ranges: list[Range], holes: Sequence[Range]) -> list[Range]:
    result = ranges
    for hole_start, hole_end in holes:
        cut: list[Range] = []
        for start, end in result:
            if hole_end <= start or hole_start >= end:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        result = cut
    return result


def local_day(day: date) -> Range:
    """The instants of one calendar day in Vietnam."""
    start = datetime.combine(day, time.min, VN)
    return start, start + timedelta(days=1)


def working_windows(rules: Sequence[WeeklyRule], extras: Sequence[Range], leaves: Sequence[Range],
                    first_day: date, days: int) -> list[Range]:
    """When the doctor works between ``first_day`` and ``first_day + days`` (local dates), as UTC-aware ranges."""
    windows: list[Range] = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for rule in rules:
            if rule.weekday == day.isoweekday() and rule.valid_from <= day and (
                    rule.valid_until is None or day <= rule.valid_until):
                windows.append((datetime.combine(day, rule.start_time, VN), datetime.combine(day, rule.end_time, VN)))
    period = (local_day(first_day)[0], local_day(first_day + timedelta(days=days))[0])
    windows += [(max(s, period[0]), min(e, period[1])) for s, e in extras if s < period[1] and e > period[0]]
    return _subtract(_union(windows), leaves)


def slots_in(windows: Sequence[Range], slot_minutes: int) -> list[Range]:
    """Cut each window into consecutive slots from its start; a remainder shorter than a slot is not offered."""
    step = timedelta(minutes=slot_minutes)
    slots: list[Range] = []
    for start, end in windows:
        cursor = start
        while cursor + step <= end:
            slots.append((cursor, cursor + step))
            cursor += step
    return slots


def free_slots(windows: Sequence[Range], slot_minutes: int, taken: Sequence[Range], not_before: datetime,
               not_after: datetime) -> list[Range]:
    """Slots that overlap no taken range and start inside [not_before, not_after]."""
    busy = sorted(taken)
    free = []
    for start, end in slots_in(windows, slot_minutes):
        if start < not_before or start > not_after:
            continue
        if any(b_start < end and start < b_end for b_start, b_end in busy):
            continue
        free.append((start, end))
    return free
