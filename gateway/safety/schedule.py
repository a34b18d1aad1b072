"""The closed-campus schedule (封闭管理时段): when the school is in session, in the school's own time zone.

During it the scheduled bollard lanes are raised (at the lowest authority, DESIGN.md) and doors armed for
forced-open and held-open alarms (R11). It is judged only on a synchronised clock: a Raspberry Pi without network
time does not know the hour, and a schedule that guessed could lower the gate in the middle of the school day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config import ScheduleConfig

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Period:
    """Closed from `start` to `end` (local time, end excluded) on each of `days`; an end at or before the start
    runs past midnight into the next day."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time


class Schedule:
    """When the campus is closed."""

    def __init__(
        self,
        zone: str,
        periods: list[Period],
        holidays: frozenset[date] = frozenset(),
        extra_days: dict[date, int] | None = None,
    ) -> None:
        """`extra_days`: make-up school days (调休) and the weekday whose periods they follow (0 = Monday)."""
        self.zone = ZoneInfo(zone)
        self.periods = periods
        self.holidays = holidays
        self.extra_days = extra_days or {}

    def closed(self, at: datetime) -> bool:
        """Whether the campus is closed at `at` (an aware datetime)."""
        local = at.astimezone(self.zone)
        for period in self.periods:
            for days_back in (0, 1):  # today's periods, and yesterday's that run past midnight
                day = local.date() - timedelta(days=days_back)
                weekday = self.extra_days.get(day, day.weekday())
                if weekday not in period.days or (day in self.holidays and day not in self.extra_days):
                    continue
                start = datetime.combine(day, period.start, self.zone)
                end = datetime.combine(day, period.end, self.zone)
                if end <= start:
                    end += timedelta(days=1)
                if start <= local < end:
                    return True
        return False


def schedule_from(cfg: ScheduleConfig) -> Schedule:
    """The schedule a site's `[schedule]` describes."""
    periods = [
        Period(frozenset(DAYS.index(d) for d in p.days), time.fromisoformat(p.start), time.fromisoformat(p.end))
        for p in cfg.periods
    ]
    extra = {d.date: DAYS.index(d.as_) for d in cfg.extra_days}
    return Schedule(cfg.timezone, periods, frozenset(cfg.holidays), extra)
