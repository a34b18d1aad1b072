"""Fuzz target: the GB/T 26875.3 frame reader and ADU decoder (drivers.gb26875).

Whatever bytes a TCP peer sends, in whatever pieces, the reader must never raise, must hand on every byte exactly
once (as a frame or inside a bad frame, or keep it pending), and must never lose a good frame that follows: a good
frame sent after the fuzzed bytes comes out, unless a frame that passes every check swallowed it whole. Every
frame's ADU decodes or fails with AduError, and what decodes encodes to the same bytes.

    python fuzz/gb26875_reader.py -runs=30000          # the short run CI makes (tests/test_gb26875_codec.py)
    python fuzz/gb26875_reader.py -max_total_time=3600 fuzz/corpus-gb26875   # a long run, keeping what it finds

The first input byte sets the size of the pieces the rest is fed in (1 to 256 bytes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from drivers.errors import AduError
    from drivers.gb26875.adu import decode_adu, encode_adu
    from drivers.gb26875.frame import BadFrame, Frame, FrameReader, TimeLabel, encode_frame

# A good frame without '@' or '#' inside it but its start and end characters, so that only a frame containing it
# whole can hide it.
_STATE = bytes((21, 1, 1, 30, 15, 10, 28, 11, 26))  # type 21, one object: normal monitoring, and its time
_GOOD = encode_frame(Frame(7, 2, 1234567, 1, TimeLabel(30, 15, 10, 28, 11, 26), _STATE))


def seeds() -> list[bytes]:
    """Streams of the brief's frames: coalesced, with garbage, with a bad checksum, cut short."""
    f1 = bytes.fromhex(
        "40400500 01001E0F 0A1C0B1A 87D61200 00000100 00000000 30000202 0101012A 03001100 0300C8FD C2A5D7DF"
        "C0C8D1CC B8D00000 00000000 00000000 00000000 00000000 00001B0F 0A1C0B1A 6A2323"
    )
    f2 = bytes.fromhex("40400500 01001F0F 0A1C0B1A 01000000 000087D6 12000000 00000003 F22323")
    bad = f1[:-3] + b"\x00##"
    return [b"\x01" + f1 + f2, b"\x07" + f1 + b"@@#" + bad + f2, b"\xff" + f1[:40] + f2, b"\x03" + _GOOD + f1]


def _whole_frames(out: list[Frame | BadFrame]) -> list[bytes]:
    """The bytes of what passed the framing checks: good frames, and frames denied for an unknown command only."""
    whole = []
    for item in out:
        if isinstance(item, Frame):
            whole.append(encode_frame(item))
        elif item.header is not None and item.error.offset == 26 and len(item.data) == 30 + item.header.adu_length:
            whole.append(item.data)
    return whole


def test_one(data: bytes) -> None:
    if not data:
        return
    piece = data[0] + 1
    stream = data[1:] + _GOOD
    reader = FrameReader()
    out: list[Frame | BadFrame] = []
    for start in range(0, len(stream), piece):
        out.extend(reader.feed(stream[start : start + piece]))
    handed_on = b"".join(encode_frame(item) if isinstance(item, Frame) else item.data for item in out)
    if handed_on + reader.pending != stream:
        raise AssertionError(f"bytes lost or invented: {stream!r} -> {out!r} + {reader.pending!r}")
    if not any(_GOOD in whole for whole in _whole_frames(out)):
        raise AssertionError(f"good frame lost after {data[1:]!r}: {out!r} + {reader.pending!r}")
    for item in out:
        if isinstance(item, Frame) and item.adu:
            try:
                adu = decode_adu(item.adu)
            except AduError:
                continue
            if encode_adu(adu) != item.adu:
                raise AssertionError(f"ADU does not re-encode: {item.adu!r} -> {adu!r}")


def main() -> None:
    seed_dir = Path(tempfile.mkdtemp(prefix="fuzz-gb26875-"))
    for i, s in enumerate(seeds()):
        (seed_dir / f"seed-{i}").write_bytes(s)
    args = [a for a in sys.argv if not a.startswith("--")]
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(seed_dir))
    atheris.Setup(args, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
