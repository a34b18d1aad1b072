"""Debounce: a state is reported only once the input has held it for the debounce time.

A reed contact bounces for a few milliseconds and a long loop picks up spikes; a change shorter than the debounce
time is never reported and never counted. The first value seen is taken at once: at power-up there is no earlier
state to confirm a change against.
"""

from fieldnode.ticks import ticks_diff


class Debouncer:
    """One input's debounced state; `update` is fed every sample with its tick time in milliseconds."""

    def __init__(self, debounce_ms: int) -> None:
        self.debounce_ms = debounce_ms
        self.stable = -1  # -1: nothing seen yet
        self._candidate = -1
        self._since_ms = 0

    def update(self, value: int, now_ms: int) -> bool:
        """Feed one sample; True when the debounced state has just changed (not on the first sample)."""
        if self.stable < 0:
            self.stable = value
            self._candidate = value
            return False
        if value != self._candidate:
            self._candidate = value
            self._since_ms = now_ms
        if self._candidate != self.stable and ticks_diff(now_ms, self._since_ms) >= self.debounce_ms:
            self.stable = self._candidate
            return True
        return False
