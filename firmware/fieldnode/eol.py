"""Double end-of-line supervision: which of four states a door loop is in, from the voltage the ADC reads.

Wiring at the door (docs/firmware.md): the reed contact (closed while the door is shut) in parallel with an alarm
resistor, that pair in series with an end-of-line resistor, the loop fed from 3V3 through a pull-up at the node.
The ADC reads the loop's share of the supply as a 16-bit level (`read_u16`, 0..65535). With all three resistors
4.7 kOhm: short ~0 (tamper), door shut 1/2 (normal), door open 2/3 (open), cut ~1 (tamper).

The level is compared with three boundaries. Hysteresis keeps a level that hovers on a boundary from flipping
state: a level leaves the current state only when it lies `hysteresis` beyond that state's own range.
"""

# State codes, as the map's per-point state registers carry them (docs/firmware.md, drivers/profiles/door_node.toml).
UNUSED = 0  # no contact configured on this point
NORMAL = 1  # loop at the end-of-line value: door shut
OPEN = 2  # end-of-line plus alarm resistor: door open
SHORT = 3  # loop shorted (tamper)
CUT = 4  # loop open circuit (tamper)

NAMES = {UNUSED: "unused", NORMAL: "normal", OPEN: "open", SHORT: "short", CUT: "cut"}

FULL_SCALE = 65535


def pct_to_level(pct: float) -> int:
    """A share of full scale in percent -> an ADC level (0..65535)."""
    return round(pct * FULL_SCALE / 100)


def level_to_centipct(level: int) -> int:
    """An ADC level -> hundredths of a percent of full scale (0..10000), as the level registers carry it."""
    return (level * 10000 + FULL_SCALE // 2) // FULL_SCALE


class Thresholds:
    """The three boundaries between short, normal, open and cut, and the hysteresis, all as ADC levels."""

    def __init__(self, short_below: int, open_above: int, cut_above: int, hysteresis: int) -> None:
        if not 0 < short_below < open_above < cut_above < FULL_SCALE:
            raise ValueError("thresholds must rise: 0 < short_below < open_above < cut_above < full scale")
        if hysteresis < 0:
            raise ValueError("hysteresis must not be negative")
        narrowest = min(open_above - short_below, cut_above - open_above)
        if 2 * hysteresis >= narrowest:
            raise ValueError("hysteresis must be less than half the narrowest state's range")
        self.short_below = short_below
        self.open_above = open_above
        self.cut_above = cut_above
        self.hysteresis = hysteresis

    def zone(self, level: int) -> int:
        """The state a level lies in, without hysteresis."""
        if level < self.short_below:
            return SHORT
        if level < self.open_above:
            return NORMAL
        if level < self.cut_above:
            return OPEN
        return CUT

    def _range(self, state: int) -> tuple[int, int]:
        """Lowest level inside `state` and the first level above it."""
        if state == SHORT:
            return -1, self.short_below  # nothing lies below 0, so a short is never left downwards
        if state == NORMAL:
            return self.short_below, self.open_above
        if state == OPEN:
            return self.open_above, self.cut_above
        return self.cut_above, FULL_SCALE + 1

    def classify(self, level: int, current: int) -> int:
        """The state for `level` when the loop was in `current` (UNUSED: no state yet, so no hysteresis)."""
        new = self.zone(level)
        if current in (new, UNUSED):
            return new
        low, high = self._range(current)
        if level < low - self.hysteresis or level >= high + self.hysteresis:
            return new
        return current
