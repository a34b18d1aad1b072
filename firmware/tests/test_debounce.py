"""Debounce: short changes are never reported, lasting ones once, across tick wrap-around."""

import unittest

from fieldnode.debounce import Debouncer
from fieldnode.ticks import PERIOD, ticks_add


class TestDebounce(unittest.TestCase):
    def test_debounce_first_value_is_taken_at_once(self) -> None:
        d = Debouncer(50)
        self.assertFalse(d.update(2, 0))
        self.assertEqual(d.stable, 2)

    def test_debounce_a_glitch_shorter_than_the_time_is_ignored(self) -> None:
        """A 40 ms bounce with 50 ms debounce never reaches the state."""
        d = Debouncer(50)
        d.update(1, 0)
        changed = [d.update(2, t) for t in range(10, 50, 10)] + [d.update(1, t) for t in range(50, 200, 10)]
        self.assertEqual(changed.count(True), 0)
        self.assertEqual(d.stable, 1)

    def test_debounce_a_lasting_change_is_reported_once(self) -> None:
        d = Debouncer(50)
        d.update(1, 0)
        changed = [d.update(2, t) for t in range(10, 300, 10)]
        self.assertEqual(changed.count(True), 1)
        self.assertEqual(changed.index(True), 5)  # first seen at 10 ms, reported at 60 ms
        self.assertEqual(d.stable, 2)

    def test_debounce_restarts_when_the_input_moves_again(self) -> None:
        """open, then cut before open was confirmed: only cut is reported, after its own full time."""
        d = Debouncer(50)
        d.update(1, 0)
        self.assertFalse(d.update(2, 10))
        self.assertFalse(d.update(4, 40))
        self.assertFalse(d.update(4, 80))
        self.assertTrue(d.update(4, 90))
        self.assertEqual(d.stable, 4)

    def test_debounce_across_tick_wrap(self) -> None:
        """The tick counter wraps at 2**30 mid-debounce: the change is still reported after 50 ms, not never."""
        d = Debouncer(50)
        start = PERIOD - 20
        d.update(1, start)
        self.assertFalse(d.update(2, ticks_add(start, 10)))
        self.assertFalse(d.update(2, ticks_add(start, 40)))
        self.assertTrue(d.update(2, ticks_add(start, 60)))

    def test_debounce_zero_reports_at_once(self) -> None:
        d = Debouncer(0)
        d.update(1, 0)
        self.assertTrue(d.update(3, 1))
