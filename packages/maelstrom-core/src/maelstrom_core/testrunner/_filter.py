"""The test filter pattern language of ``--include``/``--exclude`` and directives (§4.4).

One parser serves every runner; a :class:`Dialect` supplies the runner's selector vocabulary
(cargo, go, pytest, or a new front end's own). The grammar is the original's, quirks included:

* operators ``| || or``, ``& && and +``, ``\\ - minus``, ``! ~ not``; word operators need
  whitespace around them, symbols do not;
* ``and``/``minus`` chains associate to the *right*, so ``a - b & c`` is ``a & !(b & c)``;
* selector and matcher names may be abbreviated to any prefix at least as long as the
  original's minimum (``p.eq(x)`` is ``package.equals(x)``);
* a matcher argument sits between ``()``, ``[]``, ``{}``, ``<>`` or ``//``; the same pair nests,
  nothing else is special (no escapes).

Where the original is stricter only about whitespace (it rejects ``! a``, ``( a )`` is fine,
and a pattern with leading or trailing blanks), we accept the blanks: every pattern the
original accepts parses to the same tree here.

Evaluation is three-valued: a selector whose data is not known yet (package-level filtering,
before the cases are listed) yields ``None``, and ``None`` counts as a match.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, TypeVar

from .._glob import Glob
from ..errors import FilterError, InternalError, SpecError

__all__ = [
    "ARTIFACT_KINDS",
    "CARGO",
    "DIALECTS",
    "GO",
    "MATCHERS",
    "PYTEST",
    "And",
    "ArtifactKind",
    "CaseInfo",
    "CompoundSelector",
    "Dialect",
    "Diff",
    "Expr",
    "Filter",
    "Not",
    "Or",
    "SelectorDef",
    "SimpleSelector",
    "compile_filter",
    "evaluate",
    "format_expr",
    "parse_filter",
]

ArtifactKind: TypeAlias = Literal["library", "binary", "test", "benchmark", "example"]
ARTIFACT_KINDS: Final[tuple[ArtifactKind, ...]] = (
    "library",
    "binary",
    "test",
    "benchmark",
    "example",
)

Matcher: TypeAlias = Literal["equals", "contains", "starts_with", "ends_with", "matches", "globs"]
#: Matcher names with the shortest prefix the original accepts for each.
MATCHERS: Final[tuple[tuple[Matcher, int], ...]] = (
    ("equals", 2),
    ("contains", 1),
    ("starts_with", 1),
    ("ends_with", 2),
    ("matches", 1),
    ("globs", 1),
)

# The selectors every runner has: name, shortest prefix, value.
_UNIVERSAL: Final[tuple[tuple[str, int, bool], ...]] = (
    ("all", 2, True),
    ("any", 2, True),
    ("true", 2, True),
    ("none", 1, False),
    ("false", 1, False),
)
_UNIVERSAL_VALUE: Final[Mapping[str, bool]] = {name: value for name, _, value in _UNIVERSAL}

_DELIMITERS: Final[Mapping[str, str]] = {"(": ")", "[": "]", "{": "}", "<": ">", "/": "/"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------------------------
# What a filter is evaluated against, and the per-runner vocabularies.


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseInfo:
    """What is known about a test case (or, with ``None`` parts, a package or an artifact).

    Each runner fills the fields its dialect reads; ``None`` means "not known yet".
    """

    package: str | None = None  # cargo package, go import path, pytest "default"
    name: str | None = None  # the case name as the test framework lists it
    artifact_name: str | None = None  # cargo target name
    artifact_kind: str | None = None  # cargo target kind, one of ARTIFACT_KINDS
    package_path: str | None = None  # go: module-relative directory ("" at the root)
    package_name: str | None = None  # go: the package clause
    node_id: str | None = None  # pytest
    file: str | None = None  # pytest: path relative to the project
    markers: frozenset[str] | None = None  # pytest: the item's own markers


@dataclass(frozen=True, slots=True)
class SelectorDef:
    """One selector of a dialect.

    Attributes:
        name: the full spelling.
        min_prefix: the shortest abbreviation accepted.
        field: the :class:`CaseInfo` attribute a matcher reads, or ``None`` if the selector
            takes no matcher.
        kind: for cargo's target selectors, the artifact kind the selector also requires.
        simple: usable on its own, without a matcher (then it tests ``kind``).
        membership: the matcher tests set membership (pytest ``markers.contains``), and
            ``contains`` is the only matcher allowed.
    """

    name: str
    min_prefix: int
    field: str | None
    kind: str | None = None
    simple: bool = False
    membership: bool = False

    def __post_init__(self) -> None:
        if self.field is None and not self.simple:
            raise InternalError(f"selector {self.name!r} has neither a field nor a simple form")
        if self.simple and self.kind is None:
            raise InternalError(f"simple selector {self.name!r} needs the kind it tests")
        if not 1 <= self.min_prefix <= len(self.name):
            raise InternalError(f"selector {self.name!r} has a bad minimum prefix")


@dataclass(frozen=True, slots=True)
class Dialect:
    """A runner's selector vocabulary. ``all any true none false`` are always present."""

    name: str
    selectors: tuple[SelectorDef, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.selectors]
        clash = {n for n, _, _ in _UNIVERSAL} & set(names)
        if clash or len(set(names)) != len(names):
            raise InternalError(f"dialect {self.name!r} repeats a selector name")

    def selector(self, name: str) -> SelectorDef:
        for sel in self.selectors:
            if sel.name == name:
                return sel
        raise InternalError(f"dialect {self.name!r} has no selector {name!r}")

    def _simple_table(self) -> list[tuple[str, int]]:
        table = [(name, min_len) for name, min_len, _ in _UNIVERSAL]
        table += [(s.name, s.min_prefix) for s in self.selectors if s.simple]
        return table

    def _compound_table(self) -> list[tuple[str, int]]:
        return [(s.name, s.min_prefix) for s in self.selectors if s.field is not None]

    def _all_names(self) -> list[str]:
        return [name for name, _, _ in _UNIVERSAL] + [s.name for s in self.selectors]


