"""The GB/T 26875.3-2011 codec (drivers/gb26875): golden frames of the brief (shared/interop/gb26875-3.md §6) and of
other authors, a round trip over random frames and ADUs, the stream reader over every split of a stream with
garbage and bad frames in it, the serial number's wrap, the 1024-byte ADU limit, and a short run of the fuzz target.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import AduError, FieldRangeError, FrameError, ProfileError
from drivers.gb26875 import tables
from drivers.gb26875.adu import (
    LAYOUTS,
    Adu,
    AduType,
    AnalogValue,
    ClockSync,
    ComponentStatus,
    InfoObject,
    RawAdu,
    SpotCheck,
    SystemStatus,
    TransmitterOperation,
    TransmitterQuery,
    TransmitterState,
    TransmitterTime,
    TransmitterVersion,
    decode_adu,
    encode_adu,
    pack_text,
    split_address,
    unpack_text,
)
from drivers.gb26875.frame import (
    CHINA_STANDARD_TIME,
    BadFrame,
    Command,
    Frame,
    FrameReader,
    TimeLabel,
    answer,
    decode_frame,
    encode_frame,
    next_serial,
)

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz" / "gb26875_reader.py"

DEVICE = 1234567  # 87 D6 12 00 00 00
CENTRE = 1  # 01 00 00 00 00 00
SENT = TimeLabel(30, 15, 10, 28, 11, 26)  # 2026-11-28 10:15:30
EVENT = TimeLabel(27, 15, 10, 28, 11, 26)  # 10:15:27
REPLY = TimeLabel(31, 15, 10, 28, 11, 26)  # 10:15:31


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text)


# The brief's example frames F1-F6 (§6), with the fields its tables give.
F1 = hexbytes(
    "40 40 05 00 01 00 1E 0F 0A 1C 0B 1A 87 D6 12 00 00 00 01 00 00 00 00 00 30 00 02"
    "02 01 01 01 2A 03 00 11 00 03 00 C8 FD C2 A5 D7 DF C0 C8 D1 CC B8 D0 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1B 0F 0A 1C 0B 1A 6A 23 23"
)
F2 = hexbytes("40 40 05 00 01 00 1F 0F 0A 1C 0B 1A 01 00 00 00 00 00 87 D6 12 00 00 00 00 00 03 F2 23 23")
F2_DENY = hexbytes("40 40 05 00 01 00 1F 0F 0A 1C 0B 1A 01 00 00 00 00 00 87 D6 12 00 00 00 00 00 06 F5 23 23")
F3 = hexbytes(
    "40 40 06 00 01 00 1E 0F 0A 1C 0B 1A 87 D6 12 00 00 00 01 00 00 00 00 00 16 00 02"
    "01 02 01 01 03 01 1B 0F 0A 1C 0B 1A 0A 01 21 00 1B 0F 0A 1C 0B 1A 26 23 23"
)
F4 = hexbytes("40 40 07 00 01 00 1F 0F 0A 1C 0B 1A 01 00 00 00 00 00 87 D6 12 00 00 00 03 00 04 51 01 00 4A 23 23")
F5 = hexbytes(
    "40 40 07 00 01 00 1E 0F 0A 1C 0B 1A 87 D6 12 00 00 00 01 00 00 00 00 00 09 00 05 15 01 01"
    "1E 0F 0A 1C 0B 1A 8D 23 23"
)
F6 = hexbytes(
    "40 40 08 00 01 00 1E 0F 0A 1C 0B 1A 87 D6 12 00 00 00 01 00 00 00 00 00 12 00 02 03 01 01 01 1F 03 00 12 00"
    "03 3D 02 1B 0F 0A 1C 0B 1A F6 23 23"
)

SMOKE_FIRE = ComponentStatus(1, 1, 42, 0x0011_0003, 0x0003, pack_text("三楼走廊烟感"), EVENT)
GOLDEN: dict[str, tuple[bytes, Frame, Adu | None]] = {
    "F1 fire at a smoke detector": (
        F1,
        Frame(5, Command.SEND, DEVICE, CENTRE, SENT, encode_adu(Adu(2, (SMOKE_FIRE,)))),
        Adu(AduType.COMPONENT_STATUS, (SMOKE_FIRE,)),
    ),
    "F2 confirm": (F2, Frame(5, Command.CONFIRM, CENTRE, DEVICE, REPLY), None),
    "F2 deny": (F2_DENY, Frame(5, Command.DENY, CENTRE, DEVICE, REPLY), None),
    "F3 system status, two objects": (
        F3,
        Frame(6, Command.SEND, DEVICE, CENTRE, SENT, F3[27:49]),
        Adu(AduType.SYSTEM_STATUS, (SystemStatus(1, 1, 0x0103, EVENT), SystemStatus(10, 1, 0x0021, EVENT))),
    ),
    "F4 read the device state": (
        F4,
        Frame(7, Command.REQUEST, CENTRE, DEVICE, REPLY, b"\x51\x01\x00"),
        Adu(AduType.READ_TRANSMITTER_STATE, (TransmitterQuery(0),)),
    ),
    "F5 device state": (
        F5,
        Frame(7, Command.RESPONSE, DEVICE, CENTRE, SENT, F5[27:36]),
        Adu(AduType.TRANSMITTER_STATE, (TransmitterState(0x01, SENT),)),
    ),
    "F6 analog value": (
        F6,
        Frame(8, Command.SEND, DEVICE, CENTRE, SENT, F6[27:45]),
        Adu(AduType.ANALOG_VALUE, (AnalogValue(1, 1, 31, 0x0012_0003, 3, 573, EVENT),)),
    ),
}


@pytest.mark.parametrize("name", GOLDEN)
def test_frame_golden_vectors_of_the_brief(name: str) -> None:
    """Each example frame of the brief decodes to the fields it gives and re-encodes to the same bytes."""
    raw, frame, adu = GOLDEN[name]
    assert decode_frame(raw) == frame
    assert encode_frame(frame) == raw
    if adu is None:
        assert frame.adu == b""
    else:
        assert decode_adu(frame.adu) == adu
        assert encode_adu(adu) == frame.adu


def test_frame_golden_fields_read_as_the_brief_says() -> None:
    """F1's description, address words and status bits, F6's temperature, F3's bits: what the brief's tables say."""
    status = decode_adu(decode_frame(F1).adu)
    assert isinstance(status, Adu)
    smoke = status.objects[0]
    assert isinstance(smoke, ComponentStatus)
    assert smoke.description_text == "三楼走廊烟感"
    assert split_address(smoke.component_address) == (3, 17)  # zone 3, position 17
    assert tables.component_types().name(smoke.component_type).text("zh-CN") == "点型光电感烟火灾探测器"
    assert [n.en for n in tables.set_bits("component_status", smoke.status)] == [
        "normal operation",
        "fire alarm",
        "stopped",
    ]
    assert smoke.time.to_datetime(CHINA_STANDARD_TIME).astimezone(UTC) == datetime(2026, 11, 28, 2, 15, 27, tzinfo=UTC)
    analog = decode_adu(decode_frame(F6).adu)
    assert isinstance(analog, Adu)
    value = analog.objects[0]
    assert isinstance(value, AnalogValue)
    kind = tables.analog_type(value.analog_type)
    assert (kind.name.en, kind.value(value.value), kind.unit) == ("temperature", 57.3, "°C")
    assert [n.en for n in tables.set_bits("system_status", 0x0103)] == [
        "normal operation",
        "fire alarm",
        "stopped",
        "main power fault",
        "automatic",
    ]
    assert tables.set_bits("system_status", 0x0103)[3].zh == "主电故障"
    assert tables.system_types().name(10).en == "fire linkage controller"


def test_frame_answer_echoes_the_serial_and_swaps_addresses() -> None:
    """The confirm and the deny of F1 built from F1 are the brief's F2 and its deny."""
    f1 = decode_frame(F1)
    assert encode_frame(answer(f1, Command.CONFIRM, REPLY)) == F2
    assert encode_frame(answer(f1, Command.DENY, REPLY)) == F2_DENY


