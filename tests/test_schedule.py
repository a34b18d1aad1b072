"""The closed-campus schedule: school hours in the school's time zone, holidays, periods past midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.base.errors import ConfigError
from gateway.config import parse_config
from gateway.safety.schedule import schedule_from
from tests.test_config import MINIMAL

SCHEDULE = """
[schedule]
timezone = "Asia/Shanghai"
holidays = [2026-10-01]
extra_days = [{ date = 2026-10-11, as = "mon" }]
[[schedule.periods]]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "07:30"
end = "17:30"
[[schedule.periods]]
days = ["sat"]
start = "22:00"
end = "06:00"
"""


def at(text: str) -> datetime:
    """A UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "closed"),
    [
        ("2026-11-30T00:00:00", True),  # Monday 08:00 in Shanghai
        ("2026-11-29T23:29:59", False),  # Monday 07:29:59
        ("2026-11-29T23:30:00", True),  # Monday 07:30: the start counts
        ("2026-11-30T09:30:00", False),  # Monday 17:30: the end does not
        ("2026-11-29T02:00:00", False),  # Sunday 10:00
        ("2026-10-01T02:00:00", False),  # Thursday, but a holiday
        ("2026-10-11T02:00:00", True),  # Sunday, but a make-up school day (调休) on Monday's hours
        ("2026-10-18T02:00:00", False),  # an ordinary Sunday
        ("2026-11-28T15:00:00", True),  # Saturday 23:00: the night period
        ("2026-11-28T21:00:00", True),  # Sunday 05:00: Saturday's period past midnight
        ("2026-11-28T22:00:00", False),  # Sunday 06:00
    ],
)
def test_schedule_closed_in_the_schools_time_zone(instant: str, closed: bool) -> None:
    cfg = parse_config(MINIMAL + SCHEDULE, "g.toml")
    assert cfg.schedule is not None
    assert cfg.schedule.holidays == (date(2026, 10, 1),)
    assert schedule_from(cfg.schedule).closed(at(instant)) is closed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"Asia/Shanghai"', '"Asia/Beijing"'), r"g\.toml:28: schedule\.timezone: .*unknown time zone 'Asia/Beijing'"),
        (('start = "07:30"', 'start = "7:30"'), r"schedule\.periods\[0\]\.start: .*pattern"),
        (('end = "17:30"', 'end = "24:00"'), r"schedule\.periods\[0\]\.end"),
        (('days = ["sat"]', 'days = ["saturday"]'), r"schedule\.periods\[1\]\.days\[0\]"),
        (('days = ["sat"]', "days = []"), r"schedule\.periods\[1\]\.days"),
    ],
)
def test_schedule_config_errors_name_the_line(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(MINIMAL + SCHEDULE.replace(*change), "g.toml")