CARGO: Final = Dialect(
    "cargo",
    (
        SelectorDef("name", 1, "name"),
        SelectorDef("package", 1, "package"),
        SelectorDef("binary", 2, "artifact_name", kind="binary", simple=True),
        SelectorDef("benchmark", 2, "artifact_name", kind="benchmark", simple=True),
        SelectorDef("example", 1, "artifact_name", kind="example", simple=True),
        SelectorDef("test", 2, "artifact_name", kind="test", simple=True),
        SelectorDef("library", 1, None, kind="library", simple=True),
    ),
)

GO: Final = Dialect(
    "go",
    (
        SelectorDef("name", 1, "name"),
        # Every prefix of "package" means the import path; the other two need "package_p"/"_n".
        SelectorDef("package_import_path", 1, "package"),
        SelectorDef("package_path", 9, "package_path"),
        SelectorDef("package_name", 9, "package_name"),
    ),
)

PYTEST: Final = Dialect(
    "pytest",
    (
        SelectorDef("name", 2, "name"),
        SelectorDef("node_id", 2, "node_id"),
        SelectorDef("file", 1, "file"),
        SelectorDef("package", 1, "package"),
        SelectorDef("markers", len("markers"), "markers", membership=True),
    ),
)

DIALECTS: Final[Mapping[str, Dialect]] = {d.name: d for d in (CARGO, GO, PYTEST)}


# --------------------------------------------------------------------------------------------
# The tree. Parentheses leave no node; the printer puts back the ones the shape needs.


@dataclass(frozen=True, slots=True)
class SimpleSelector:
    name: str  # full spelling: a universal selector or a dialect's simple selector


@dataclass(frozen=True, slots=True)
class CompoundSelector:
    selector: str  # full spelling of the selector
    matcher: Matcher
    argument: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Diff:
    """``left`` and not ``right``."""

    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr


Expr: TypeAlias = SimpleSelector | CompoundSelector | Not | And | Diff | Or


# --------------------------------------------------------------------------------------------
# Parsing.


def parse_filter(text: str, dialect: Dialect, *, origin: str | None = None) -> Filter:
    """Parse one pattern.

    Args:
        text: the pattern.
        dialect: the runner's vocabulary.
        origin: where the pattern came from (``"--include"``, ``"cargo-maelstrom.toml:12"``),
            prefixed to error messages.

    Raises:
        FilterError: one line quoting the pattern, naming the problem and its column.
    """
    return Filter(_Parser(text, dialect, origin).parse(), dialect)


def compile_filter(includes: Sequence[str], excludes: Sequence[str], dialect: Dialect) -> Filter:
    """The run's filter: any include pattern, minus any exclude pattern.

    An empty include list means ``all``, the runner's default for ``--include``.
    """
    include = _any_of([parse_filter(p, dialect, origin="--include").expr for p in includes])
    if include is None:
        include = SimpleSelector("all")
    exclude = _any_of([parse_filter(p, dialect, origin="--exclude").expr for p in excludes])
    return Filter(include if exclude is None else Diff(include, exclude), dialect)