# Frames of other authors (brief §6, "third-party frames"): the 18 distinct frames of the public summary's examples
# ([G1], device 889, centre 88888) and the Go codec's test frame ([G2]), with what each holds.
T = TimeLabel(2, 58, 9, 26, 9, 12)  # 2012-09-26 09:58:02, the event time of the summary's examples
THIRD_PARTY: dict[str, tuple[str, int, Adu | RawAdu | None]] = {
    "G1 1 fire at a smoke detector": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 30 00 02 02 01 01 01 28 0A 00 02"
        "00 02 00" + " 20" * 30 + " 00 02 3A 09 1A 09 0C 46 23 23",
        2,
        Adu(2, (ComponentStatus(1, 1, 40, 0x0002_000A, 0x0002, b" " * 30 + b"\x00", T),)),
    ),
    "G1 centre confirm": (
        "40 40 01 00 01 01 23 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 00 00 03 AB 23 23",
        3,
        None,
    ),
    "G1 centre deny": (
        "40 40 01 00 01 01 23 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 00 00 06 AE 23 23",
        6,
        None,
    ),
    "G1 2 main power fault": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 09 00 02 15 01 08 02 3A 09 1A 09 0C"
        " 42 23 23",
        2,
        Adu(21, (TransmitterState(0x08, T),)),
    ),
    "G1 3 spot check answered": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 0A 00 02 18 01 20 01 02 3A 09 1A 09"
        " 0C 5F 23 23",
        2,
        Adu(24, (TransmitterOperation(0x20, 1, T),)),
    ),
    "G1 4 version 1.1": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 04 00 02 19 01 01 01 C7 23 23",
        2,
        Adu(25, (TransmitterVersion(1, 1),)),
    ),
    "G1 5 device time": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 08 00 02 1C 01 02 3A 09 1A 09 0C 40"
        " 23 23",
        2,
        Adu(28, (TransmitterTime(T),)),
    ),
    "G1 6 read device state": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 03 00 04 51 01 00 FE 23 23",
        4,
        Adu(81, (TransmitterQuery(0),)),
    ),
    "G1 6 device state response": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 09 00 05 15 01 08 02 3A 09 1A 09 0C"
        " 45 23 23",
        5,
        Adu(21, (TransmitterState(0x08, T),)),
    ),
    "G1 device deny": (
        "40 40 01 00 01 01 23 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 00 00 06 AE 23 23",
        6,
        None,
    ),
    "G1 7 read device version": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 03 00 04 55 01 00 02 23 23",
        4,
        Adu(85, (TransmitterQuery(0),)),
    ),
    "G1 7 device version response": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 04 00 05 19 01 01 01 CA 23 23",
        5,
        Adu(25, (TransmitterVersion(1, 1),)),
    ),
    "G1 8 read device time": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 03 00 04 58 01 00 05 23 23",
        4,
        Adu(88, (TransmitterQuery(0),)),
    ),
    "G1 8 device time response": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 08 00 05 1C 01 02 3A 09 1A 09 0C 43"
        " 23 23",
        5,
        Adu(28, (TransmitterTime(T),)),
    ),
    "G1 9 initialise": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 03 00 01 59 01 00 03 23 23",
        1,
        Adu(89, (TransmitterQuery(0),)),
    ),
    "G1 device confirm": (
        "40 40 01 00 01 01 23 3A 09 1A 09 0C 79 03 00 00 00 00 38 5B 01 00 00 00 00 00 03 AB 23 23",
        3,
        None,
    ),
    "G1 10 clock sync": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 08 00 01 5A 01 02 3A 09 1A 09 0C 7D"
        " 23 23",
        1,
        Adu(90, (ClockSync(T),)),
    ),
    "G1 11 spot check, 10 minutes": (
        "40 40 01 00 01 01 20 3A 09 1A 09 0C 38 5B 01 00 00 00 79 03 00 00 00 00 03 00 01 5B 01 0A 0F 23 23",
        1,
        Adu(91, (SpotCheck(10),)),
    ),
    "G2 fire, in test, component type 0": (
        "40 40 00 00 01 01 18 0d 11 16 0a 14 00 00 00 00 00 00 06 05 04 03 02 01 30 00 02 02 01 01 03 00 d9 00 06 00"
        " 02 00 a3 c1 c7 f8 a3 b1 b2 e3 df c8 b2 b8 d7 df c0 c8" + " 00" * 15 + " 30 12 13 01 08 14 68 23 23",
        2,
        Adu(
            2,
            (
                ComponentStatus(
                    1,
                    3,
                    0,
                    0x000600D9,
                    0x0002,
                    hexbytes("a3 c1 c7 f8 a3 b1 b2 e3 df c8 b2 b8 d7 df c0 c8") + bytes(15),
                    TimeLabel(0x30, 0x12, 0x13, 0x01, 0x08, 0x14),
                ),
            ),
        ),
    ),
}


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_frame_third_party_vectors(name: str) -> None:
    """Frames of other authors decode to what they say and re-encode to the same bytes."""
    text, command, adu = THIRD_PARTY[name]
    raw = hexbytes(text)
    frame = decode_frame(raw)
    assert frame.command == command
    assert encode_frame(frame) == raw
    if adu is None:
        assert frame.adu == b""
    else:
        assert decode_adu(frame.adu) == adu
        assert encode_adu(adu) == frame.adu
    if name.startswith("G1"):
        assert {frame.source, frame.destination} == {889, 88888}
        assert (frame.main_version, frame.user_version) == (1, 1)


