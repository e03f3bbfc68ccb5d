"""The host side of the Linux guest's exec channel (urunc.guests.linux_exec): the guest's frames.

Input: byte 0 sets the size of the reads (1..256 bytes) the guest's stream arrives in; the rest is
the stream. Everything in it is the guest's, so untrusted. Correct result: exactly the frames an
independent reading of docs/exec-protocol.md cuts from the stream (type in AOEFX, 4-byte big
endian length, at most 65536), whatever the read sizes, with at most one frame's worth buffered;
an 'X' payload is an exit status 0..255. Error: HostError (one line) at the first frame header
the protocol does not allow, and not before.
"""

from __future__ import annotations

from _fuzzlib import guard, one_line

from urunc import _errors
from urunc.guests import linux_exec as _exec


def _reference(stream: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """The complete frames of STREAM, and whether a bad header stops it."""
    frames: list[tuple[int, bytes]] = []
    at = 0
    while len(stream) - at >= 5:
        kind, size = stream[at], int.from_bytes(stream[at + 1:at + 5], "big")
        if kind not in b"AOEFX" or size > 65536:
            return frames, True
        if len(stream) - at - 5 < size:
            break
        frames.append((kind, stream[at + 5:at + 5 + size]))
        at += 5 + size
    return frames, False


def one(data: bytes) -> None:
    if not data:
        return
    step, stream = data[0] + 1, data[1:]
    expected, bad = _reference(stream)
    cutter = _exec.Frames()
    got: list[tuple[int, bytes]] = []
    refused = False
    with guard():
        for at in range(0, len(stream), step):
            try:
                got += cutter.feed(stream[at:at + step])
            except _errors.UruncError as exc:
                one_line(exc)
                refused = True
                break
            assert len(cutter.buf) < 5 + _exec.MAX_PAYLOAD + step, len(cutter.buf)
        for kind, payload in got:
            if kind == ord("X"):
                try:
                    status = _exec.exit_status(payload)
                except _errors.UruncError as exc:
                    one_line(exc)
                else:
                    assert 0 <= status <= 255 and payload.isdigit() and int(payload) == status, (payload, status)
    assert refused == bad, f"refused {refused}, a bad header {bad}"
    assert got == expected[:len(got)] and (refused or got == expected), (got[:3], expected[:3])
