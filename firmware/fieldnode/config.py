"""The node's configuration: a small JSON file on its flash (`/config.json`), checked once at start.

JSON because MicroPython reads it with its built-in `json`; there is no TOML parser on the node. A missing or
invalid file does not stop the node: it runs on the defaults (unit 247, 19200 baud 8N1, three points) and sets
the `config_fault` bit, so that a scan finds it and says so rather than the door group going silent.
"""

import json

from fieldnode.eol import Thresholds, pct_to_level

MAX_POINTS = 4  # the map has room for four; an RP2040 has three free ADC inputs (ADC0-2), ADC3 on some boards
ADC_CHANNELS = (0, 1, 2, 3)  # ADC0..3 = GP26..GP29
BAUDS = (9600, 19200, 38400, 57600, 115200)
PARITIES = ("N", "E", "O")

DEFAULTS: dict[str, object] = {
    "unit": 247,
    "baud": 19200,
    "parity": "N",
    "stop_bits": 1,
    "uart": 0,
    "tx_pin": 0,
    "rx_pin": 1,
    "de_pin": 2,
    "maintenance_pin": 22,  # jumpered to GND at power-up: the node stays at the REPL, without watchdog, for updates
    "debounce_ms": 50,
    "sample_ms": 10,
    "watchdog_ms": 2000,
    # Boundaries in percent of full scale, for 4.7 kOhm pull-up, end-of-line and alarm resistors: short ~0 %,
    # normal 50 %, open 66.7 %, cut 100 %; each boundary halfway between its neighbours.
    "short_below_pct": 25.0,
    "open_above_pct": 58.3,
    "cut_above_pct": 83.3,
    "hysteresis_pct": 1.5,
    "points": [0, 1, 2],  # the ADC channel of point 1, 2, 3 (up to four)
}


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the key and what was expected."""


class Config:
    """The checked configuration. Levels are ADC levels (0..65535); `points` holds one ADC channel per point."""

    def __init__(self, values: dict[str, object]) -> None:
        self.unit = _int(values, "unit", 1, 247)
        self.baud = _int_choice(values, "baud", BAUDS)
        self.parity = _str_choice(values, "parity", PARITIES)
        self.stop_bits = _int_choice(values, "stop_bits", (1, 2))
        self.uart = _int(values, "uart", 0, 1)
        self.tx_pin = _int(values, "tx_pin", 0, 29)
        self.rx_pin = _int(values, "rx_pin", 0, 29)
        self.de_pin = _int(values, "de_pin", 0, 29)
        self.maintenance_pin = _int(values, "maintenance_pin", 0, 29)
        self.debounce_ms = _int(values, "debounce_ms", 0, 1000)
        self.sample_ms = _int(values, "sample_ms", 1, 100)
        self.watchdog_ms = _int(values, "watchdog_ms", 500, 8000)  # the RP2040's watchdog reaches 8.3 s at most
        self.short_below_pct = _pct(values, "short_below_pct")
        self.open_above_pct = _pct(values, "open_above_pct")
        self.cut_above_pct = _pct(values, "cut_above_pct")
        self.hysteresis_pct = _pct(values, "hysteresis_pct")
        try:
            self.thresholds = Thresholds(
                pct_to_level(self.short_below_pct),
                pct_to_level(self.open_above_pct),
                pct_to_level(self.cut_above_pct),
                pct_to_level(self.hysteresis_pct),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.points = _points(values)
        if self.debounce_ms and self.debounce_ms < self.sample_ms:
            raise ConfigError(f"debounce_ms: expected at least sample_ms ({self.sample_ms}) or 0")
        pins = {
            "tx_pin": self.tx_pin,
            "rx_pin": self.rx_pin,
            "de_pin": self.de_pin,
            "maintenance_pin": self.maintenance_pin,
        }
        for channel in self.points:
            pins[f"ADC{channel} (GP{26 + channel})"] = 26 + channel
        seen: dict[int, str] = {}
        for name in sorted(pins):
            pin = pins[name]
            if pin in seen:
                raise ConfigError(f"{name}: GP{pin} is already {seen[pin]}")
            seen[pin] = name

    def frame_gap_us(self) -> int:
        """t3.5, the silence that ends an RTU frame; fixed at 1750 us above 19200 baud (Modbus serial line guide)."""
        if self.baud > 19200:
            return 1750
        bits = 1 + 8 + (0 if self.parity == "N" else 1) + self.stop_bits
        return (35 * bits * 1_000_000 // self.baud + 9) // 10


def parse(text: str) -> Config:
    """A configuration from the file's text; keys left out take their defaults.

    Raises:
        ConfigError: not JSON, not an object, an unknown key, or a value out of range.
    """
    try:
        given = json.loads(text)
    except ValueError:
        raise ConfigError("not valid JSON") from None
    if not isinstance(given, dict):
        raise ConfigError("expected a JSON object")
    values = dict(DEFAULTS)
    for key in given:
        if key not in DEFAULTS:
            raise ConfigError(f"{key}: unknown key")
        values[key] = given[key]
    return Config(values)


def defaults() -> Config:
    """The configuration a node without a usable file runs on."""
    return Config(dict(DEFAULTS))


def load(path: str) -> tuple[Config, str]:
    """Read the file at `path`: the configuration and "" when it is good, the defaults and why when it is not."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return defaults(), f"{path}: cannot be read, running on defaults"
    try:
        return parse(text), ""
    except ConfigError as exc:
        return defaults(), f"{path}: {exc}, running on defaults"


def _int(values: dict[str, object], key: str, low: int, high: int) -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def _int_choice(values: dict[str, object], key: str, allowed: tuple[int, ...]) -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise ConfigError("{}: expected one of {}, got {!r}".format(key, ", ".join(str(a) for a in allowed), value))
    return value


def _str_choice(values: dict[str, object], key: str, allowed: tuple[str, ...]) -> str:
    value = values[key]
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError("{}: expected one of {}, got {!r}".format(key, ", ".join(allowed), value))
    return value


def _pct(values: dict[str, object], key: str) -> float:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ConfigError(f"{key}: expected a percentage from 0 to 100, got {value!r}")
    return float(value)


def _points(values: dict[str, object]) -> list[int]:
    given = values["points"]
    if not isinstance(given, list) or not 1 <= len(given) <= MAX_POINTS:
        raise ConfigError(f"points: expected a list of 1 to {MAX_POINTS} ADC channels")
    points: list[int] = []
    for channel in given:
        if isinstance(channel, bool) or not isinstance(channel, int) or channel not in ADC_CHANNELS:
            raise ConfigError(f"points: expected ADC channels 0 to 3, got {channel!r}")
        if channel in points:
            raise ConfigError(f"points: ADC{channel} is listed twice")
        points.append(channel)
    return points
