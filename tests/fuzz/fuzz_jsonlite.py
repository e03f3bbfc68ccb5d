"""_jsonlite.loads against the standard library's json, and dumps round trips.

Correct result: the value json.loads gives (NaN and the infinities refused, as _jsonlite
documents), and whatever loads accepts, dumps writes back (compact and indented) to the same
value. Error: ValueError (its contract; callers wrap it in a one-line UruncError) with one line.
"""

from __future__ import annotations

import json
import math

from _fuzzlib import guard, one_line

from urunc import _jsonlite


def _refuse_constant(name: str) -> object:
    raise ValueError(f"invalid constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise OverflowError(text)
    return value


def one(data: bytes) -> None:
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    with guard():
        try:
            got = _jsonlite.loads(data)
        except ValueError as exc:
            one_line(exc)
            refused = True
        else:
            refused = False
    if text is None:
        assert refused, "invalid utf-8 accepted"
        return
    try:
        expected = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except OverflowError:
        assert refused, "accepted a number out of a double's range, which dumps cannot write back"
        return
    except (ValueError, RecursionError):
        assert refused, f"accepted what json refuses: {got!r}"[:300]
        return
    assert not refused, f"refused what json accepts: {expected!r}"[:300]
    assert got == expected, f"{got!r} != json's {expected!r}"[:300]
    for indent in (None, 2):
        assert _jsonlite.loads(_jsonlite.dumps(got, indent=indent)) == got
