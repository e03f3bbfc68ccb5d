"""_jsonlite, the json-free JSON of the command paths, against the standard library's json."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urunc import _jsonlite

_scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(_values)
def test_compact_and_indented_output_parse_back_as_json_does(value: object) -> None:
    for text in (_jsonlite.dumps(value), _jsonlite.dumps(value, indent=2)):
        assert json.loads(text) == value
        assert _jsonlite.loads(text) == value


@given(_values)
def test_indented_output_is_what_json_writes_with_ascii_escapes(value: object) -> None:
    assert _jsonlite.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_compact_output_matches_json_with_compact_separators() -> None:
    value = {"a": [1, 2.5, None, True], "b": "é\n\"", "c": {}}
    assert _jsonlite.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("text", ["", "   ", "{", "[1,]", '{"a" 1}', "nul", "1 2", '"\\x"', "NaN", "Infinity",
                                  '{"a": 1} x', "\x00"])
def test_malformed_input_is_a_value_error_like_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        _jsonlite.loads(text)
    with pytest.raises(ValueError):
        json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


def test_bytes_are_utf8_and_invalid_utf8_is_a_value_error() -> None:
    assert _jsonlite.loads('{"k": "é"}'.encode()) == {"k": "é"}
    with pytest.raises(UnicodeDecodeError):
        _jsonlite.loads(b'"\xff"')


@pytest.mark.parametrize("value", [{1, 2}, b"x", object(), math.nan])
def test_what_json_cannot_hold_is_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        _jsonlite.dumps({"k": value})
    with pytest.raises((TypeError, ValueError)):
        _jsonlite.dumps({"k": value}, indent=1)


@pytest.mark.parametrize("indent", [None, 2])
def test_dumps_around_leaves_holes_a_scalar_fills_as_dumps_would(indent: int | None) -> None:
    value = {"a": [1, {"b": _jsonlite.HOLE}], "c": "\0hole\0", "d": _jsonlite.HOLE, "e": {"f": "x"}}
    head, between, tail = _jsonlite.dumps_around(value, indent)
    for b, d in (("s", 7), (None, -1.5), (True, "é\n")):
        assert head + _jsonlite.dumps(b) + between + _jsonlite.dumps(d) + tail == \
            _jsonlite.dumps({**value, "a": [1, {"b": b}], "d": d}, indent)
    assert _jsonlite.dumps_around([1, 2], indent) == [_jsonlite.dumps([1, 2], indent)]
