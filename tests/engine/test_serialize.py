"""The engine's JSON codec (``apps.engine.serialize``): what a worker decodes from a
step's stored launch for every step it claims."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.engine.serialize import dump, from_jsonable, load


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Leaf:
    name: str
    weight: float = 1.0
    color: Color | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tree:
    leaf: Leaf
    children: list[Tree] = field(default_factory=list)  # refers to itself
    extra: dict[str, Any] = field(default_factory=dict)
    pair: tuple[int, str] | None = None


def test_a_nested_self_referring_dataclass_round_trips() -> None:
    tree = Tree(
        leaf=Leaf("root", 2.5, Color.RED, ("a", "b")),
        children=[Tree(leaf=Leaf("child")), Tree(leaf=Leaf("other", color=Color.BLUE), pair=(1, "x"))],
        extra={"k": [1, {"n": None}]},
    )
    assert load(Tree, dump(tree)) == tree


def test_values_are_checked_and_coerced_as_before() -> None:
    assert from_jsonable(float, 3) == 3.0 and isinstance(from_jsonable(float, 3), float)
    with pytest.raises(TypeError):
        from_jsonable(float, True)  # a bool is not a number here
    with pytest.raises(TypeError):
        from_jsonable(str, 1)
    with pytest.raises(TypeError):
        load(Leaf, ["not", "an", "object"])
    assert from_jsonable(Leaf | None, None) is None
    assert from_jsonable(Color, "blue") is Color.BLUE
    assert load(Leaf, {"name": "n", "unknown": 1}) == Leaf("n")  # fields it does not know are ignored


def test_the_first_option_of_a_union_that_decodes_wins_in_the_order_written() -> None:
    # int | float == float | int, but each is decoded in its own order.
    assert from_jsonable(float | int, 3) == 3.0 and isinstance(from_jsonable(float | int, 3), float)
    assert isinstance(from_jsonable(int | float, 3), int)
    assert isinstance(from_jsonable(list[float | int], [3])[0], float)
    assert isinstance(from_jsonable(list[int | float], [3])[0], int)
    with pytest.raises(ValueError, match="cannot decode"):
        from_jsonable(int | float, "three")


class Shade(enum.StrEnum):
    DARK = "dark"


def test_encoding_keeps_what_each_kind_of_value_becomes() -> None:
    """The encoder looks each type up once: a str-valued enum is still an enum (its
    value, not the member), a dataclass *class* is not encoded as an instance, and a
    mapping's keys become strings."""
    tree = Tree(
        leaf=Leaf(name="a", color=Color.BLUE, tags=("x",)),
        children=[Tree(leaf=Leaf(name="b", weight=2))],
        extra={1: Shade.DARK, "kind": Leaf, "none": None, "flag": True, "nested": (Leaf(name="c"),)},
        pair=(3, "z"),
    )
    encoded = dump(tree)
    assert encoded == {
        "leaf": {"name": "a", "weight": 1.0, "color": "blue", "tags": ["x"]},
        "children": [
            {
                "leaf": {"name": "b", "weight": 2, "color": None, "tags": []},
                "children": [],
                "extra": {},
                "pair": None,
            }
        ],
        "extra": {
            "1": "dark",
            "kind": Leaf,
            "none": None,
            "flag": True,
            "nested": [{"name": "c", "weight": 1.0, "color": None, "tags": []}],
        },
        "pair": [3, "z"],
    }
    assert type(encoded["extra"]["1"]) is str and type(encoded["leaf"]["color"]) is str
