"""Record: the frozen slotted value type that stands in for dataclasses on the command paths."""

from __future__ import annotations

import pytest

from urunc._record import Record


class Point(Record):
    __slots__ = ("x", "tags", "extra")


def test_every_field_must_be_given_and_no_other() -> None:
    with pytest.raises(TypeError, match=r"missing \['extra'\], unknown \['z'\]"):
        Point(x=1, tags=(), z=2)


def test_it_is_frozen_and_has_no_dict() -> None:
    p = Point(x=1, tags=("a",), extra={"k": "v"})
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    assert not hasattr(p, "__dict__")


def test_replace_makes_a_new_record_and_leaves_the_old_one() -> None:
    p = Point(x=1, tags=("a",), extra={})
    q = p.replace(x=2)
    assert (p.x, q.x, q.tags) == (1, 2, ("a",))
    with pytest.raises(TypeError):
        p.replace(nope=1)


def test_dict_round_trip_turns_tuples_into_lists_and_back() -> None:
    p = Point(x=1, tags=("a", "b"), extra={"k": "v"})
    data = p.to_dict()
    assert data == {"x": 1, "tags": ["a", "b"], "extra": {"k": "v"}}
    assert Point.from_dict(data) == p
    with pytest.raises(KeyError):
        Point.from_dict({"x": 1, "tags": []})


def test_equal_records_hash_alike_even_with_dict_fields() -> None:
    a = Point(x=1, tags=("a",), extra={"k": ["v"]})
    b = Point(x=1, tags=("a",), extra={"k": ["v"]})
    assert a == b and hash(a) == hash(b)
    assert a != a.replace(x=2)
    assert a != ("not", "a", "record")