def test_adu_third_party_descriptions_read() -> None:
    """The Go codec's description reads as it says; the summary's space padding reads as empty."""
    go = decode_adu(decode_frame(hexbytes(THIRD_PARTY["G2 fire, in test, component type 0"][0])).adu)
    summary = decode_adu(decode_frame(hexbytes(THIRD_PARTY["G1 1 fire at a smoke detector"][0])).adu)
    assert isinstance(go, Adu)
    assert isinstance(summary, Adu)
    assert isinstance(go.objects[0], ComponentStatus)
    assert isinstance(summary.objects[0], ComponentStatus)
    assert go.objects[0].description_text == "Ａ区１层呷哺走廊"
    assert summary.objects[0].description_text == ""
    assert split_address(summary.objects[0].component_address) == (10, 2)  # "2号10区": zone 10, position 2
    assert [n.en for n in tables.set_bits("component_status", 0x0002)] == ["test", "fire alarm", "stopped"]


# Round trips over random frames and ADUs


def time_labels() -> st.SearchStrategy[TimeLabel]:
    byte = st.integers(0, 255)
    return st.builds(TimeLabel, byte, byte, byte, byte, byte, byte)


def frames(adu: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[Frame]:
    return st.builds(
        Frame,
        serial=st.integers(0, 0xFFFF),
        command=st.sampled_from([1, 2, 3, 4, 5, 6, 128, 200, 255]),
        source=st.integers(0, (1 << 48) - 1),
        destination=st.integers(0, (1 << 48) - 1),
        time=time_labels(),
        adu=adu if adu is not None else st.binary(max_size=1024),
        main_version=st.integers(0, 255),
        user_version=st.integers(0, 255),
    )


def _field(code: str) -> st.SearchStrategy[object]:
    return {
        "u8": st.integers(0, 0xFF),
        "u16": st.integers(0, 0xFFFF),
        "s16": st.integers(-0x8000, 0x7FFF),
        "u32": st.integers(0, 0xFFFF_FFFF),
        "time": time_labels(),
        "text31": st.binary(min_size=31, max_size=31),
        "text": st.binary(max_size=60),
    }[code]


def info_objects(layout: type[InfoObject]) -> st.SearchStrategy[InfoObject]:
    return st.builds(layout, *(_field(code) for code in layout.WIRE))


@st.composite
def adus(draw: st.DrawFn) -> Adu | RawAdu:
    type_flag = draw(st.sampled_from([*sorted(LAYOUTS), 0, 9, 22, 100, 128, 254, 255]))
    if type_flag not in LAYOUTS:
        return RawAdu(type_flag, draw(st.integers(0, 255)), draw(st.binary(max_size=200)))
    objects = draw(st.lists(info_objects(LAYOUTS[type_flag]), max_size=8))
    return Adu(type_flag, tuple(objects))


@settings(max_examples=300, deadline=None)
@given(frames())
def test_frame_round_trip(frame: Frame) -> None:
    """Any frame encodes to bytes that decode to it, alone and through the reader."""
    raw = encode_frame(frame)
    assert len(raw) == 30 + len(frame.adu)
    assert decode_frame(raw) == frame
    assert FrameReader().feed(raw) == [frame]


@settings(max_examples=300, deadline=None)
@given(adus(), time_labels())
def test_adu_round_trip(adu: Adu | RawAdu, time: TimeLabel) -> None:
    """Any ADU, typed or raw, encodes to bytes that decode to it, also carried in a frame."""
    raw = encode_adu(adu)
    assert decode_adu(raw) == adu
    frame = decode_frame(encode_frame(Frame(1, Command.SEND, DEVICE, CENTRE, time, raw)))
    assert decode_adu(frame.adu) == adu


# The stream reader

GARBAGE = b"\x00@#@x##@"
BAD_CHECKSUM = F6[:-3] + bytes(((F6[-3] + 1) & 0xFF,)) + b"##"
STREAM = F1 + F2 + GARBAGE + F3 + BAD_CHECKSUM + F4 + b"@" + F5 + b"@@" + F6
GOOD = [decode_frame(f) for f in (F1, F2, F3, F4, F5, F6)]


def read_in_pieces(stream: bytes, cuts: list[int]) -> tuple[list[Frame | BadFrame], FrameReader]:
    reader = FrameReader()
    out: list[Frame | BadFrame] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out.extend(reader.feed(stream[start:end]))
    return out, reader


def check_read(stream: bytes, out: list[Frame | BadFrame], reader: FrameReader) -> None:
    """The good frames in order, and every byte handed on once (as a frame or in a bad frame) or pending."""
    assert [item for item in out if isinstance(item, Frame)] == GOOD
    handed_on = b"".join(encode_frame(item) if isinstance(item, Frame) else item.data for item in out)
    assert handed_on + reader.pending == stream
    positions = [item.position for item in out if isinstance(item, BadFrame)]
    assert all(stream[item.position :].startswith(item.data) for item in out if isinstance(item, BadFrame))
    assert positions == sorted(positions)


def test_reader_coalesced_and_byte_by_byte() -> None:
    """The whole stream in one piece, and one byte at a time, give the six good frames and the bad ones."""
    whole, reader = read_in_pieces(STREAM, [])
    check_read(STREAM, whole, reader)
    assert reader.pending == b""
    bad = [item for item in whole if isinstance(item, BadFrame)]
    assert any(item.data.startswith(BAD_CHECKSUM[:27]) for item in bad)
    checksum_error = next(item for item in bad if item.data.startswith(BAD_CHECKSUM[:27]))
    assert str(checksum_error.error) == "GB/T 26875.3 frame: offset 45: expected checksum F6, found F7"
    assert checksum_error.header is not None
    assert checksum_error.header.serial == 8  # enough to deny it
    single, reader = read_in_pieces(STREAM, list(range(1, len(STREAM))))
    check_read(STREAM, single, reader)
    assert [item for item in single if isinstance(item, Frame)] == GOOD


def test_reader_every_split() -> None:
    """Split in two at every byte, the stream gives the same good frames, and loses or repeats no byte."""
    for cut in range(1, len(STREAM)):
        out, reader = read_in_pieces(STREAM, [cut])
        check_read(STREAM, out, reader)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=12, unique=True).map(sorted))
