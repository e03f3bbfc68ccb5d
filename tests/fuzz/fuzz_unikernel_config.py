"""The com.urunc.unikernel.* settings (urunc.unikernel.config.detect): spec annotations and /urunc.json.

Input: the first line is the spec's annotations as a JSON object (anything else: none); the rest,
when not empty, is the rootfs's /urunc.json. Correct result: what an independent reading with json
and base64 gives (spec annotations win, sandbox containers and bundles without settings are None).
Error: BundleError, one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os

from _fuzzlib import fresh, guard, one_line, write

from urunc import _errors
from urunc.unikernel import config as _config


def _annotations(line: bytes) -> dict[str, str]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return value
    return {}


def _refuse(text: str) -> float:
    raise ValueError(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _expected_from_file(data: bytes) -> dict[str, str] | str | None:
    """The settings in urunc.json, or "error"."""
    try:   # _jsonlite's contract: json's, without NaN, the infinities and numbers beyond a double
        raw = json.loads(data.decode("utf-8"), parse_constant=_refuse, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return "error"
    if not isinstance(raw, dict):
        return "error"
    out: dict[str, str] = {}
    for full_key, encoded in raw.items():
        key = full_key[len(_config.PREFIX):] if full_key.startswith(_config.PREFIX) else None
        if key not in _config.KEYS:
            continue
        if not isinstance(encoded, str):
            return "error"
        try:
            value = base64.b64decode(encoded.encode("ascii"), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeError):
            return "error"
        if len(value) > _config._MAX_VALUE or "\0" in value:
            return "error"
        out[key] = value
    return out


def one(data: bytes) -> None:
    first, _, rest = data.partition(b"\n")
    got = None
    annotations = _annotations(first)
    with fresh("rootfs") as rootfs:
        if rest:
            write(os.path.join(rootfs, "urunc.json"), rest)
        with guard():
            try:
                got = _config.detect(annotations, rootfs)
            except _errors.UruncError as exc:
                message = one_line(exc)
                error = True
            else:
                error = False
    if any(annotations.get(k) == "sandbox" for k in _config._SANDBOX_MARKERS):
        assert not error and got is None
        return
    from_file = _expected_from_file(rest) if rest else None
    if from_file == "error" or (len(rest) > _config._MAX_FILE):
        assert error, f"accepted a urunc.json that json and base64 refuse: {rest[:100]!r}"
        assert "urunc.json" in message, message
        return
    expected = dict(from_file or {})
    for full_key, value in annotations.items():
        key = full_key[len(_config.PREFIX):] if full_key.startswith(_config.PREFIX) else None
        if key in _config.KEYS:
            if len(value) > _config._MAX_VALUE or "\0" in value:
                assert error and full_key in message, "a bad annotation accepted"
                return
            expected[key] = value
    if not expected:
        assert not error and got is None, got
        return
    if not expected.get("unikernelType"):
        assert error and "unikernelType" in message
        return
    assert not error, message
    assert got is not None and got.values == expected, (got and got.values, expected)
    for key in expected:
        assert got.sources[key] == ("annotations" if _config.PREFIX + key in annotations else "urunc.json")