def _any_of(exprs: Sequence[Expr]) -> Expr | None:
    if not exprs:
        return None
    result = exprs[-1]
    for expr in reversed(exprs[:-1]):
        result = Or(expr, result)
    return result


def _quote_for_message(text: str) -> str:
    # Keep the message on one line even for multi-line TOML filters.
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


@functools.lru_cache(maxsize=1024)
def _predicate(matcher: Matcher, argument: str) -> Callable[[str], bool]:
    """The test a matcher applies to a value; ValueError if the argument does not compile."""
    if matcher == "equals":
        return argument.__eq__
    if matcher == "contains":
        return lambda value: argument in value
    if matcher == "starts_with":
        return lambda value: value.startswith(argument)
    if matcher == "ends_with":
        return lambda value: value.endswith(argument)
    if matcher == "matches":
        # The original compiles with Rust's regex crate. Python's re agrees on the everyday
        # syntax (classes, anchors, repetition, alternation, groups); Rust-only forms such as
        # \p{L} are reported as invalid rather than translated.
        try:
            regex = re.compile(argument)
        except re.error as err:
            raise ValueError(f"invalid regex: {err.msg}") from None
        return lambda value: regex.search(value) is not None
    try:
        glob = Glob(argument, where="globs")
    except SpecError as err:
        # Glob names the pattern itself; the filter message already quotes it.
        reason = str(err).removeprefix(f"globs: invalid glob {argument!r}: ")
        raise ValueError(f"invalid glob: {reason}") from None
    return glob.matches