def test_reader_random_pieces(cuts: list[int]) -> None:
    """In any pieces, the stream gives the same good frames."""
    out, reader = read_in_pieces(STREAM, cuts)
    check_read(STREAM, out, reader)


def test_reader_damaged_length_does_not_hold_back_the_next_frame() -> None:
    """A frame whose length field claims 1000 bytes is cut at the good frame behind it, which comes out at once."""
    damaged = F1[:24] + (1000).to_bytes(2, "little") + F1[26:]
    out = FrameReader().feed(damaged + F2)
    assert out[1:] == [decode_frame(F2)]
    assert isinstance(out[0], BadFrame)
    assert out[0].data == damaged
    assert str(out[0].error) == (
        "GB/T 26875.3 frame: offset 78: expected 1030 bytes for an ADU length of 1000, found a good frame's start"
    )


def test_reader_unknown_command_is_a_bad_frame_taken_whole() -> None:
    """A frame with a reserved command byte passes the framing checks: it is handed on whole, to be denied."""
    reserved = encode_frame(Frame(9, 7, DEVICE, CENTRE, SENT))
    out = FrameReader().feed(reserved + F2)
    assert isinstance(out[0], BadFrame)
    assert out[0].data == reserved
    assert str(out[0].error) == "GB/T 26875.3 frame: offset 26: expected a command byte 1..6 or 128..255, found 7"
    assert out[1:] == [decode_frame(F2)]
    with pytest.raises(FrameError) as caught:
        decode_frame(reserved)
    assert str(caught.value) == "GB/T 26875.3 frame: offset 26: expected a command byte 1..6 or 128..255, found 7"


