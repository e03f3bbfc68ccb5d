"""JSON without importing :mod:`json`.

``import json`` pulls in :mod:`re` and costs about 9 ms here, on every
runtime call. The C scanner and string encoder behind :mod:`json` live in the
built-in ``_json`` module, which imports nothing, so the hot commands
(state, start, kill, delete) use them directly. Compact output comes from the
C encoder; indented output (for people) from the small writer below.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\r\n"
_INF = float("inf")


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_float(text: str) -> float:
        # 1e400 would be inf, which dumps() refuses: a record read could not be written back
        value = float(text)
        if value in (_INF, -_INF):
            raise ValueError(f"number {text[:40]} is out of range")
        return value

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"invalid constant {name}")


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"cannot serialise {type(value).__name__} to json")


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
_quote = _json.encode_basestring_ascii
# json.dumps(value, separators=(",", ":")) without json: the C encoder, no circularity check.
# allow_nan False: NaN and the infinities are not JSON, and loads() would refuse them.
_encode = _json.make_encoder(None, _unserialisable, _quote, None, ":", ",", False, False, False)


def loads(text: str | bytes) -> Any:
    """Parse one JSON document; raise ValueError naming the position on failure."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        value, end = _scan(text, i)
    except StopIteration as exc:
        raise ValueError(f"expecting a value at char {exc.value}") from None
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except SystemError:
        # _json raises its syntax errors through json.decoder, found only once imported:
        # import it on this error path alone, and scan again for the real message.
        import json.decoder  # noqa: F401

        return loads(text)
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise ValueError(f"extra data at char {end}")
    return value


def loads_object(data: bytes, what: str, error: type[Exception]) -> dict[str, Any]:
    """DATA as one JSON object; anything else raises ERROR("malformed WHAT: why")."""
    try:
        value = loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"malformed {what}: {exc}") from None
    if not isinstance(value, dict):
        raise error(f"malformed {what}: not a json object")
    return value


def dumps(value: Any, indent: int | None = None) -> str:
    """Serialise plain data (dict, list, tuple, str, int, float, bool, None)."""
    if indent is None:
        return "".join(_encode(value, 0))
    out: list[str] = []
    _dump(value, out, indent, 0)
    return "".join(out)


class Hole:
    """A place in a value that ``dumps_around`` leaves open."""

    __slots__ = ()


HOLE = Hole()
_HOLE_TEXT = "\0hole\0"  # found in dumps_around's list by identity: no text _dump makes is this object


def dumps_around(value: Any, indent: int | None = None) -> list[str]:
    """``dumps(VALUE, INDENT)`` cut where VALUE holds ``HOLE``: the texts before, between and
    after them. A scalar's ``dumps``, put in a hole, gives ``dumps`` of VALUE with it there."""
    out: list[str] = []
    _dump(value, out, indent, 0)
    texts, start = [], 0
    for i, part in enumerate(out):
        if part is _HOLE_TEXT:
            texts.append("".join(out[start:i]))
            start = i + 1
    texts.append("".join(out[start:]))
    return texts


def _dump(value: Any, out: list[str], indent: int | None, level: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot serialise {value!r} to json")
        out.append(repr(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{")
        first = True
        for key in value:
            if not first:
                out.append(",")
            first = False
            _newline(out, indent, level + 1)
            out.append(_quote(str(key)))
            out.append(": " if indent is not None else ":")
            _dump(value[key], out, indent, level + 1)
        _newline(out, indent, level)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _newline(out, indent, level + 1)
            _dump(item, out, indent, level + 1)
        _newline(out, indent, level)
        out.append("]")
    elif value is HOLE:
        out.append(_HOLE_TEXT)
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} to json")


def _newline(out: list[str], indent: int | None, level: int) -> None:
    if indent is not None:
        out.append("\n" + " " * (indent * level))