class _Parser:
    def __init__(self, text: str, dialect: Dialect, origin: str | None) -> None:
        self.text = text
        self.dialect = dialect
        self.origin = origin
        self.pos = 0

    # -- errors --------------------------------------------------------------------------

    def error(self, reason: str, pos: int | None = None, hint: str | None = None) -> FilterError:
        at = self.pos if pos is None else pos
        before = self.text[:at]
        if "\n" in self.text:
            line = before.count("\n") + 1
            column = at - (before.rfind("\n") + 1) + 1
            where = f"line {line}, column {column}"
        else:
            where = f"column {at + 1}"
        message = f'invalid filter "{_quote_for_message(self.text)}": {reason} at {where}'
        if hint:
            message += f" ({hint})"
        if self.origin:
            message = f"{self.origin}: {message}"
        return FilterError(message, pattern=self.text, position=at)

    # -- lexing helpers --------------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_space(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos > start

    def peek_word(self) -> tuple[str, int]:
        m = _WORD.match(self.text, self.pos)
        return (m.group(), m.end()) if m else ("", self.pos)

    def space_at(self, index: int) -> bool:
        return index < len(self.text) and self.text[index].isspace()

    def operator(self, symbols: Sequence[str], words: Sequence[str]) -> bool:
        """Consume one of the operators (and the blanks around it) if it comes next."""
        start = self.pos
        spaced = self.skip_space()
        for symbol in symbols:
            if self.text.startswith(symbol, self.pos):
                self.pos += len(symbol)
                return True
        word, end = self.peek_word()
        if word in words:
            if not spaced:
                raise self.error(f'operator "{word}" needs whitespace before it')
            if not self.space_at(end):
                raise self.error(f'operator "{word}" needs whitespace after it')
            self.pos = end
            return True
        self.pos = start
        return False

    # -- grammar ---------------------------------------------------------------------------

    def parse(self) -> Expr:
        self.skip_space()
        if self.at_end():
            raise self.error("empty pattern")
        expr = self.parse_or()
        self.skip_space()
        if not self.at_end():
            raise self.error(f'unexpected "{self.text[self.pos]}"', hint="expected an operator")
        return expr

    def parse_or(self) -> Expr:
        left = self.parse_and()
        if self.operator(("||", "|"), ("or",)):
            return Or(left, self.parse_or())
        return left

    def parse_and(self) -> Expr:
        # Right recursion on purpose: the original groups `a - b & c` as `a - (b & c)`.
        left = self.parse_not()
        if self.operator(("&&", "&", "+"), ("and",)):
            return And(left, self.parse_and())
        if self.operator(("\\", "-"), ("minus",)):
            return Diff(left, self.parse_and())
        return left

    def parse_not(self) -> Expr:
        self.skip_space()
        if not self.at_end() and self.text[self.pos] in "!~":
            self.pos += 1
            return Not(self.parse_not())
        word, end = self.peek_word()
        if word == "not":
            if end >= len(self.text):
                raise self.error('expected a selector after "not"', end)
            if not self.space_at(end):
                raise self.error('operator "not" needs whitespace after it')
            self.pos = end
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Expr:
        if self.at_end():
            raise self.error("expected a selector")
        char = self.text[self.pos]
        if char == "(":
            opened = self.pos
            self.pos += 1
            inner = self.parse_or()
            self.skip_space()
            if self.at_end():
                raise self.error('unclosed "("', opened)
            if self.text[self.pos] != ")":
                raise self.error(f'expected ")", found "{self.text[self.pos]}"')
            self.pos += 1
            return inner
        word, end = self.peek_word()
        if not word:
            raise self.error(f'expected a selector, found "{char}"')
        start = self.pos
        self.pos = end
        if self.text.startswith(".", end):
            return self.parse_compound(word, start)
        return self.parse_simple(word, start)

    def parse_simple(self, word: str, start: int) -> Expr:
        name = _lookup(word, self.dialect._simple_table())
        if name is None:
            full = _lookup(word, self.dialect._compound_table())
            if full is not None and not _candidates(word, self.dialect._simple_table()):
                raise self.error(
                    f'selector "{full}" needs a matcher', start, hint=f"e.g. {full}.equals(...)"
                )
            raise self.lookup_error(word, self.dialect._simple_table(), "selector", start)
        if self.text.startswith("()", self.pos):
            self.pos += 2
        return SimpleSelector(name)

    def parse_compound(self, word: str, start: int) -> Expr:
        name = _lookup(word, self.dialect._compound_table())
        if name is None:
            full = _lookup(word, self.dialect._simple_table())
            if full is not None and not _candidates(word, self.dialect._compound_table()):
                raise self.error(f'selector "{full}" takes no matcher', start)
            raise self.lookup_error(word, self.dialect._compound_table(), "selector", start)
        selector = self.dialect.selector(name)
        self.pos += 1  # the "."
        matcher_start = self.pos
        matcher_word, end = self.peek_word()
        if not matcher_word:
            raise self.error(
                f'expected a matcher after "{name}."',
                hint="equals, contains, starts_with, ends_with, matches or globs",
            )
        self.pos = end
        matcher = _lookup(matcher_word, MATCHERS)
        if matcher is None:
            raise self.lookup_error(matcher_word, MATCHERS, "matcher", matcher_start)
        if selector.membership and matcher != "contains":
            raise self.error(f'selector "{name}" only takes the "contains" matcher', matcher_start)
        arg_start = self.pos
        argument = self.parse_argument()
        try:
            _predicate(matcher, argument)
        except ValueError as err:
            raise self.error(str(err), arg_start + 1) from None
        return CompoundSelector(name, matcher, argument)

    def parse_argument(self) -> str:
        if self.at_end():
            raise self.error(
                "expected a matcher argument", hint="delimit it with (), [], {}, <> or //"
            )
        opener = self.text[self.pos]
        closer = _DELIMITERS.get(opener)
        if closer is None:
            raise self.error(
                f'expected an argument delimiter, found "{opener}"',
                hint="delimit it with (), [], {}, <> or //",
            )
        start = self.pos
        self.pos += 1
        depth = 1
        chars: list[str] = []
        while True:
            if self.at_end():
                raise self.error("unterminated argument", start)
            char = self.text[self.pos]
            self.pos += 1
            # The closer is tested first so that "/" never nests.
            if char == closer:
                depth -= 1
                if depth == 0:
                    return "".join(chars)
            elif char == opener:
                depth += 1
            chars.append(char)

    def lookup_error(
        self, word: str, table: Sequence[tuple[str, int]], what: str, start: int
    ) -> FilterError:
        """Why ``word`` abbreviates nothing in ``table``."""
        candidates = _candidates(word, table)
        if len(candidates) > 1:
            names = ", ".join(full for full, _ in candidates)
            return self.error(f'ambiguous {what} "{word}"', start, hint=f"could be {names}")
        if candidates:
            full, min_len = candidates[0]
            return self.error(
                f'{what} "{word}" is too short', start, hint=f'write at least "{full[:min_len]}"'
            )
        # A matcher table is complete; a selector table is only the simple or compound half.
        expected = [full for full, _ in table] if what == "matcher" else self.dialect._all_names()
        return self.error(
            f'unknown {what} "{word}"', start, hint=f"expected one of {', '.join(expected)}"
        )


