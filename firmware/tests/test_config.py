"""The node's configuration file: defaults, each error naming its key, and what a broken file leads to."""

import unittest

from fieldnode.config import ConfigError, load, parse


class TestConfig(unittest.TestCase):
    def test_config_empty_object_is_the_defaults(self) -> None:
        c = parse("{}")
        self.assertEqual((c.unit, c.baud, c.parity, c.stop_bits, c.debounce_ms), (247, 19200, "N", 1, 50))
        self.assertEqual(c.points, [0, 1, 2])

    def test_config_frame_gap_follows_the_line(self) -> None:
        """t3.5: 3.5 characters of 10 bits at 19200 (1823 us), 11 bits with parity at 9600, 1750 us above."""
        self.assertEqual(parse("{}").frame_gap_us(), 1823)
        self.assertEqual(parse('{"baud": 9600, "parity": "E"}').frame_gap_us(), 4011)
        self.assertEqual(parse('{"baud": 115200}').frame_gap_us(), 1750)

    def test_config_errors_name_the_key(self) -> None:
        cases = [
            ('{"unit": 0}', "unit: expected a whole number from 1 to 247, got 0"),
            ('{"baud": 14400}', "baud: expected one of 9600, 19200, 38400, 57600, 115200, got 14400"),
            ('{"parity": "X"}', "parity: expected one of N, E, O, got 'X'"),
            ('{"debounce": 50}', "debounce: unknown key"),
            ('{"points": [0, 0]}', "points: ADC0 is listed twice"),
            ('{"points": [4]}', "points: expected ADC channels 0 to 3, got 4"),
            ('{"de_pin": 26}', "de_pin: GP26 is already ADC0 (GP26)"),
            ('{"open_above_pct": 20}', "thresholds must rise: 0 < short_below < open_above < cut_above < full scale"),
            ('{"debounce_ms": 5}', "debounce_ms: expected at least sample_ms (10) or 0"),
            ("[1]", "expected a JSON object"),
            ("{unit: 3}", "not valid JSON"),
        ]
        for text, message in cases:
            with self.assertRaises(ConfigError) as caught:
                parse(text)
            self.assertEqual(str(caught.exception), message)

    def test_config_missing_file_runs_on_defaults_and_says_so(self) -> None:
        c, problem = load("/nonexistent/config.json")
        self.assertEqual(c.unit, 247)
        self.assertEqual(problem, "/nonexistent/config.json: cannot be read, running on defaults")
