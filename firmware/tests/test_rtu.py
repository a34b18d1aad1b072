"""Modbus RTU slave: CRC, frames cut by silence, replies and exceptions byte for byte."""

import unittest

from fieldnode.rtu import FrameAssembler, RegisterSource, Slave, crc16, with_crc
from fieldnode.ticks import PERIOD, ticks_add


class Table(RegisterSource):
    """Ten input registers 0x0100..0x0109 and ten discrete inputs (every third set); no holding registers."""

    functions = (2, 4)

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        table = [0x0100 + i for i in range(10)] if function == 4 else [1 if i % 3 == 0 else 0 for i in range(10)]
        if address + count > len(table):
            return 2
        return table[address : address + count]


def request(unit: int, function: int, address: int, count: int) -> bytes:
    return with_crc(bytes((unit, function, address >> 8, address & 0xFF, count >> 8, count & 0xFF)))


class TestCrc(unittest.TestCase):
    def test_rtu_crc_matches_a_documented_request(self) -> None:
        """01 03 00 02 00 01 carries CRC bytes 25 CA (a smoke detector's documented poll)."""
        self.assertEqual(with_crc(bytes((1, 3, 0, 2, 0, 1)))[-2:], bytes((0x25, 0xCA)))

    def test_rtu_crc_of_a_frame_with_its_crc_is_zero(self) -> None:
        self.assertEqual(crc16(with_crc(b"\x11\x04\x00\x00\x00\x1c")), 0)


class TestFrames(unittest.TestCase):
    def test_rtu_frame_ends_after_the_silence(self) -> None:
        f = FrameAssembler(1823)
        self.assertIsNone(f.feed(b"\x01\x04\x00", 1000))
        self.assertIsNone(f.poll(2000))
        self.assertIsNone(f.feed(b"\x00\x00\x01", 2500))  # 1.5 ms gap: still the same frame
        self.assertIsNone(f.poll(4000))
        self.assertEqual(f.poll(4400), b"\x01\x04\x00\x00\x00\x01")
        self.assertIsNone(f.poll(9000))

    def test_rtu_bytes_after_a_silence_start_a_new_frame(self) -> None:
        f = FrameAssembler(1823)
        f.feed(b"\xaa\xbb", 0)
        self.assertEqual(f.feed(b"\x01", 5000), b"\xaa\xbb")
        self.assertEqual(f.poll(7000), b"\x01")

    def test_rtu_silence_is_measured_across_tick_wrap(self) -> None:
        f = FrameAssembler(1823)
        start = PERIOD - 500
        f.feed(b"\x01\x02", start)
        self.assertIsNone(f.poll(ticks_add(start, 1000)))
        self.assertEqual(f.poll(ticks_add(start, 2000)), b"\x01\x02")

    def test_rtu_an_overlong_frame_is_dropped_whole(self) -> None:
        f = FrameAssembler(1823)
        f.feed(bytes(200), 0)
        f.feed(bytes(100), 100)
        self.assertIsNone(f.poll(5000))
        f.feed(b"\x07", 6000)
        self.assertEqual(f.poll(9000), b"\x07")


class TestSlave(unittest.TestCase):
    def setUp(self) -> None:
        self.slave = Slave(17, Table())

    def test_rtu_reads_input_registers(self) -> None:
        """FC04 at 2, count 3: byte count 6 and the words big-endian, then the CRC."""
        reply = self.slave.handle(request(17, 4, 2, 3))
        self.assertEqual(reply, with_crc(bytes((17, 4, 6, 1, 2, 1, 3, 1, 4))))

    def test_rtu_reads_discrete_inputs_packed_lsb_first(self) -> None:
        """Bits 0, 3, 6, 9 set: first byte 0b01001001, second 0b00000010."""
        reply = self.slave.handle(request(17, 2, 0, 10))
        self.assertEqual(reply, with_crc(bytes((17, 2, 2, 0x49, 0x02))))

    def test_rtu_exception_01_for_a_function_without_a_table(self) -> None:
        """A write (FC06) and a read of holding registers this table has not: 01, illegal function."""
        self.assertEqual(self.slave.handle(request(17, 6, 0, 1)), with_crc(bytes((17, 0x86, 1))))
        self.assertEqual(self.slave.handle(request(17, 3, 0, 1)), with_crc(bytes((17, 0x83, 1))))
        self.assertEqual(self.slave.handle(with_crc(bytes((17, 43, 14, 1, 0)))), with_crc(bytes((17, 0xAB, 1))))

    def test_rtu_exception_02_beyond_the_map(self) -> None:
        self.assertEqual(self.slave.handle(request(17, 4, 8, 3)), with_crc(bytes((17, 0x84, 2))))

    def test_rtu_exception_03_for_a_bad_quantity_or_length(self) -> None:
        self.assertEqual(self.slave.handle(request(17, 4, 0, 0)), with_crc(bytes((17, 0x84, 3))))
        self.assertEqual(self.slave.handle(request(17, 4, 0, 126)), with_crc(bytes((17, 0x84, 3))))
        self.assertEqual(self.slave.handle(request(17, 2, 0, 2001)), with_crc(bytes((17, 0x82, 3))))
        self.assertEqual(self.slave.handle(with_crc(bytes((17, 4, 0, 0, 0)))), with_crc(bytes((17, 0x84, 3))))
        self.assertEqual(self.slave.counters.exceptions, 4)

    def test_rtu_other_units_and_broadcast_get_no_reply(self) -> None:
        self.assertIsNone(self.slave.handle(request(18, 4, 0, 1)))
        self.assertIsNone(self.slave.handle(request(0, 4, 0, 1)))
        self.assertIsNone(self.slave.handle(request(0, 6, 0, 1)))
        self.assertEqual(self.slave.counters.requests, 0)

    def test_rtu_bad_crc_is_counted_and_not_answered(self) -> None:
        frame = bytearray(request(17, 4, 0, 1))
        frame[-1] ^= 0x01
        self.assertIsNone(self.slave.handle(bytes(frame)))
        self.assertIsNone(self.slave.handle(b"\x11\x04"))
        self.assertEqual(self.slave.counters.crc_errors, 1)
        self.assertEqual(self.slave.counters.requests, 0)
