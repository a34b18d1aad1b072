"""The node's state and its register map: supervised points sampled, debounced and served to the gateway.

Register map v1.0 (0-based PDU addresses; drivers/profiles/door_node.toml and docs/firmware.md say the same):

Input registers (FC04), 0-27:
  0 model_code 0x4401 | 1 map_version 0x0100 | 2 fw_version (major*256+minor) | 3 point_count
  4 status: bit 0 a door open, 1 a loop in tamper (short or cut), 2 config fault (running on defaults),
    3 started by the watchdog
  5 event_counter (+1 per debounced change of any point) | 6 uptime_min (wraps) | 7 board_temp (0.1 Cel, signed)
  8 requests (valid frames to this unit) | 9 crc_errors | 10-15 reserved (0)
  16-19 point 1-4 state: 0 unused, 1 normal, 2 open, 3 short, 4 cut
  20-23 point 1-4 change counter | 24-27 point 1-4 loop level (0.01 % of full scale)
Discrete inputs (FC02), 0-9: 0-3 point 1-4 open, 4-7 point 1-4 tamper, 8 any tamper, 9 config fault
Holding registers (FC03), 100-107, the settings in force (read only): unit, baud / 100, debounce_ms, short_below,
  open_above, cut_above, hysteresis (0.01 %), point_count
"""

from fieldnode import FW_VERSION
from fieldnode.config import MAX_POINTS, Config
from fieldnode.debounce import Debouncer
from fieldnode.eol import CUT, OPEN, SHORT, UNUSED, level_to_centipct
from fieldnode.rtu import ILLEGAL_DATA_ADDRESS, Counters, RegisterSource
from fieldnode.ticks import ticks_diff

MODEL_CODE = 0x4401
MAP_VERSION = 0x0100
INPUT_REGISTERS = 28
DISCRETE_INPUTS = 10
SETTINGS_ADDRESS = 100
SETTINGS = 8

STATUS_OPEN = 1 << 0
STATUS_TAMPER = 1 << 1
STATUS_CONFIG_FAULT = 1 << 2
STATUS_WATCHDOG = 1 << 3


class Point:
    """One supervised door loop: the state its level lies in (with hysteresis) and that state debounced."""

    def __init__(self, channel: int, config: Config) -> None:
        self.channel = channel
        self.thresholds = config.thresholds
        self.debouncer = Debouncer(config.debounce_ms)
        self.zone = UNUSED
        self.level = 0
        self.changes = 0

    @property
    def state(self) -> int:
        """The debounced state; UNUSED until the first sample."""
        return self.debouncer.stable if self.debouncer.stable >= 0 else UNUSED

    def sample(self, level: int, now_ms: int) -> bool:
        """One ADC level; True when the debounced state has changed."""
        self.level = level
        self.zone = self.thresholds.classify(level, self.zone)
        if self.debouncer.update(self.zone, now_ms):
            self.changes = (self.changes + 1) & 0xFFFF
            return True
        return False


class Node(RegisterSource):
    """Everything the map shows: the points, the counters, and what the node knows about itself."""

    functions = (2, 3, 4)  # no coils: FC01 is answered with exception 01 like every write

    def __init__(self, config: Config, config_fault: bool = False, watchdog_restart: bool = False) -> None:
        self.config = config
        self.points = [Point(channel, config) for channel in config.points]
        self.config_fault = config_fault
        self.watchdog_restart = watchdog_restart
        self.event_counter = 0
        self.counters = Counters()
        self.board_temp_dc = 0  # 0.1 Cel
        self._uptime_ms = 0
        self._last_ms = -1

    def sample(self, levels: list[int], now_ms: int) -> None:
        """One ADC level per configured point, in the configuration's order, taken at `now_ms`."""
        for point, level in zip(self.points, levels):
            if point.sample(level, now_ms):
                self.event_counter = (self.event_counter + 1) & 0xFFFF
        self.tick(now_ms)

    def tick(self, now_ms: int) -> None:
        """Advance the uptime; called at least every few seconds so that tick wrap-around is never missed."""
        if self._last_ms >= 0:
            self._uptime_ms += max(0, ticks_diff(now_ms, self._last_ms))
        self._last_ms = now_ms

    def status(self) -> int:
        """The status word (input register 4)."""
        word = 0
        for p in self.points:
            if p.state == OPEN:
                word |= STATUS_OPEN
            elif p.state in (SHORT, CUT):
                word |= STATUS_TAMPER
        if self.config_fault:
            word |= STATUS_CONFIG_FAULT
        if self.watchdog_restart:
            word |= STATUS_WATCHDOG
        return word

    def input_registers(self) -> list[int]:
        """The input register table (FC04), addresses 0-27."""
        words = [
            MODEL_CODE,
            MAP_VERSION,
            FW_VERSION,
            len(self.points),
            self.status(),
            self.event_counter,
            (self._uptime_ms // 60000) & 0xFFFF,
            self.board_temp_dc & 0xFFFF,
            self.counters.requests,
            self.counters.crc_errors,
        ]
        words.extend([0] * (16 - len(words)))
        padding = [0] * (MAX_POINTS - len(self.points))
        words.extend([p.state for p in self.points] + padding)
        words.extend([p.changes for p in self.points] + padding)
        words.extend([level_to_centipct(p.level) if p.state != UNUSED else 0 for p in self.points] + padding)
        return words

    def discrete_inputs(self) -> list[int]:
        """The discrete input table (FC02), addresses 0-9."""
        padding = [0] * (MAX_POINTS - len(self.points))
        opened = [1 if p.state == OPEN else 0 for p in self.points] + padding
        tamper = [1 if p.state in (SHORT, CUT) else 0 for p in self.points] + padding
        return opened + tamper + [1 if any(tamper) else 0, 1 if self.config_fault else 0]

    def settings(self) -> list[int]:
        """The holding registers 100-107: the configuration in force, read only."""
        c = self.config
        return [
            c.unit,
            c.baud // 100,
            c.debounce_ms,
            round(c.short_below_pct * 100),
            round(c.open_above_pct * 100),
            round(c.cut_above_pct * 100),
            round(c.hysteresis_pct * 100),
            len(self.points),
        ]

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """Values for the Modbus slave, or exception 02 when the range is not wholly in one table."""
        if function == 4:
            table, base = self.input_registers(), 0
        elif function == 2:
            table, base = self.discrete_inputs(), 0
        elif function == 3:
            table, base = self.settings(), SETTINGS_ADDRESS
        else:
            return ILLEGAL_DATA_ADDRESS
        start = address - base
        if start < 0 or start + count > len(table):
            return ILLEGAL_DATA_ADDRESS
        return table[start : start + count]
