"""Brace expansion of stub paths (the original uses bracoxide)."""

from __future__ import annotations

import pytest

from maelstrom_core._braces import expand_braces
from maelstrom_core.errors import SpecError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/dev/null", ["/dev/null"]),
        ("/dev/{null,zero}", ["/dev/null", "/dev/zero"]),
        ("a{b,c{d,e}}f", ["abf", "acdf", "acef"]),
        ("{x{1..3},y}", ["x1", "x2", "x3", "y"]),
        ("{a,b}{1..2}", ["a1", "a2", "b1", "b2"]),
        ("f{1..3}", ["f1", "f2", "f3"]),
        ("{3..1}", ["3", "2", "1"]),
        ("{-1..1}", ["-1", "0", "1"]),
        ("{08..11}", ["08", "09", "10", "11"]),
        ("a{,b}", ["a", "ab"]),
        ("{a}", ["a"]),
        ("\\{a,b\\}", ["{a,b}"]),
        ("{a\\,b,c}", ["a,b", "c"]),
        ("/tmp/", ["/tmp/"]),
        ("{/a,/b}/", ["/a/", "/b/"]),
    ],
)
def test_expansion(text: str, expected: list[str]) -> None:
    assert expand_braces(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{a,b", "never closed"),
        ("a}", "no matching"),
        ("{}", "empty brace group"),
        ("x\\", "dangling"),
        ("{1..1000000}", "too long"),
        ("{1..400}{1..400}", "more than"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        expand_braces(text, where="stubs layer")
    assert str(err.value).startswith("stubs layer: ")