def test_reader_garbage_only_is_reported_and_a_last_at_sign_kept() -> None:
    """Bytes with no '@@' are handed on as one bad frame without a header; a last '@' waits for the next byte."""
    reader = FrameReader()
    out = reader.feed(b"GET / HTTP/1.1\r\n@")
    assert len(out) == 1
    assert isinstance(out[0], BadFrame)
    assert (out[0].data, out[0].header, out[0].position) == (b"GET / HTTP/1.1\r\n", None, 0)
    assert str(out[0].error) == "GB/T 26875.3 frame: offset 0: expected start characters 40 40 ('@@'), found 47 45"
    assert reader.pending == b"@"
    assert reader.feed(F2[1:]) == [decode_frame(F2)]


# Serial numbers and sizes


def test_frame_serial_number_wraps_at_65535() -> None:
    """After 65535 comes 0; both go on the wire as two little-endian bytes; 65536 is refused."""
    assert next_serial(65534) == 65535
    assert next_serial(65535) == 0
    assert next_serial(0) == 1
    last = Frame(65535, Command.SEND, DEVICE, CENTRE, SENT)
    first = Frame(next_serial(last.serial), Command.SEND, DEVICE, CENTRE, SENT)
    assert encode_frame(last)[2:4] == b"\xff\xff"
    assert encode_frame(first)[2:4] == b"\x00\x00"
    assert FrameReader().feed(encode_frame(last) + encode_frame(first)) == [last, first]
    assert answer(last, Command.CONFIRM, REPLY).serial == 65535
    with pytest.raises(FieldRangeError) as caught:
        Frame(65536, Command.SEND, DEVICE, CENTRE, SENT)
    assert str(caught.value) == "GB/T 26875.3 frame: offset 2: expected a serial number 0..65535, found 65536"


