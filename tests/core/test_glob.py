"""Glob syntax of the original's globset (default options)."""

from __future__ import annotations

import pytest

from maelstrom_core._glob import Glob
from maelstrom_core.errors import SpecError


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.py", "mod.py", True),
        ("*.py", "pkg/mod.py", True),  # globset's default lets * cross "/"
        ("*.py", "mod.pyc", False),
        ("?", "a", True),
        ("?", "ab", False),
        ("**", "a/b/c", True),
        ("**/foo", "foo", True),
        ("**/foo", "a/b/foo", True),
        ("**/foo", "afoo", False),
        ("foo/**", "foo/a/b", True),
        ("foo/**", "foo", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "ab", False),
        ("a**b", "a/x/b", True),
        ("{a,b}.txt", "b.txt", True),
        ("{a,b}.txt", "c.txt", False),
        ("{a,{b,c}d}", "cd", True),
        ("x{,y}", "xy", True),
        ("x{,y}", "x", False),  # empty alternatives are dropped, as globset does by default
        ("[abc]", "b", True),
        ("[abc]", "d", False),
        ("[a-c]x", "bx", True),
        ("[!a-z]", "B", True),
        ("[!a-z]", "q", False),
        ("[^a-z]", "q", False),
        ("[]]", "]", True),
        ("[a-]", "-", True),
        ("[*]", "*", True),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("\\{a\\}", "{a}", True),
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("(x)+", "(x)+", True),
        ("src/lib.rs", "src/lib.rs", True),
    ],
)
def test_matching(pattern: str, path: str, matches: bool) -> None:
    assert Glob(pattern).matches(path) is matches


@pytest.mark.parametrize(
    ("pattern", "base"),
    [("src/**/*.rs", "src"), ("a/b/c", "a/b"), ("*.py", ""), ("a/\\*/x", "a"), ("f", "")],
)
def test_base_dir(pattern: str, base: str) -> None:
    assert Glob(pattern).base_dir == base


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[a", "unclosed character class"),
        ("{a,b", "unclosed alternate group"),
        ("a}", "unopened alternate group"),
        ("\\", "dangling"),
        ("[z-a]", "invalid range"),
    ],
)
def test_errors_name_the_layer_and_glob(pattern: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        Glob(pattern, where="glob layer")
    assert str(err.value).startswith("glob layer: invalid glob")
