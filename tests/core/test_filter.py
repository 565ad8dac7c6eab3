"""The test filter language: parsing, printing, abbreviations, errors, three-valued evaluation."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maelstrom_core.testrunner as testrunner
from maelstrom_core.errors import FilterError, InternalError, UsageError
from maelstrom_core.testrunner import (
    CARGO,
    DIALECTS,
    GO,
    PYTEST,
    And,
    CaseInfo,
    CompoundSelector,
    Dialect,
    Diff,
    Expr,
    Not,
    Or,
    SelectorDef,
    SimpleSelector,
    compile_filter,
    format_expr,
    parse_filter,
)
from maelstrom_core.testrunner._filter import MATCHERS


def tree(text: str, dialect: Dialect = CARGO) -> Expr:
    return parse_filter(text, dialect).expr


ALL = SimpleSelector("all")
ANY = SimpleSelector("any")
NONE = SimpleSelector("none")
FALSE = SimpleSelector("false")
TRUE = SimpleSelector("true")


def eq(selector: str, argument: str) -> CompoundSelector:
    return CompoundSelector(selector, "equals", argument)


# -- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["|", "||", " | ", " || ", " or ", "  or\t"])
def test_every_or_spelling(op: str) -> None:
    assert tree(f"all{op}none") == Or(ALL, NONE)


@pytest.mark.parametrize("op", ["&", "&&", "+", " & ", " && ", " + ", " and ", "\tand  "])
def test_every_and_spelling(op: str) -> None:
    assert tree(f"all{op}none") == And(ALL, NONE)


@pytest.mark.parametrize("op", ["\\", "-", " \\ ", " - ", " minus "])
def test_every_diff_spelling(op: str) -> None:
    assert tree(f"all{op}none") == Diff(ALL, NONE)


@pytest.mark.parametrize("text", ["!all", "~all", "not all", "not  all", "! all"])
def test_every_not_spelling(text: str) -> None:
    assert tree(text) == Not(ALL)


def test_not_operators_stack() -> None:
    assert tree("!~not !all") == Not(Not(Not(Not(ALL))))


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("all and(none)", 5, 'operator "and" needs whitespace after it'),
        ("(all)and none", 6, 'operator "and" needs whitespace before it'),
        ("all or(none)", 5, 'operator "or" needs whitespace after it'),
        ("(all)or none", 6, 'operator "or" needs whitespace before it'),
        ("(all)minus none", 6, 'operator "minus" needs whitespace before it'),
        ("not(all)", 1, 'operator "not" needs whitespace after it'),
    ],
)
def test_word_operators_need_whitespace(text: str, column: int, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(f"{message} at column {column}")):
        parse_filter(text, CARGO)


def test_words_that_merely_start_like_operators_are_not_operators() -> None:
    with pytest.raises(FilterError, match='unexpected "a" at column 5'):
        parse_filter("all andnone", CARGO)


# -- precedence and associativity -----------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    assert tree("all || any && none") == Or(ALL, And(ANY, NONE))
    assert tree("all && any || none") == Or(And(ALL, ANY), NONE)


def test_diff_binds_like_and() -> None:
    assert tree("all - any || none") == Or(Diff(ALL, ANY), NONE)
    assert tree("all || any - none") == Or(ALL, Diff(ANY, NONE))


def test_not_binds_tightest() -> None:
    assert tree("!all && none") == And(Not(ALL), NONE)
    assert tree("!(all && none)") == Not(And(ALL, NONE))


def test_or_chain_is_right_associative() -> None:
    assert tree("all || any || none") == Or(ALL, Or(ANY, NONE))


def test_and_diff_chain_is_right_associative_like_the_original() -> None:
    # The original's quirk: `a - b & c` is `a & !(b & c)`, not `(a & !b) & c`.
    assert tree("all - none & true") == Diff(ALL, And(NONE, TRUE))
    assert tree("all - none - true") == Diff(ALL, Diff(NONE, TRUE))
    assert tree("all & none - true") == And(ALL, Diff(NONE, TRUE))


def test_the_quirk_changes_results() -> None:
    case = CaseInfo(package="p", name="x", artifact_name="p", artifact_kind="library")
    # Left-associative reading would give (all - none) & false = false.
    assert parse_filter("all - none & false", CARGO).evaluate(case) is True
    assert parse_filter("(all - none) & false", CARGO).evaluate(case) is False


def test_parentheses_group_and_allow_inner_spaces() -> None:
    assert tree("( all || any ) && none - false") == And(Or(ALL, ANY), Diff(NONE, FALSE))
    assert tree("not ( all or any ) and none minus false") == And(
        Not(Or(ALL, ANY)), Diff(NONE, FALSE)
    )
    assert tree("((all))") == ALL


# -- selectors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [CARGO, GO, PYTEST], ids=lambda d: d.name)
@pytest.mark.parametrize(
    ("full", "minimum"), [("all", 2), ("any", 2), ("true", 2), ("none", 1), ("false", 1)]
)
def test_universal_selectors_and_their_abbreviations(
    dialect: Dialect, full: str, minimum: int
) -> None:
    for length in range(minimum, len(full) + 1):
        assert tree(full[:length], dialect) == SimpleSelector(full)
        assert tree(full[:length] + "()", dialect) == SimpleSelector(full)


@pytest.mark.parametrize(
    ("full", "minimum"),
    [("library", 1), ("binary", 2), ("benchmark", 2), ("example", 1), ("test", 2)],
)
def test_cargo_kind_selectors_and_their_abbreviations(full: str, minimum: int) -> None:
    for length in range(minimum, len(full) + 1):
        assert tree(full[:length]) == SimpleSelector(full)
        assert tree(full[:length] + "()") == SimpleSelector(full)


CARGO_COMPOUNDS = [
    ("name", 1),
    ("package", 1),
    ("binary", 2),
    ("benchmark", 2),
    ("example", 1),
    ("test", 2),
]
GO_COMPOUNDS = [
    ("name", 1),
    ("package_import_path", 1),
    ("package_path", 9),
    ("package_name", 9),
]
PYTEST_COMPOUNDS = [("name", 2), ("node_id", 2), ("file", 1), ("package", 1)]


@pytest.mark.parametrize(
    ("dialect", "full", "minimum"),
    [(CARGO, *c) for c in CARGO_COMPOUNDS]
    + [(GO, *c) for c in GO_COMPOUNDS]
    + [(PYTEST, *c) for c in PYTEST_COMPOUNDS],
)
def test_compound_selector_abbreviations(dialect: Dialect, full: str, minimum: int) -> None:
    for length in range(minimum, len(full) + 1):
        assert tree(f"{full[:length]}.equals(x)", dialect) == eq(full, "x")


def test_any_prefix_of_package_means_the_go_import_path() -> None:
    for word in ["p", "pa", "package", "package_", "package_i"]:
        assert tree(f"{word}.eq(x)", GO) == eq("package_import_path", "x")
    assert tree("package_p.eq(x)", GO) == eq("package_path", "x")
    assert tree("package_n.eq(x)", GO) == eq("package_name", "x")


@pytest.mark.parametrize(("full", "minimum"), MATCHERS)
def test_matcher_abbreviations(full: str, minimum: int) -> None:
    for length in range(minimum, len(full) + 1):
        assert tree(f"name.{full[:length]}(x)") == CompoundSelector("name", full, "x")  # type: ignore[arg-type]


def test_pytest_markers_must_be_spelled_out_but_contains_may_not() -> None:
    assert tree("markers.c(slow)", PYTEST) == CompoundSelector("markers", "contains", "slow")
    with pytest.raises(FilterError, match='selector "m" is too short at column 1'):
        parse_filter("m.c(slow)", PYTEST)  # the book's example, which the original rejects too
    with pytest.raises(FilterError, match='only takes the "contains" matcher at column 9'):
        parse_filter("markers.equals(slow)", PYTEST)


@pytest.mark.parametrize(
    ("dialect", "text", "message"),
    [
        (CARGO, "t", 'ambiguous selector "t" at column 1 (could be true, test)'),
        (CARGO, "a", 'ambiguous selector "a" at column 1 (could be all, any)'),
        (CARGO, "b.eq(x)", 'ambiguous selector "b" at column 1 (could be binary, benchmark)'),
        (PYTEST, "n.eq(x)", 'ambiguous selector "n" at column 1 (could be name, node_id)'),
        (CARGO, "n.e(x)", 'ambiguous matcher "e" at column 3 (could be equals, ends_with)'),
        (GO, "package_p", 'selector "package_path" needs a matcher at column 1'),
        (PYTEST, "nod", 'selector "node_id" needs a matcher at column 1'),
        (CARGO, "name", 'selector "name" needs a matcher at column 1'),
        (CARGO, "package()", 'selector "package" needs a matcher at column 1'),
        (CARGO, "library.eq(x)", 'selector "library" takes no matcher at column 1'),
        (CARGO, "all.eq(x)", 'selector "all" takes no matcher at column 1'),
        (CARGO, "bogus", 'unknown selector "bogus" at column 1 (expected one of all, any'),
        (GO, "binary.eq(x)", 'unknown selector "binary" at column 1'),
        (CARGO, "n.nope(x)", 'unknown matcher "nope" at column 3 (expected one of equals,'),
        (CARGO, "names.eq(x)", 'unknown selector "names" at column 1'),
    ],
)
def test_bad_selector_and_matcher_names(dialect: Dialect, text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text, dialect)
    assert message in str(info.value)
    assert str(info.value).startswith(f'invalid filter "{text}": ')


def test_the_same_letter_means_different_things_bare_and_with_a_matcher() -> None:
    assert tree("n") == NONE
    assert tree("n.eq(x)") == eq("name", "x")
    assert tree("f", PYTEST) == FALSE
    assert tree("f.eq(x)", PYTEST) == eq("file", "x")


def test_every_filter_in_the_example_spec_files_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    specs = {
        CARGO: root / "examples" / "rust-workspace" / "cargo-maelstrom.toml",
        GO: root / "examples" / "go-module" / "maelstrom-go-test.toml",
    }
    filters = [
        (dialect, path, directive["filter"])
        for dialect, path in specs.items()
        for directive in tomllib.loads(path.read_text(encoding="utf-8"))["directives"]
        if "filter" in directive
    ]
    assert filters
    for dialect, path, text in filters:
        parse_filter(text, dialect, origin=str(path))


def test_a_compound_selector_used_bare_is_a_kind_test_in_cargo() -> None:
    assert tree("binary") == SimpleSelector("binary")
    assert tree("bi.eq(x)") == eq("binary", "x")


# -- matcher arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "argument"),
    [
        ("name.eq(abc)", "abc"),
        ("name.eq[abc]", "abc"),
        ("name.eq{abc}", "abc"),
        ("name.eq<abc>", "abc"),
        ("name.eq/abc/", "abc"),
        ("name.eq()", ""),
        ("name.eq[(hello)]", "(hello)"),
        ("name.eq((hello))", "(hello)"),
        ("name.eq(([hello]))", "([hello])"),
        ("name.eq(he[llo)", "he[llo"),
        ("name.eq(((())))", "((()))"),
        ("name.eq((a)(b))", "(a)(b)"),
        ("name.eq{{a}b}", "{a}b"),
        ("name.eq<<x>>", "<x>"),
        ("name.eq( spaced out )", " spaced out "),
        ("name.eq(a && b || !c)", "a && b || !c"),
        ("name.eq(tests::foo)", "tests::foo"),
        ("name.eq(\\)", "\\"),
    ],
)
def test_argument_delimiters_and_nesting(text: str, argument: str) -> None:
    assert tree(text) == eq("name", argument)


def test_slash_delimiters_do_not_nest() -> None:
    with pytest.raises(FilterError, match='unexpected "b" at column 11'):
        parse_filter("name.eq/a/b/", CARGO)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p.eq(baz", "unterminated argument at column 5"),
        ("name.eq[1)", "unterminated argument at column 8"),
        ("name.eq(((hello))", "unterminated argument at column 8"),
        ("name.eq", "expected a matcher argument at column 8"),
        ("name.eq x", 'expected an argument delimiter, found " " at column 8'),
        ("name.", 'expected a matcher after "name." at column 6'),
    ],
)
def test_bad_arguments(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        parse_filter(text, CARGO)


def test_the_documented_error_format() -> None:
    with pytest.raises(FilterError) as info:
        parse_filter("p.eq(baz", CARGO)
    assert str(info.value) == 'invalid filter "p.eq(baz": unterminated argument at column 5'
    assert info.value.pattern == "p.eq(baz"
    assert info.value.position == 4
    assert isinstance(info.value, UsageError)


def test_invalid_regex_is_a_parse_error_at_the_argument() -> None:
    with pytest.raises(FilterError) as info:
        parse_filter("name.matches(*)", CARGO)
    assert "invalid regex: nothing to repeat at column 14" in str(info.value)
    with pytest.raises(FilterError, match="invalid regex"):
        parse_filter("n.m/[a-/", CARGO)


def test_invalid_glob_is_a_parse_error_at_the_argument() -> None:
    with pytest.raises(FilterError) as info:
        parse_filter("name.globs([ab)", CARGO)
    assert "invalid glob:" in str(info.value)
    assert str(info.value).endswith("at column 12")


# -- other errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty pattern at column 1"),
        ("   ", "empty pattern at column 4"),
        ("all &", "expected a selector at column 6"),
        ("all ||| none", 'expected a selector, found "|" at column 7'),
        ("(all", 'unclosed "(" at column 1'),
        ("(all none)", 'expected ")", found "n" at column 6'),
        ("all)", 'unexpected ")" at column 4'),
        ("all none", 'unexpected "n" at column 5'),
        ("not", 'expected a selector after "not" at column 4'),
        ("!", "expected a selector at column 2"),
        ("all(x)", 'unexpected "(" at column 4'),
        ("all ()", 'unexpected "(" at column 5'),
        ("1", 'expected a selector, found "1" at column 1'),
    ],
)
def test_syntax_errors_name_a_column(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text, CARGO)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_multi_line_patterns_report_line_and_column_on_one_line() -> None:
    with pytest.raises(FilterError) as info:
        parse_filter("package.eq(a) ||\n  name.eq(b", CARGO)
    assert str(info.value) == (
        'invalid filter "package.eq(a) ||\\n  name.eq(b": '
        "unterminated argument at line 2, column 10"
    )


def test_multi_line_patterns_parse() -> None:
    assert tree("package.equals(a)\n&& name.equals(b)\n") == And(
        eq("package", "a"), eq("name", "b")
    )


def test_origin_is_prefixed() -> None:
    with pytest.raises(FilterError, match=r"^cargo-maelstrom.toml:3: invalid filter"):
        parse_filter("nope", CARGO, origin="cargo-maelstrom.toml:3")


# -- compile_filter --------------------------------------------------------------------------------


def test_compile_is_any_include_minus_any_exclude() -> None:
    f = compile_filter(["p.eq(a)", "p.eq(b)"], ["n.eq(x)", "n.eq(y)"], CARGO)
    assert f.expr == Diff(
        Or(eq("package", "a"), eq("package", "b")), Or(eq("name", "x"), eq("name", "y"))
    )
    assert str(f) == (
        "(package.equals(a) || package.equals(b)) - (name.equals(x) || name.equals(y))"
    )

    def case(package: str, name: str) -> CaseInfo:
        return CaseInfo(package=package, name=name, artifact_name=package, artifact_kind="library")

    assert f.matches(case("a", "z"))
    assert f.matches(case("b", "z"))
    assert not f.matches(case("c", "z"))
    assert not f.matches(case("a", "x"))
    assert not f.matches(case("b", "y"))


def test_compile_defaults_to_all_and_no_excludes() -> None:
    assert compile_filter([], [], CARGO).expr == ALL
    assert compile_filter(["none"], [], CARGO).expr == NONE
    assert compile_filter([], ["none"], CARGO).expr == Diff(ALL, NONE)


def test_compile_names_the_option_in_errors() -> None:
    with pytest.raises(FilterError, match=r'^--exclude: invalid filter "n\.eq\(": '):
        compile_filter(["all"], ["n.eq("], CARGO)
    with pytest.raises(FilterError, match=r"^--include: "):
        compile_filter(["bogus"], [], CARGO)


# -- evaluation ----------------------------------------------------------------------------------


def lib_case(**fields: str) -> CaseInfo:
    base = {"package": "foo", "artifact_name": "foo_bin", "artifact_kind": "library"}
    base.update(fields)
    return CaseInfo(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("name.equals(bar)", "bar", True),
        ("name.equals(bar)", "barx", False),
        ("name.contains(ar)", "bar", True),
        ("name.contains(x)", "bar", False),
        ("name.starts_with(ba)", "bar", True),
        ("name.starts_with(ar)", "bar", False),
        ("name.ends_with(ar)", "bar", True),
        ("name.ends_with(ba)", "bar", False),
        ("name.matches(^[a-z]*$)", "bazbar", True),
        ("name.matches(^[a-z]*$)", "baz-bar", False),
        ("name.matches(z-b)", "baz-bar", True),  # an unanchored search
        ("name.globs(baz*)", "bazbar", True),
        ("name.globs(baz*)", "binbaz", False),
        ("name.globs(ba?)", "bar", True),
        ("name.globs(a)", "bar", False),  # a whole-string match
        ("name.globs(tests/*)", "tests/a/b", True),  # globset's `*` crosses `/` by default
        ("name.globs({foo,ba[rz]})", "baz", True),
    ],
)
def test_matchers(text: str, value: str, expected: bool) -> None:
    assert parse_filter(text, CARGO).evaluate(lib_case(name=value)) is expected


@pytest.mark.parametrize("kind", ["library", "binary", "test", "benchmark", "example"])
def test_cargo_kind_selectors(kind: str) -> None:
    case = lib_case(artifact_kind=kind, name="t")
    for selector in ["library", "binary", "test", "benchmark", "example"]:
        assert parse_filter(selector, CARGO).evaluate(case) is (selector == kind)
    for selector in ["binary", "test", "benchmark", "example"]:
        # A target selector with a matcher also tests the kind.
        f = parse_filter(f"{selector}.equals(foo_bin)", CARGO)
        assert f.evaluate(case) is (selector == kind)


def test_cargo_package_and_name() -> None:
    case = lib_case(name="foo_test")
    assert parse_filter("p.eq(foo) & n.eq(foo_test)", CARGO).evaluate(case) is True
    assert parse_filter("p.eq(foo) - n.eq(foo_test)", CARGO).evaluate(case) is False
    assert parse_filter("p.eq(bar) || !n.eq(foo_test)", CARGO).evaluate(case) is False
    assert parse_filter("(p.eq(foo) || p.eq(bar)) && n.eq(foo_test)", CARGO).evaluate(case)


def test_go_selectors() -> None:
    case = CaseInfo(
        package="example.com/mod/kv",
        package_path="kv",
        package_name="kv",
        name="TestPut",
    )
    assert parse_filter("p.eq(example.com/mod/kv) & n.c(Put)", GO).evaluate(case) is True
    assert parse_filter("package_path.eq(kv)", GO).evaluate(case) is True
    assert parse_filter("package_name.eq(kvstore)", GO).evaluate(case) is False
    root = CaseInfo(package="example.com/mod", package_path="", package_name="mod", name="TestX")
    assert parse_filter("package_p.eq()", GO).evaluate(root) is True


def test_pytest_selectors() -> None:
    case = CaseInfo(
        package="default",
        name="test_x[1]",
        node_id="tests/test_a.py::test_x[1]",
        file="tests/test_a.py",
        markers=frozenset({"slow", "net"}),
    )
    assert parse_filter("markers.contains(slow)", PYTEST).evaluate(case) is True
    # Set membership, not a substring test.
    assert parse_filter("markers.contains(slo)", PYTEST).evaluate(case) is False
    assert parse_filter("f.globs(tests/*.py) & no.ends_with([1])", PYTEST).evaluate(case)
    assert parse_filter("p.eq(default) - na.starts_with(test_y)", PYTEST).evaluate(case)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(package.equals(foo) || package.equals(bar)) && name.equals(foo_test)", None),
        ("package.equals(foo) && name.equals(foo_test)", None),
        ("name.equals(foo_test) && name.equals(bar_test)", None),
        ("package.equals(foo) && !name.equals(bar_test)", None),
        ("name.equals(foo_test) && package.equals(bar)", False),
        ("package.equals(bar) && name.equals(foo_test)", False),
        ("name.equals(foo_test) || name.equals(bar_test)", None),
        ("package.equals(bar) || !name.equals(foo_test)", None),
        ("name.equals(foo_test) || package.equals(foo)", True),
        ("package.equals(foo) || name.equals(bar_test)", True),
        ("package.equals(foo) - name.equals(bar_test)", None),
        ("package.equals(bar) - name.equals(bar_test)", False),
        ("all - name.equals(x)", None),
        ("none - name.equals(x)", False),
        ("library", True),
        ("binary.eq(foo_bin)", False),
    ],
)
def test_unknown_case_name_is_three_valued(text: str, expected: bool | None) -> None:
    package_level = CaseInfo(package="foo", artifact_name="foo_bin", artifact_kind="library")
    f = parse_filter(text, CARGO)
    assert f.evaluate(package_level) is expected
    assert f.matches(package_level) is (expected is not False)


def test_unknown_artifact_is_unknown_for_kind_selectors() -> None:
    package_only = CaseInfo(package="foo")
    for text in ["library", "binary", "test", "binary.eq(x)", "example.c(x)"]:
        assert parse_filter(text, CARGO).evaluate(package_only) is None
    assert parse_filter("all", CARGO).evaluate(package_only) is True
    assert parse_filter("!test", CARGO).evaluate(package_only) is None
    assert parse_filter("p.eq(foo)", CARGO).evaluate(package_only) is True
    assert parse_filter("p.eq(bar) & library", CARGO).evaluate(package_only) is False
    assert parse_filter("markers.c(x)", PYTEST).evaluate(CaseInfo(package="default")) is None


def test_select_keeps_matches_and_unknowns() -> None:
    f = parse_filter("name.starts_with(a)", CARGO)
    a, b, unknown = lib_case(name="a1"), lib_case(name="b1"), lib_case()
    assert f.select([a, b, unknown]) == [a, unknown]


# -- dialects ------------------------------------------------------------------------------------


def test_dialect_registry() -> None:
    assert DIALECTS == {"cargo": CARGO, "go": GO, "pytest": PYTEST}


def test_a_new_front_end_can_define_its_own_dialect() -> None:
    dialect = Dialect("mine", (SelectorDef("file", 2, "file"), SelectorDef("name", 1, "name")))
    f = parse_filter("fi.ends_with(.js) & !n.c(slow)", dialect)
    assert f.matches(CaseInfo(file="a/b.js", name="fast"))
    assert not f.matches(CaseInfo(file="a/b.js", name="slow_one"))
    with pytest.raises(FilterError, match='selector "f" is too short'):
        parse_filter("f.eq(x)", dialect)


def test_broken_dialects_are_rejected() -> None:
    with pytest.raises(InternalError):
        Dialect("x", (SelectorDef("all", 1, "name"),))
    with pytest.raises(InternalError):
        SelectorDef("kindless", 1, None, simple=True)
    with pytest.raises(InternalError):
        SelectorDef("name", 0, "name")


def test_public_surface() -> None:
    assert {name for name in dir(testrunner) if not name.startswith("_")} >= {
        "ARTIFACT_KINDS", "CARGO", "DIALECTS", "GO", "PYTEST", "And", "ArtifactKind",
        "CaseInfo", "CompoundSelector", "Dialect", "Diff", "Expr", "Filter", "Not", "Or",
        "SelectorDef", "SimpleSelector", "compile_filter", "format_expr", "parse_filter",
        "CaseRecord", "TestDb", "TestDbStore", "DB_FILE_NAME", "DB_VERSION", "MAX_TIMINGS",
        "PRIORITY_KNOWN_GOOD", "PRIORITY_NEW_OR_FAILED", "Outcome", "TomlValue",
    }  # fmt: skip


# -- printing and the round trip -----------------------------------------------------------------


def test_format_uses_full_names_and_minimal_parentheses() -> None:
    assert format_expr(tree("p.eq(a) & (n.c[b] | !te) - ~(l + e)")) == (
        "package.equals(a) && (name.contains(b) || !test) - !(library && example)"
    )
    assert format_expr(tree("(all & any) & none")) == "(all && any) && none"
    assert format_expr(tree("(all | any) | none")) == "(all || any) || none"


def test_format_picks_a_delimiter_that_holds_the_argument() -> None:
    assert format_expr(eq("name", "a)b")) == "name.equals[a)b]"
    assert format_expr(eq("name", ")]}>")) == "name.equals/)]}>/"
    with pytest.raises(InternalError):
        format_expr(eq("name", ")]}>/"))


ARGUMENT_ALPHABET = "ab_:.- ()[]{}<>/"
SAFE_REGEXES = ["^a", "b$", "a|b", "[a-z]+::", "x.*y", "", "\\d"]
SAFE_GLOBS = ["*", "a*", "**/b", "{a,b}", "[ab]?", "a/**", ""]


def _printable(argument: str) -> bool:
    try:
        format_expr(eq("name", argument))
    except InternalError:
        return False
    return True


@st.composite
def leaves(draw: st.DrawFn, dialect: Dialect) -> Expr:
    simple = ["all", "any", "true", "none", "false"] + [
        s.name for s in dialect.selectors if s.simple
    ]
    compound = [s for s in dialect.selectors if s.field is not None]
    if draw(st.booleans()):
        return SimpleSelector(draw(st.sampled_from(simple)))
    sel = draw(st.sampled_from(compound))
    matchers = ["contains"] if sel.membership else [m for m, _ in MATCHERS]
    matcher = draw(st.sampled_from(matchers))
    if matcher == "matches":
        argument = draw(st.sampled_from(SAFE_REGEXES))
    elif matcher == "globs":
        argument = draw(st.sampled_from(SAFE_GLOBS))
    else:
        argument = draw(st.text(ARGUMENT_ALPHABET, max_size=8).filter(_printable))
    return CompoundSelector(sel.name, matcher, argument)  # type: ignore[arg-type]


def trees(dialect: Dialect) -> st.SearchStrategy[Expr]:
    return st.recursive(
        leaves(dialect),
        lambda inner: st.one_of(
            st.builds(Not, inner),
            st.builds(And, inner, inner),
            st.builds(Diff, inner, inner),
            st.builds(Or, inner, inner),
        ),
        max_leaves=12,
    )


class _Spelling:
    """Prints a tree the way a user might: any operator spelling, abbreviation, delimiter."""

    def __init__(self, draw: st.DrawFn, dialect: Dialect) -> None:
        self.draw = draw
        self.dialect = dialect

    def space(self, at_least: int = 0) -> str:
        count = self.draw(st.integers(at_least, at_least + 1))
        return "".join(self.draw(st.sampled_from([" ", "\t", "\n"])) for _ in range(count))

    def op(self, symbols: list[str], word: str) -> str:
        choice = self.draw(st.sampled_from([*symbols, word]))
        if choice == word:
            return self.space(1) + word + self.space(1)
        return self.space() + choice + self.space()

    def abbreviate(self, full: str, table: list[tuple[str, int]]) -> str:
        minimum = dict(table)[full]
        return full[: self.draw(st.integers(minimum, len(full)))]

    def maybe_parens(self, text: str) -> str:
        if self.draw(st.integers(0, 5)) == 0:
            return "(" + self.space() + text + self.space() + ")"
        return text

    def or_(self, e: Expr) -> str:
        if isinstance(e, Or):
            return self.maybe_parens(
                self.and_(e.left) + self.op(["|", "||"], "or") + self.or_(e.right)
            )
        return self.and_(e)

    def and_(self, e: Expr) -> str:
        if isinstance(e, And):
            text = self.not_(e.left) + self.op(["&", "&&", "+"], "and") + self.and_(e.right)
            return self.maybe_parens(text)
        if isinstance(e, Diff):
            text = self.not_(e.left) + self.op(["-", "\\"], "minus") + self.and_(e.right)
            return self.maybe_parens(text)
        return self.not_(e)

    def not_(self, e: Expr) -> str:
        if isinstance(e, Not):
            prefix = self.draw(st.sampled_from(["!", "~", "not "]))
            return self.maybe_parens(prefix + self.not_(e.operand))
        if isinstance(e, SimpleSelector):
            table = self.dialect._simple_table()
            suffix = self.draw(st.sampled_from(["", "()"]))
            return self.maybe_parens(self.abbreviate(e.name, table) + suffix)
        if isinstance(e, CompoundSelector):
            name = self.abbreviate(e.selector, self.dialect._compound_table())
            matcher = self.abbreviate(e.matcher, list(MATCHERS))
            pairs = [p for p in ["()", "[]", "{}", "<>", "//"] if _fits(e.argument, p)]
            opener, closer = tuple(self.draw(st.sampled_from(pairs)))
            return self.maybe_parens(f"{name}.{matcher}{opener}{e.argument}{closer}")
        return "(" + self.space() + self.or_(e) + self.space() + ")"


def _fits(argument: str, pair: str) -> bool:
    opener, closer = pair[0], pair[1]
    if opener == closer:
        return opener not in argument
    depth = 0
    for char in argument:
        depth += (char == opener) - (char == closer)
        if depth < 0:
            return False
    return depth == 0


@st.composite
def spelled(draw: st.DrawFn) -> tuple[Dialect, Expr, str]:
    dialect = draw(st.sampled_from([CARGO, GO, PYTEST]))
    expr = draw(trees(dialect))
    return dialect, expr, _Spelling(draw, dialect).or_(expr)


@settings(max_examples=300, deadline=None)
@given(spelled())
def test_any_spelling_parses_to_its_tree_and_prints_back(case: tuple[Dialect, Expr, str]) -> None:
    dialect, expr, text = case
    parsed = parse_filter(text, dialect).expr
    assert parsed == expr
    assert parse_filter(format_expr(parsed), dialect).expr == parsed


_FIELDS = ["package", "name", "artifact_name", "package_path", "package_name", "node_id", "file"]


@st.composite
def full_cases(draw: st.DrawFn) -> CaseInfo:
    values = {f: draw(st.text("ab_:.-/", max_size=4)) for f in _FIELDS}
    kind = draw(st.sampled_from(["library", "binary", "test", "benchmark", "example"]))
    markers = frozenset(draw(st.lists(st.text("ab", max_size=2), max_size=3)))
    return CaseInfo(artifact_kind=kind, markers=markers, **values)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_known_answer_never_changes_when_more_is_known(data: st.DataObject) -> None:
    dialect = data.draw(st.sampled_from([CARGO, GO, PYTEST]))
    expr = data.draw(trees(dialect))
    full = data.draw(full_cases())
    hidden = data.draw(st.sets(st.sampled_from([*_FIELDS, "artifact_kind", "markers"])))
    partial = CaseInfo(
        **{
            f: (None if f in hidden else getattr(full, f))
            for f in [*_FIELDS, "artifact_kind", "markers"]
        }
    )
    f = testrunner.Filter(expr, dialect)
    answer = f.evaluate(partial)
    assert f.evaluate(full) is not None
    if answer is not None:
        assert f.evaluate(full) is answer
