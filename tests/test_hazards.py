"""Hazard-check reports (issue 6, point 3): what a day of the site's events adds up to, on an injected clock; when
reports are due; and a report as the platform receives it, checked against the contract."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from drivers.profile import Quality
from gateway.base.clock import Clock
from gateway.base.contract import Topics
from gateway.safety.alarms import AlarmBook
from gateway.safety.hazards import Inspector, ReportClock
from gateway.store.outbox import PRIORITY_EVENT, Outbox
from gateway.store.recorder import Recorder
from gateway.store.records import Event, EventState, Severity, Stamp
from gateway.store.stateboard import StateBoard
from gateway.uplink.contract_check import validate_message
from gateway.uplink.payloads import event_payload

START = 1_796_000_000_000  # a wall time in ms


class DayClock(Clock):
    """Wall time moved by the test."""

    wall: ClassVar[int] = START

    @staticmethod
    def wall_ms() -> int:
        return DayClock.wall


class Site:
    def __init__(self, state: Path) -> None:
        self.topics = Topics("demo-school", "gw-1")
        self.outbox = Outbox(state / "outbox.db")
        self.board = StateBoard(self.topics)
        clock = DayClock(assume_synced=True)
        self.recorder = Recorder(self.outbox, self.topics, self.board, clock)
        self.alarms = AlarmBook(self.recorder, self.topics, clock, state / "alarms.json")
        field_doors = {("node-b", "door2_open"): "door-store"}  # a field node's loop configured as a door
        self.inspector = Inspector(self.board, self.alarms, self.outbox, clock, field_doors=field_doors)
        self.recorder.on_events.append(self.inspector.on_events)

    def at(self, minutes: float, cls: str, state: EventState, device: str, point: str, value: Any = True,
           severity: Severity = "warning", **detail: Any) -> None:  # fmt: skip
        DayClock.wall = START + int(minutes * 60_000)
        ev = Event(cls, severity, state, device, point, value, Quality.GOOD, Stamp(DayClock.wall, 0.0, True), detail)
        self.recorder.record([], [ev])
        self.recorder.flush()


def test_hazards_a_day_adds_up(tmp_path: Path) -> None:
    site = Site(tmp_path)
    for i in range(4):  # a detector dropping off the bus four times: flapping
        site.at(10 + i, "offline", "raised", "smoke-104", "online", False)
        site.at(10.5 + i, "online", "cleared", "smoke-104", "online")
    site.at(30, "door", "raised", "door-main", "open")
    site.at(31.5, "door", "cleared", "door-main", "open", False)
    site.at(40, "door", "raised", "door-main", "open")
    site.at(41, "door", "raised", "door-main", "held_open")
    site.at(44, "door", "cleared", "door-main", "open", False)
    site.at(45, "door", "raised", "node-b", "door2_open", severity="info")
    site.at(46.5, "door", "cleared", "node-b", "door2_open", False, "info")
    site.at(47, "door", "raised", "door-store", "held_open")
    site.at(48, "door", "raised", "node-b", "door1_open", severity="info")  # a loop that is no door: not counted
    site.at(50, "bollard", "changed", "bollard-east", "state", "up", "info")
    site.at(60, "bollard", "changed", "bollard-east", "state", "up", "info")
    site.at(61, "bollard", "changed", "lane-east", "command", "lower", rule="presence_during_rise")
    site.at(70, "maintenance", "raised", "smoke-102", "low_battery")
    site.at(80, "gap", "raised", "gw-1", "outbox", count=12)
    DayClock.wall = START + 24 * 3_600_000
    report = site.inspector.report("daily")
    assert report["devices"]["went_offline"] == {"smoke-104": 4}
    assert report["devices"]["flapping"] == ["smoke-104"]
    assert report["doors"]["opened"] == {"door-main": 2, "door-store": 1}
    assert report["doors"]["held_open"] == {"door-main": 1, "door-store": 1}
    assert report["doors"]["longest_open_s"] == {"door-main": 240.0, "door-store": 90.0}
    assert report["bollards"] == {"cycles": {"bollard-east": 2}, "faults": {}, "reversals": {"lane-east": 1}}
    assert report["alarms_raised"] == {"maintenance": 5, "security": 2}
    assert [w["alarm_id"] for w in report["open_warnings"]] == ["smoke-104.offline", "smoke-102.low_battery"]
    assert report["outbox"]["gap_messages"] == 12
    assert "smoke-104" in report["readable"]["en"]
    assert "频繁掉线设备: smoke-104" in report["readable"]["zh-CN"]
    again = site.inspector.report("daily")
    assert again["devices"]["went_offline"] == {}, "the next day starts afresh"
    assert report["from"] != again["from"]


def test_hazards_a_published_report_matches_the_contract(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.at(5, "door", "raised", "door-main", "open")
    body = site.inspector.publish("weekly", site.topics.report("weekly"))
    assert body["doors"]["opened"] == {"door-main": 1}
    (row,) = [r for r in site.outbox.fetch(PRIORITY_EVENT, 0, 100) if r.topic == site.topics.report("weekly")]
    payload = json.loads(event_payload(site.topics, row))
    assert payload["schema"] == "campus-edge/report/1"
    assert payload["seq"] == row.seq
    validate_message(site.topics.report("weekly"), payload)


def test_hazards_reports_fall_due_once_a_day_week_and_month(tmp_path: Path) -> None:
    clock = ReportClock("Asia/Shanghai", time(7, 0), weekday=0, day=1, path=tmp_path / "reports.json")
    first_of_month = datetime(2026, 12, 1, 6, 59, tzinfo=UTC)  # Tuesday 14:59 in Shanghai
    assert clock.due(datetime(2026, 11, 29, 22, 59, tzinfo=UTC)) == [], "Monday 06:59 local: not yet"
    assert clock.due(datetime(2026, 11, 29, 23, 0, tzinfo=UTC)) == ["daily", "weekly"], "Monday 07:00 local"
    clock.written("daily", date(2026, 11, 30))
    clock.written("weekly", date(2026, 11, 30))
    assert clock.due(datetime(2026, 11, 30, 3, 0, tzinfo=UTC)) == [], "written today"
    assert (
        ReportClock("Asia/Shanghai", time(7, 0), 0, 1, tmp_path / "reports.json").due(
            datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
        )
        == []
    ), "kept across a restart"
    assert clock.due(first_of_month) == ["daily", "monthly"], "the first of the month"
    fresh = ReportClock("Asia/Shanghai", time(7, 0), 0, 1, None)
    fresh.begin(datetime(2026, 11, 30, 23, 30, tzinfo=UTC))  # first start, Tuesday 1 December 07:30 local
    assert fresh.due(datetime(2026, 11, 30, 23, 31, tzinfo=UTC)) == [], "no report of a minute's history"
    assert fresh.due(datetime(2026, 12, 1, 23, 0, tzinfo=UTC)) == ["daily"], "the next morning"


def test_hazards_detectors_untested_for_too_long(tmp_path: Path) -> None:
    """A detector tested 40 days ago and one never tested since it was first seen 31 days ago are listed; one
    tested yesterday is not. The dates are kept across a restart."""
    site = Site(tmp_path)
    site.inspector.tests_file = tmp_path / "tests.json"
    for device in ("smoke-1", "smoke-2", "smoke-3"):
        site.board.register(device, "smoke_detector", START)
    site.at(0, "test", "raised", "smoke-1", "self_test", severity="info")
    site.inspector.report("monthly")  # smoke-2 and smoke-3 first seen now, never tested
    day = 24 * 60
    site.at(39 * day, "test", "raised", "smoke-3", "self_test", severity="info")
    site.at(8 * day + 5, "door", "raised", "door-main", "open")
    DayClock.wall = START + 40 * day * 60_000
    report = site.inspector.report("monthly")
    assert [(d["device"], d["days"]) for d in report["detectors_untested"]] == [("smoke-1", 40), ("smoke-2", 40)]
    assert report["detectors_untested"][1]["last_test"] is None
    assert "smoke-1 40" in report["readable"]["en"]
    again = Inspector(site.board, site.alarms, site.outbox, DayClock(), tmp_path / "tests.json")
    assert [d["device"] for d in again.report("monthly")["detectors_untested"]] == ["smoke-1", "smoke-2"]


def test_hazards_state_files_with_a_key_given_twice_are_damaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """detector-tests.json naming a detector twice, or reports.json a period twice, is read as damaged (a person
    may have edited it): the dates start afresh, and the log names the file and the key, not the last one's date."""
    site = Site(tmp_path)
    tests = tmp_path / "detector-tests.json"
    tests.write_text(
        '{"smoke-1": {"first_seen": null, "last_test": 1}, "smoke-1": {"first_seen": null, "last_test": 2}}'
    )
    assert Inspector(site.board, site.alarms, site.outbox, DayClock(), tests).tested == {}
    reports = tmp_path / "reports.json"
    reports.write_text('{"daily": "2026-11-29", "daily": "2026-11-30"}')
    assert ReportClock("Asia/Shanghai", time(7, 0), 0, 1, reports).last == {}
    assert [m for m in caplog.messages if "unreadable" in m] == [
        f'{tests}: unreadable (duplicate key "smoke-1" in detector-tests.json): the detector test dates start afresh',
        f'{reports}: unreadable (duplicate key "daily" in reports.json): the report dates start afresh',
    ]