def test_frame_adu_of_1024_bytes_accepted_and_1025_refused() -> None:
    """A 1024-byte ADU makes a 1054-byte frame; 1025 bytes are refused when sending and denied when received."""
    biggest = Frame(1, Command.SEND, DEVICE, CENTRE, SENT, bytes(range(256)) * 4)
    raw = encode_frame(biggest)
    assert len(raw) == 1054
    assert decode_frame(raw) == biggest
    assert FrameReader().feed(raw) == [biggest]
    with pytest.raises(FieldRangeError) as caught:
        Frame(1, Command.SEND, DEVICE, CENTRE, SENT, bytes(1025))
    assert str(caught.value) == "GB/T 26875.3 frame: offset 24: expected an ADU of at most 1024 bytes, found 1025 bytes"
    body = raw[2:24] + (1025).to_bytes(2, "little") + raw[26:-3] + b"\x00"
    too_long = b"@@" + body + bytes((sum(body) & 0xFF,)) + b"##"
    with pytest.raises(FrameError) as denied:
        decode_frame(too_long)
    assert str(denied.value) == "GB/T 26875.3 frame: offset 24: expected an ADU length of at most 1024, found 1025"
    out = FrameReader().feed(too_long + F2)
    assert isinstance(out[0], BadFrame)
    assert str(out[0].error) == str(denied.value)
    assert out[0].header is not None
    assert out[0].header.adu_length == 1025
    assert out[-1] == decode_frame(F2)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"##" + F2[2:], "GB/T 26875.3 frame: offset 0: expected start characters 40 40 ('@@'), found 23 23"),
        (F2[:-2] + b"#!", "GB/T 26875.3 frame: offset 28: expected end characters 23 23 ('##'), found 23 21"),
        (F2[:-3] + b"\xf3##", "GB/T 26875.3 frame: offset 27: expected checksum F2, found F3"),
        (F2[:20], "GB/T 26875.3 frame: offset 20: expected at least 30 bytes, found 20 bytes"),
        (F2 + b"\x00", "GB/T 26875.3 frame: offset 24: expected 30 bytes for an ADU length of 0, found 31 bytes"),
    ],
)
def test_frame_decode_errors_name_the_offset(raw: bytes, message: str) -> None:
    """A frame that fails a check is refused with the offset and what was expected."""
    with pytest.raises(FrameError) as caught:
        decode_frame(raw)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "GB/T 26875.3 ADU: offset 0: expected a type flag and an object count, found 0 bytes"),
        (
            F1[27:-10],
            "GB/T 26875.3 ADU type 2, object 1 of 1: offset 2: expected 46 bytes for component status, found 39 bytes",
        ),
        (
            F3[27:49] + b"\x00",
            "GB/T 26875.3 ADU type 1: offset 22: expected the end after 2 objects, found 1 more bytes",
        ),
        (
            b"\x06\x01\x01\x01\x05ab",
            "GB/T 26875.3 ADU type 6, object 1 of 1: offset 2: expected 8 bytes "
            "for system configuration, found 5 bytes",
        ),
    ],
)
def test_adu_decode_errors_name_type_object_and_offset(raw: bytes, message: str) -> None:
    """An ADU whose objects do not fit its bytes is refused, naming the type, the object and the offset."""
    with pytest.raises(AduError) as caught:
        decode_adu(raw)
    assert str(caught.value) == message


