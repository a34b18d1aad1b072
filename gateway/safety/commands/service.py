"""Signed commands in a running gateway: verify, dispatch, follow, reply and audit (issue 7, points 2-4).

A command that passes the pipeline goes to the bollard service as a request of the platform's authority, so the
lane's interlocks and the order of authority decide it like any other; a site lockdown likewise. Its progress is
replied on the MQTT 5 response topic it named (with its correlation data), or on `{prefix}/reply`:
accepted -> in_progress -> done (with the end position read from the limit switches) or failed; a refusal is
`rejected` (or `expired`) with its reason code. Every command and every refusal is also an audit event (class
`command`), kept in the outbox like every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Collection, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.profile import Quality
from gateway.base.clock import Clock, rfc3339_ms
from gateway.base.i18n import both
from gateway.base.keys import load_public
from gateway.config import CommandsConfig
from gateway.safety.alarms import AlarmBook
from gateway.safety.authority import Authority
from gateway.safety.bollards.service import BollardService
from gateway.safety.bollards.supervisor import RISE_FAILED, Command, Decision, Rule
from gateway.safety.commands.envelope import CommandBody
from gateway.safety.commands.store import CommandStore
from gateway.safety.commands.verify import DEFAULT_ROLES, REASONS, KeyEntry, Verdict, Verifier
from gateway.store.records import Detail, Event, Severity, Stamp

log = logging.getLogger(__name__)

REPLY_SCHEMA = "campus-edge/reply/1"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_BOLLARD = {"bollard.raise": Command.RAISE, "bollard.lower": Command.LOWER, "bollard.stop": Command.STOP}
# Refusals that say someone is forging or replaying, not just a stale or clumsy sender.
SECURITY_REASONS = frozenset(
    {"bad_signature", "unknown_key", "revoked_key", "forbidden", "replayed", "stale_seq", "wrong_audience"}
)

Publisher = Callable[[str, bytes, bytes | None], Coroutine[Any, Any, None]]


class CommandService:
    """Commands for one gateway."""

    def __init__(
        self,
        cfg: CommandsConfig,
        site: str,
        gateway: str,
        bollards: BollardService,
        clock: Clock,
        store_path: Path,
        reply_topic: str,
        alarms: AlarmBook | None = None,
        publish: Publisher | None = None,
    ) -> None:
        self.bollards = bollards
        self.clock = clock
        self.reply_topic = reply_topic
        self.gateway = gateway
        self.store = CommandStore(store_path)
        keys = {
            k.id: KeyEntry(
                k.id,
                k.issuer,
                load_public(k.public_key_file),
                frozenset(k.roles),
                k.revoked,
                frozenset(k.targets) if k.targets is not None else None,
            )
            for k in cfg.keys
        }
        roles = dict(DEFAULT_ROLES)
        roles.update({role: frozenset(actions) for role, actions in cfg.roles.items()})
        lanes = set(bollards.supervisors)
        self.alarms = alarms
        targets: dict[str, Collection[str]] = dict.fromkeys(_BOLLARD, lanes)
        targets["site.lockdown"] = {gateway}
        if alarms is not None:
            targets["alarm.ack"] = alarms  # the open alarms, as they are when a command arrives
        self.verifier = Verifier(site, gateway, keys, targets, self.store, roles, cfg.skew_s)
        self.publish = publish  # the uplink's: replies go out while it is connected
        self.refused = 0
        self.accepted = 0
        self.dropped = 0  # not looked at: beyond the rate
        self._rate = cfg.max_per_s
        self._burst = float(cfg.burst)
        self._tokens = self._burst
        self._tokens_at = clock.mono()
        self._dropped_unreported = 0
        self._flood_reported_at = -1e9
        self._flood_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(
        self, target: str, payload: bytes, response_topic: str | None, correlation: bytes | None
    ) -> Verdict | None:
        """One message from `.../cmd/{target}`: verified, and if it passes, carried out. Never raises.

        None: not even looked at, because commands arrive faster than `max_per_s` (a flood). Verifying costs
        CPU the fire alarms need: beyond the rate, commands are dropped unread and counted, and the count is
        audited once a second. A platform sends a few commands a second at most; a flood is an attack or a fault.
        """
        now = self.clock.mono()
        self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) * self._rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            self.dropped += 1
            self._dropped_unreported += 1
            if now - self._flood_reported_at >= 1.0:
                self._report_flood(now)  # the first of a flood at once, then at most one a second
            elif self._flood_timer is None:
                with contextlib.suppress(RuntimeError):  # no loop (a synchronous caller): the next call reports
                    self._flood_timer = asyncio.get_running_loop().call_later(1.0, self._flush_flood)
            return None
        self._tokens -= 1.0
        verdict = self.verifier.check(target, payload, datetime.now(UTC), self.clock.synced())
        reply_to = response_topic or self.reply_topic
        body = verdict.body
        if self._dropped_unreported and now - self._flood_reported_at >= 1.0:
            self._report_flood(now)
        if verdict.duplicate and body is not None:
            # The same command again (a redelivery, a retry): its result, and nothing done.
            self._reply(reply_to, correlation, verdict.stored | {"cmd_id": body.cmd_id, "duplicate": True})
            return verdict
        if not verdict.accepted:
            self.refused += 1
            status = "expired" if verdict.reason == "expired" else "rejected"
            en, zh = both(REASONS[verdict.reason]) if verdict.reason in REASONS else (verdict.message,) * 2
            result = {"status": status, "reason": verdict.reason, "text_en": en, "text_zh": zh}
            self._audit(target, body, result, verdict.message)
            if response_topic is not None:
                # Only to a sender that asked for replies: answering every forged message on the default topic
                # would double what a flood costs.
                self._reply(reply_to, correlation, result | {"cmd_id": body.cmd_id if body else None})
            log.warning("command on %s refused: %s: %s", target, verdict.reason, verdict.message)
            return verdict
        assert body is not None
        self.accepted += 1
        self._dispatch(body, reply_to, correlation)
        return verdict

    # -- dispatch ------------------------------------------------------------------------------------------------

    def _dispatch(self, body: CommandBody, reply_to: str, correlation: bytes | None) -> None:
        if body.action == "alarm.ack":
            assert self.alarms is not None  # no alarm book, no target: refused as unknown_target before this
            done, state = self.alarms.ack(body.target, body.operator, "platform")
            self._finish(body, reply_to, correlation, {"status": "done" if done else "rejected", "state": state})
            return
        if body.action == "site.lockdown":
            on = body.lockdown()
            done, decisions = self.bollards.set_lockdown(on, Authority.PLATFORM)
            result: dict[str, Any] = {
                "status": "done" if done else "rejected",
                "reason": "" if done else Rule.OUTRANKED.value,
                "lanes": [d.text("en") for d in decisions],
            }
            self._finish(body, reply_to, correlation, result)
            return
        decision = self.bollards.request(body.target, _BOLLARD[body.action], Authority.PLATFORM)
        if not decision.accepted:
            self._finish(body, reply_to, correlation, _decided("rejected", decision))
            return
        self._progress(body, reply_to, correlation, {"status": "accepted", "text_en": decision.text("en")})
        task = asyncio.get_running_loop().create_task(self._follow(body, decision, reply_to, correlation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, body: CommandBody, decision: Decision, reply_to: str, correlation: bytes | None) -> None:
        """Watch the lane until the motion ends: done at its limit, failed if the supervisor ended it."""
        sup = self.bollards.supervisors[body.target]
        outcome: list[Decision] = []
        sup.decisions.append(outcome.append)
        want = {"bollard.raise": "up", "bollard.lower": "down"}.get(body.action)
        limit_s = (sup.settings.rise_timeout_s if want == "up" else sup.settings.lower_timeout_s) + 5.0
        try:
            self._progress(body, reply_to, correlation, {"status": "in_progress"})
            start = self.clock.mono()
            while self.clock.mono() - start < limit_s:
                view = sup.sensors.view(sup.fire_hold)
                ended = [d for d in outcome if d.rule in RISE_FAILED or (d.source is not None and d is not decision)]
                if ended:
                    self._finish(body, reply_to, correlation, _decided("failed", ended[0], view.state))
                    return
                if (want is None and view.state in ("up", "down", "stopped_mid")) or view.state == want:
                    result = {"status": "done", "state": view.state, "limit_up": view.limit_up,
                              "limit_down": view.limit_down}  # fmt: skip
                    self._finish(body, reply_to, correlation, result)
                    return
                await asyncio.sleep(0.05)
            self._finish(body, reply_to, correlation, {"status": "failed", "reason": "timeout", "state": view.state})
        finally:
            sup.decisions.remove(outcome.append)

    # -- replies and audit ---------------------------------------------------------------------------------------

    def _flush_flood(self) -> None:
        self._flood_timer = None
        if self._dropped_unreported:
            self._report_flood(self.clock.mono())

    def _report_flood(self, now: float) -> None:
        """One audit event for the commands dropped unread since the last one."""
        count, self._dropped_unreported = self._dropped_unreported, 0
        self._flood_reported_at = now
        log.warning("commands arriving faster than %g/s: %d dropped unread", self._rate, count)
        detail: Detail = {"dropped": count, "total_dropped": self.dropped, "max_per_s": self._rate, "security": True}
        stamp = Stamp(self.clock.wall_ms(), now, self.clock.synced())
        event = Event("command", "warning", "changed", self.gateway, "flood", count, Quality.GOOD, stamp, detail)
        self.bollards.recorder.record([], [event])

    def _progress(self, body: CommandBody, reply_to: str, correlation: bytes | None, result: dict[str, Any]) -> None:
        self.store.set_result(body.cmd_id, result)
        self._reply(reply_to, correlation, result | {"cmd_id": body.cmd_id})

    def _finish(self, body: CommandBody, reply_to: str, correlation: bytes | None, result: dict[str, Any]) -> None:
        self._progress(body, reply_to, correlation, result)
        self._audit(body.target, body, result, "")

    def _reply(self, topic: str, correlation: bytes | None, result: dict[str, Any]) -> None:
        if self.publish is None:
            return  # not connected: the audit event carries it to the platform later
        payload = {"schema": REPLY_SCHEMA, **result, "ts": rfc3339_ms(self.clock.wall_ms())}
        task = asyncio.get_running_loop().create_task(
            self.publish(topic, json.dumps(payload, ensure_ascii=False).encode(), correlation)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _audit(self, target: str, body: CommandBody | None, result: dict[str, Any], message: str) -> None:
        reason = str(result.get("reason", ""))
        severity: Severity = "info" if result["status"] == "done" else "warning"
        detail: Detail = {
            "cmd_id": body.cmd_id if body else None,
            "issuer": body.issuer if body else None,
            "kid": body.kid if body else None,
            "seq": body.seq if body else None,
            "operator": body.operator if body else None,
            "reason": reason,
            "security": reason in SECURITY_REASONS,
            "message": message[:200],
        }
        device = target if _ID.match(target) else "unknown"
        point = body.action.replace(".", "_") if body else "command"
        stamp = Stamp(self.clock.wall_ms(), self.clock.mono(), self.clock.synced())
        event = Event("command", severity, "changed", device, point, str(result["status"]), Quality.GOOD, stamp, detail)
        self.bollards.recorder.record([], [event])

    def close(self) -> None:
        """Stop following commands; close the store."""
        for task in self._tasks:
            task.cancel()
        if self._flood_timer is not None:
            self._flood_timer.cancel()
        self.store.close()


def _decided(status: str, decision: Decision, state: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "reason": decision.rule.value,
        "reasons": [r.value for r in decision.reasons],
        "text_en": decision.text("en"),
        "text_zh": decision.text("zh-CN"),
        "state": state,
    }
