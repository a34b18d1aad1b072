"""Commits what sensing produced to the outbox and the state board, alarms first."""

from __future__ import annotations

import logging

from gateway.contract import Topics
from gateway.outbox import PRIORITY_ALARM, PRIORITY_EVENT, PRIORITY_TELEMETRY, Entry, Outbox
from gateway.records import Event, Reading
from gateway.stateboard import StateBoard

log = logging.getLogger(__name__)


class Recorder:
    """The one way readings and events enter the outbox.

    Each alarm is committed (fsync) on its own before anything else of the same poll, so no telemetry commit can
    stand between an alarm and the disk; then the other events and the readings go in one transaction.
    """

    def __init__(self, outbox: Outbox, topics: Topics, board: StateBoard) -> None:
        self.outbox = outbox
        self.topics = topics
        self.board = board

    def record(
        self,
        readings: list[Reading],
        events: list[Event],
        device: str | None = None,
        online: bool | None = None,
    ) -> None:
        """Commit, then update the retained state."""
        for ev in events:
            if ev.is_alarm:
                seq = self.outbox.put([Entry(PRIORITY_ALARM, self.topics.event(ev.cls), ev.body())])[0]
                log.warning("alarm committed as seq %d: %s %s %s.%s", seq, ev.cls, ev.state, ev.device, ev.point)
        rest = [Entry(PRIORITY_EVENT, self.topics.event(ev.cls), ev.body()) for ev in events if not ev.is_alarm]
        rest += [Entry(PRIORITY_TELEMETRY, None, r.body()) for r in readings]
        self.outbox.put(rest)
        for ev in events:
            if not ev.is_alarm:
                log.info("event: %s %s %s.%s = %r", ev.cls, ev.state, ev.device, ev.point, ev.value)
        self.board.apply(readings, online, device)
