"""End-of-line classification: the four states at the wiring's nominal levels, and hysteresis on a boundary."""

import unittest

from fieldnode.config import defaults
from fieldnode.eol import CUT, NORMAL, OPEN, SHORT, UNUSED, Thresholds, level_to_centipct, pct_to_level


def divider(loop_ohm: float, pullup_ohm: float = 4700) -> int:
    """The ADC level of a loop of `loop_ohm` fed through the pull-up (an open circuit is full scale)."""
    return int(65535 * loop_ohm / (loop_ohm + pullup_ohm))


class TestEol(unittest.TestCase):
    def test_eol_nominal_wiring_levels_classify(self) -> None:
        """4.7 k end-of-line and alarm resistors: shut, open, shorted and cut loops each land in their state."""
        t = defaults().thresholds
        self.assertEqual(t.zone(divider(4700)), NORMAL)
        self.assertEqual(t.zone(divider(9400)), OPEN)
        self.assertEqual(t.zone(divider(0)), SHORT)
        self.assertEqual(t.zone(65535), CUT)

    def test_eol_resistor_tolerance_stays_in_state(self) -> None:
        """5 % resistors and 20 Ohm of cable do not move a loop out of its state."""
        t = defaults().thresholds
        for pullup in (4465, 4935):
            self.assertEqual(t.zone(divider(4700 * 1.05 + 20, pullup)), NORMAL)
            self.assertEqual(t.zone(divider(4700 * 0.95, pullup)), NORMAL)
            self.assertEqual(t.zone(divider(9400 * 1.05 + 20, pullup)), OPEN)
            self.assertEqual(t.zone(divider(9400 * 0.95, pullup)), OPEN)

    def test_eol_hysteresis_holds_a_level_on_the_boundary(self) -> None:
        """A level just past a boundary keeps the state it came from; past the hysteresis it moves."""
        t = Thresholds(10000, 30000, 50000, 1000)
        self.assertEqual(t.classify(30200, NORMAL), NORMAL)
        self.assertEqual(t.classify(29800, OPEN), OPEN)
        self.assertEqual(t.classify(31000, NORMAL), OPEN)
        self.assertEqual(t.classify(28999, OPEN), NORMAL)
        self.assertEqual(t.classify(9500, NORMAL), NORMAL)
        self.assertEqual(t.classify(8999, NORMAL), SHORT)
        self.assertEqual(t.classify(50500, OPEN), OPEN)
        self.assertEqual(t.classify(51000, OPEN), CUT)

    def test_eol_a_jump_across_states_is_taken_at_once(self) -> None:
        """From normal straight to cut (a wire snipped) needs no stop in open."""
        t = Thresholds(10000, 30000, 50000, 1000)
        self.assertEqual(t.classify(65535, NORMAL), CUT)
        self.assertEqual(t.classify(0, CUT), SHORT)

    def test_eol_first_sample_has_no_hysteresis(self) -> None:
        t = Thresholds(10000, 30000, 50000, 1000)
        self.assertEqual(t.classify(30200, UNUSED), OPEN)

    def test_eol_thresholds_must_rise_and_leave_room(self) -> None:
        with self.assertRaises(ValueError):
            Thresholds(30000, 10000, 50000, 100)
        with self.assertRaises(ValueError):
            Thresholds(10000, 30000, 50000, 10000)

    def test_eol_level_units(self) -> None:
        self.assertEqual(pct_to_level(50), 32768)
        self.assertEqual(level_to_centipct(32768), 5000)
        self.assertEqual(level_to_centipct(65535), 10000)
        self.assertEqual(level_to_centipct(0), 0)