def test_adu_unknown_types_kept_raw() -> None:
    """Reserved and user-defined types are kept as bytes, never refused."""
    assert decode_adu(b"\x80\x02abc") == RawAdu(128, 2, b"abc")
    assert decode_adu(b"\x16\x00") == RawAdu(22, 0, b"")
    assert tables.adu_types().name(200).en == "user-defined ADU type 200"
    assert tables.adu_types().name(22).zh == "预留数据单元类型 22"


def test_adu_object_field_out_of_range_is_refused() -> None:
    """An object whose field does not fit on the wire is refused, naming the field."""
    with pytest.raises(FieldRangeError) as caught:
        SystemStatus(1, 256, 0, EVENT)
    assert str(caught.value) == "GB/T 26875.3 system status: offset 1: expected system_address 0..255, found 256"
    with pytest.raises(FieldRangeError) as wrong:
        Adu(AduType.SYSTEM_STATUS, (TransmitterState(1, EVENT),))
    assert str(wrong.value) == (
        "GB/T 26875.3 ADU: offset 2: expected object 1: a SystemStatus for type 1, found TransmitterState"
    )


def test_adu_description_cut_on_a_character_boundary() -> None:
    """A description longer than 31 bytes is cut before a character that would not fit whole, then NUL-padded."""
    assert pack_text("a" * 30 + "烟") == b"a" * 30 + b"\x00"
    assert pack_text("a" * 29 + "烟") == b"a" * 29 + "烟".encode("gb18030")
    assert pack_text("a" * 28 + "\U0001f525") == b"a" * 28 + b"\x00" * 3  # a 4-byte GB 18030 character
    assert unpack_text(pack_text("a" * 28 + "\U0001f525")) == "a" * 28
    assert unpack_text(b"\xc8\xfd\xff\x00junk") == "三\ufffd"