_NameT = TypeVar("_NameT", bound=str)


def _candidates(word: str, table: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(full, min_len) for full, min_len in table if full.startswith(word)]


def _lookup(word: str, table: Sequence[tuple[_NameT, int]]) -> _NameT | None:
    """The full name ``word`` abbreviates in ``table``, first match winning as in the original."""
    for full, min_len in table:
        if full.startswith(word) and len(word) >= min_len:
            return full
    return None


# --------------------------------------------------------------------------------------------
# Printing.


def format_expr(expr: Expr) -> str:
    """The canonical spelling: full names, ``|| && - !``, minimal parentheses.

    ``parse_filter(format_expr(e), d).expr == e`` for every tree the parser can produce.
    """
    return _format_or(expr)


def _format_or(expr: Expr) -> str:
    if isinstance(expr, Or):
        return f"{_format_and(expr.left)} || {_format_or(expr.right)}"
    return _format_and(expr)


def _format_and(expr: Expr) -> str:
    if isinstance(expr, And):
        return f"{_format_not(expr.left)} && {_format_and(expr.right)}"
    if isinstance(expr, Diff):
        return f"{_format_not(expr.left)} - {_format_and(expr.right)}"
    return _format_not(expr)


def _format_not(expr: Expr) -> str:
    if isinstance(expr, Not):
        return "!" + _format_not(expr.operand)
    if isinstance(expr, SimpleSelector):
        return expr.name
    if isinstance(expr, CompoundSelector):
        return f"{expr.selector}.{expr.matcher}{_delimit(expr.argument)}"
    return f"({_format_or(expr)})"


def _delimit(argument: str) -> str:
    for opener, closer in _DELIMITERS.items():
        if opener == closer:
            if opener not in argument:
                return f"{opener}{argument}{closer}"
            continue
        depth = 0
        for char in argument:
            depth += (char == opener) - (char == closer)
            if depth < 0:
                break
        if depth == 0:
            return f"{opener}{argument}{closer}"
    raise InternalError(f"no delimiter pair can hold the argument {argument!r}")


# --------------------------------------------------------------------------------------------
# Evaluation.


def evaluate(expr: Expr, case: CaseInfo, dialect: Dialect) -> bool | None:
    """Three-valued: ``None`` when the answer depends on data ``case`` does not have yet."""
    if isinstance(expr, Or):
        left = evaluate(expr.left, case, dialect)
        if left is True:
            return True
        right = evaluate(expr.right, case, dialect)
        if right is True:
            return True
        return None if left is None or right is None else False
    if isinstance(expr, And | Diff):
        left = evaluate(expr.left, case, dialect)
        if left is False:
            return False
        right = evaluate(expr.right, case, dialect)
        if isinstance(expr, Diff) and right is not None:
            right = not right
        if right is False:
            return False
        return None if left is None or right is None else True
    if isinstance(expr, Not):
        value = evaluate(expr.operand, case, dialect)
        return None if value is None else not value
    if isinstance(expr, SimpleSelector):
        if expr.name in _UNIVERSAL_VALUE:
            return _UNIVERSAL_VALUE[expr.name]
        kind = case.artifact_kind
        return None if kind is None else kind == dialect.selector(expr.name).kind
    return _evaluate_compound(expr, case, dialect.selector(expr.selector))


def _evaluate_compound(expr: CompoundSelector, case: CaseInfo, sel: SelectorDef) -> bool | None:
    if sel.kind is not None:
        kind = case.artifact_kind
        if kind is None:
            return None
        if kind != sel.kind:
            return False
    assert sel.field is not None  # the parser only builds compounds of selectors with a field
    value = getattr(case, sel.field)
    if value is None:
        return None
    if sel.membership:
        return expr.argument in value
    return _predicate(expr.matcher, expr.argument)(value)


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed pattern bound to its dialect."""

    expr: Expr
    dialect: Dialect

    def evaluate(self, case: CaseInfo) -> bool | None:
        """True, False, or None when ``case`` lacks data the answer depends on."""
        return evaluate(self.expr, case, self.dialect)

    def matches(self, case: CaseInfo) -> bool:
        """Whether ``case`` is selected; an unknown answer counts as selected."""
        return self.evaluate(case) is not False

    def select(self, cases: Iterable[CaseInfo]) -> list[CaseInfo]:
        return [case for case in cases if self.matches(case)]

    def __str__(self) -> str:
        return format_expr(self.expr)
