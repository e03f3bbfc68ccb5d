"""The Solo5 manifest note read from an image's ELF kernel (urunc.guests.solo5_manifest.read).

Input: the kernel file. Correct result: None (not a 64-bit ELF, or no Solo5 note) or a Manifest
of at most 63 devices with names the tender accepts. Error: PlanError, one line naming the file.
"""

from __future__ import annotations

import os

from _fuzzlib import fresh, guard, one_line, write

from urunc import _errors
from urunc.guests import solo5_manifest as _m


def one(data: bytes) -> None:
    with fresh("elf") as tmp:
        path = os.path.join(tmp, "kernel")
        write(path, data)
        with guard():
            try:
                manifest = _m.read(path)
            except _errors.UruncError as exc:
                assert path in one_line(exc), str(exc)
                return
    if manifest is None:
        return
    assert isinstance(manifest, _m.Manifest)
    assert len(manifest.devices) < _m.MFT_MAX_ENTRIES
    for device in manifest.devices:
        assert isinstance(device.name, str) and device.name.isascii() and device.name.isalnum(), device.name
        assert 0 < len(device.name) < _m.MFT_NAME_SIZE
        assert device.kind in _m.TYPE_NAMES.values() or device.kind.startswith("TYPE"), device.kind