def test_frame_time_label_checked_when_read() -> None:
    """A time label is kept as sent; reading it as a time names a field out of range."""
    assert TimeLabel.from_datetime(datetime(2026, 11, 28, 10, 15, 30)) == SENT
    with pytest.raises(FieldRangeError) as caught:
        TimeLabel(61, 0, 0, 1, 1, 26).to_datetime(CHINA_STANDARD_TIME)
    assert str(caught.value) == "GB/T 26875.3 time label: offset 0: expected second 0..59, found 61"
    with pytest.raises(FieldRangeError) as february:
        TimeLabel(0, 0, 0, 31, 2, 26).to_datetime(CHINA_STANDARD_TIME)
    assert str(february.value) == "GB/T 26875.3 time label: offset 3: expected a day of that month, found 31"


# Tables


def test_tables_name_every_code() -> None:
    """Every table names every byte value, in both languages: listed, user-defined or reserved."""
    for table in (tables.system_types(), tables.component_types(), tables.adu_types(), tables.commands()):
        for code in range(256):
            name = table.name(code)
            assert name.en
            assert name.zh
    assert tables.component_types().name(23) == tables.Name("manual call point", "手动火灾报警按钮")
    assert tables.component_types().name(130).text("en") == "user-defined component type 130"
    assert tables.system_types().name(5).text("zh-CN") == "预留系统类型 5"
    assert tables.commands().name(Command.DENY).zh == "否认"
    assert tables.analog_type(5).unit == "kPa"
    assert tables.analog_type(200).name.en == "user-defined analog type 200"
    assert tables.set_bits("transmitter_operation", 0x20)[0].zh == "查岗应答"
    assert tables.set_bits("panel_operation", 0x80)[0].en == "reserved bit 7"
    assert set(AduType) <= set(tables.adu_types().codes)


def test_tables_malformed_file_names_file_and_key(tmp_path: Path) -> None:
    """A malformed table stops with the file, the key and what was expected."""
    path = tmp_path / "system_types.toml"
    path.write_text(
        'what = { en = "system type", zh = "系统类型" }\nuser_defined = [128, 255]\n'
        '[codes]\n1 = { en = "fire alarm system" }\n',
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as caught:
        tables.load_code_table("system_types", path)
    assert str(caught.value) == f"{path}: codes.1: expected a table with text 'en' and 'zh'"
    path.write_text(
        'what = { en = "x", zh = "x" }\nuser_defined = [128, 255]\n[codes]\n300 = { en = "a", zh = "b" }\n',
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as code:
        tables.load_code_table("system_types", path)
    assert str(code.value) == f"{path}: codes.300: expected a code 0..255, found '300'"


# The fuzz target


def test_gb26875_fuzz_short_run(tmp_path: Path) -> None:
    """A short run of fuzz/gb26875_reader.py: no stream makes the reader raise, lose a byte or a good frame."""
    proc = subprocess.run(
        [sys.executable, str(FUZZ), "-runs=10000", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this tree's drivers/, wherever the package is installed
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 10000 runs" in proc.stderr
