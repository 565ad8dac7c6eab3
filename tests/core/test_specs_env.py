"""Environment evaluation: $env{}, $prev{}, defaults, $$, extend vs replace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maelstrom_core.errors import SpecError
from maelstrom_core.specs import EnvironmentSpec, evaluate_environment, substitute

CLIENT = {"FOO": "foo", "BAR": "bar", "EMPTY": ""}
PREV = {"FOO": "prev-foo", "BAR": "prev-bar", "EMPTY": ""}


def sub(value: str) -> str:
    return substitute(value, CLIENT.get, PREV.get)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("foo bar blah", "foo bar blah"),
        ("foo$$bar$$$$baz$$$$$$", "foo$bar$$baz$$$"),
        ("$$$$foo$$bar$$$$baz", "$$foo$bar$$baz"),
        ("$$env{FOO}", "$env{FOO}"),
        ("xx$env{FOO}yy$prev{FOO}$env{BAR}$prev{BAR}zz", "xxfooyyprev-foobarprev-barzz"),
        ("$env{FOO}", "foo"),
        ("$prev{FOO}more", "prev-foomore"),
        ("more$env{FOO}", "morefoo"),
        ("$env{FOO}$prev{BAR}", "fooprev-bar"),
        ("$env{EMPTY:-Hello} $prev{X:-World}: $env{FOO:-bar}", "Hello World: foo"),
        ("$env{EMPTY}|", "|"),
        ("$env{NOPE:-}", ""),
        ("$env{NOPE:-a:-b}", "a:-b"),
        ("$env{FOO}}", "foo}"),
        ("{$env{FOO}}", "{foo}"),
    ],
)
def test_substitute(value: str, expected: str) -> None:
    assert sub(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("$", '$ must be followed by "$", "env{", or "prev{"'),
        ("foo$", '$ must be followed by "$", "env{", or "prev{"'),
        ("foo$$$$$", '$ must be followed by "$", "env{", or "prev{"'),
        ("$FOO", '$ must be followed by "$", "env{", or "prev{"'),
        ("$blah{FOO}", '$ must be followed by "$", "env{", or "prev{"'),
        ("$ENV{FOO}", '$ must be followed by "$", "env{", or "prev{"'),
        ("$env{FOO $env{BAR}", "unterminated {"),
        ("$env{FOO} $env{BAR", "unterminated {"),
        ("$env{X:-$$}", "unterminated {"),
        ("$env{UNKNOWN}", 'unknown variable "UNKNOWN"'),
        ("$prev{UNKNOWN}", 'unknown variable "UNKNOWN"'),
        ('$env{A"B}', 'unknown variable "A\\"B"'),
    ],
)
def test_substitute_errors(value: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        sub(value)
    assert str(info.value) == message


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_text_without_dollar_is_unchanged(value: str) -> None:
    assert sub(value) == value


@given(st.text())
def test_doubled_dollars_round_trip(value: str) -> None:
    # Escaping every "$" as "$$" always gives the text back.
    assert sub(value.replace("$", "$$")) == value


def spec(extend: bool = True, **vars: str) -> EnvironmentSpec:
    return EnvironmentSpec.of(vars, extend=extend)


def test_result_is_sorted_name_value_strings() -> None:
    assert evaluate_environment([spec(Z="1", A="2", M="3")], {}) == ("A=2", "M=3", "Z=1")


def test_empty() -> None:
    assert evaluate_environment([], {"HOME": "/root"}) == ()
    assert evaluate_environment([], {}, {"PATH": "/bin"}) == ("PATH=/bin",)


def test_extend_overlays_and_replace_replaces() -> None:
    initial = {"PATH": "/bin", "HOME": "/"}
    assert evaluate_environment([spec(A="a")], {}, initial) == ("A=a", "HOME=/", "PATH=/bin")
    assert evaluate_environment([spec(False, A="a")], {}, initial) == ("A=a",)
    assert evaluate_environment([spec(A="a"), spec(False, B="b"), spec(C="c")], {}) == (
        "B=b",
        "C=c",
    )


def test_prev_reads_the_map_before_this_spec() -> None:
    specs = [
        spec(PATH="/usr/bin"),
        spec(PATH="$prev{PATH}:/opt/bin", OLD="$prev{PATH}"),
        spec(False, KEEP="$prev{PATH}"),
    ]
    assert evaluate_environment(specs, {}, {"PATH": "/bin"}) == ("KEEP=/usr/bin:/opt/bin",)
    # Within one spec, values see the map before it, not each other.
    with pytest.raises(SpecError, match=r'^environment variable B: unknown variable "A"$'):
        evaluate_environment([spec(A="1", B="$prev{A}")], {})


def test_env_reads_only_the_given_client_environment() -> None:
    client = {"RUST_BACKTRACE": "full"}
    specs = [spec(RUST_BACKTRACE="$env{RUST_BACKTRACE:-0}", LIB="$env{RUST_LIB_BACKTRACE:-0}")]
    assert evaluate_environment(specs, client) == ("LIB=0", "RUST_BACKTRACE=full")
    assert evaluate_environment(specs, {"RUST_BACKTRACE": ""}) == ("LIB=0", "RUST_BACKTRACE=0")
    with pytest.raises(SpecError, match=r'^environment variable H: unknown variable "HOME"$'):
        evaluate_environment([spec(H="$env{HOME}")], {})


def test_error_names_the_variable_being_set() -> None:
    with pytest.raises(SpecError) as info:
        evaluate_environment([spec(GOOD="x", BAD="a$b")], {})
    assert str(info.value) == (
        'environment variable BAD: $ must be followed by "$", "env{", or "prev{"'
    )
