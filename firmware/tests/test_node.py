"""The node's register map: golden words for a known situation, counters, summaries and settings."""

import unittest

from fieldnode.config import parse
from fieldnode.node import Node

# Three points: door 1 shut (50.00 %), door 2 open (66.67 %), door 3 loop cut (100 %); the config file had a
# problem (running on defaults); door 2 opened once and door 3 was cut once since start: two events.
GOLDEN_IR = [
    0x4401, 0x0100, 0x0100, 3, 0b0111, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 2, 4, 0,
    0, 1, 1, 0,
    5000, 6667, 10000, 0,
]  # fmt: skip
GOLDEN_DI = [0, 1, 0, 0, 0, 0, 1, 0, 1, 1]
SHUT, OPENED, CUT_LEVEL = 32768, 43690, 65535


def situation() -> Node:
    node = Node(parse("{}"), config_fault=True)
    node.sample([SHUT, SHUT, SHUT], 0)
    for t in range(10, 200, 10):
        node.sample([SHUT, OPENED, CUT_LEVEL], t)
    return node


class TestNode(unittest.TestCase):
    def test_node_golden_input_registers(self) -> None:
        self.assertEqual(situation().input_registers(), GOLDEN_IR)

    def test_node_golden_discrete_inputs(self) -> None:
        self.assertEqual(situation().discrete_inputs(), GOLDEN_DI)

    def test_node_reads_through_the_slave_interface(self) -> None:
        node = situation()
        self.assertEqual(node.read(4, 16, 4), [1, 2, 4, 0])
        self.assertEqual(node.read(4, 20, 9), 2)  # one past the end of the table
        self.assertEqual(node.read(2, 8, 2), [1, 1])
        self.assertEqual(node.read(3, 0, 1), 2)  # settings start at 100

    def test_node_settings_mirror_the_configuration(self) -> None:
        node = Node(parse('{"unit": 21, "baud": 9600, "debounce_ms": 100, "points": [2, 0]}'))
        self.assertEqual(node.read(3, 100, 8), [21, 96, 100, 2500, 5830, 8330, 150, 2])

    def test_node_a_flickering_loop_changes_nothing(self) -> None:
        """A level flicking between shut and open every 20 ms (a loose wire) never outlasts the 50 ms debounce."""
        node = Node(parse("{}"))
        for t in range(0, 1000, 10):
            node.sample([OPENED if (t // 20) % 2 else SHUT, SHUT, SHUT], t)
        self.assertEqual(node.event_counter, 0)
        self.assertEqual(node.input_registers()[16], 1)

    def test_node_unused_points_and_watchdog_bit(self) -> None:
        node = Node(parse('{"points": [1]}'), watchdog_restart=True)
        self.assertEqual(node.input_registers()[3:5], [1, 0b1000])
        self.assertEqual(node.input_registers()[16:20], [0, 0, 0, 0])  # no sample yet: unused
        node.sample([0], 0)
        self.assertEqual(node.input_registers()[16:20], [3, 0, 0, 0])
        self.assertEqual(node.discrete_inputs(), [0, 0, 0, 0, 1, 0, 0, 0, 1, 0])

    def test_node_uptime_counts_minutes_across_tick_wrap(self) -> None:
        node = Node(parse("{}"))
        t = (1 << 30) - 30000
        for _ in range(5):
            node.tick(t)
            t = (t + 30000) & ((1 << 30) - 1)
        self.assertEqual(node.input_registers()[6], 2)
