"""Glob patterns in the syntax of Rust's ``globset`` with its default options, as the original uses.

* ``?`` is any one character and ``*`` any run of characters, ``/`` included (globset's default
  leaves ``literal_separator`` off, so ``*.py`` matches ``pkg/mod.py``).
* ``**`` as a whole component: ``**/x`` matches ``x`` at any depth, ``x/**`` everything below
  ``x`` (not ``x`` itself), ``a/**/b`` zero or more directories between; ``**`` alone matches
  everything. Elsewhere ``**`` is just two ``*``.
* ``{a,b}`` alternatives of sub-patterns (nesting allowed, empty members ignored),
  ``[abc]``, ``[a-z]``, ``[!a-z]`` / ``[^a-z]`` classes (``]`` first is literal), and ``\\``
  escaping any character.

Patterns are matched against project-relative paths such as ``src/lib.rs``.
"""

from __future__ import annotations

import re

from .errors import SpecError

__all__ = ["Glob"]

_META = frozenset("*?[{\\")


class Glob:
    """A compiled glob. ``Glob("src/**/*.rs").matches("src/a/b.rs")`` is True."""

    __slots__ = ("_regex", "matches", "pattern")

    def __init__(self, pattern: str, *, where: str = "glob") -> None:
        self.pattern = pattern
        try:
            source = _Compiler(pattern).compile()
        except _GlobSyntax as err:
            raise SpecError(f"{where}: invalid glob {pattern!r}: {err}") from None
        self._regex = re.compile(source, re.DOTALL)
        # "**" (everything) is the common glob of big layers; skip the regex engine for it.
        self.matches = _match_all if source == ".*" else self._matches

    def _matches(self, path: str) -> bool:
        """Whether the project-relative ``path`` (no leading ``/``) matches."""
        return self._regex.fullmatch(path) is not None

    @property
    def base_dir(self) -> str:
        """The longest literal directory prefix: a walk only needs to start there."""
        cut = len(self.pattern)
        for i, ch in enumerate(self.pattern):
            if ch in _META:
                cut = i
                break
        head = self.pattern[:cut]
        return head[: head.rfind("/")] if "/" in head else ""

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def _match_all(path: str) -> bool:
    return True


class _GlobSyntax(Exception):
    pass


class _Compiler:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def compile(self) -> str:
        out = self._sequence(depth=0)
        if self.i < len(self.p):
            raise _GlobSyntax(f"unopened alternate group: '}}' at {self.i}")
        return out

    def _sequence(self, depth: int) -> str:
        """Compile until the end, or until ``,``/``}`` when inside an alternate group."""
        p = self.p
        out: list[str] = []
        while self.i < len(p):
            ch = p[self.i]
            if depth and ch in ",}":
                return "".join(out)
            if ch == "}":
                return "".join(out)
            if ch == "\\":
                if self.i + 1 >= len(p):
                    raise _GlobSyntax("dangling '\\' at the end")
                out.append(re.escape(p[self.i + 1]))
                self.i += 2
            elif ch == "?":
                out.append(".")
                self.i += 1
            elif ch == "*":
                out.append(self._star(depth))
            elif ch == "[":
                out.append(self._class())
            elif ch == "{":
                out.append(self._alternates(depth))
            else:
                out.append(re.escape(ch))
                self.i += 1
        if depth:
            raise _GlobSyntax("unclosed alternate group: missing '}'")
        return "".join(out)

    def _star(self, depth: int) -> str:
        p, i = self.p, self.i
        if not p.startswith("**", i):
            self.i += 1
            return ".*"
        self.i += 2
        at_start = i == 0 and depth == 0
        after_sep = i > 0 and p[i - 1] == "/" and depth == 0
        at_end = self.i == len(p)
        before_sep = self.i < len(p) and p[self.i] == "/"
        if at_start and at_end:
            return ".*"
        if at_start and before_sep:
            self.i += 1
            return "(?:.*/)?"
        if after_sep and at_end:
            # the "/" before ** was already emitted: "x/**" is "x/" followed by anything non-empty
            return ".+"
        if after_sep and before_sep:
            self.i += 1
            return "(?:.*/)?"
        return ".*"

    def _class(self) -> str:
        p = self.p
        start = self.i
        self.i += 1
        negate = self.i < len(p) and p[self.i] in "!^"
        if negate:
            self.i += 1
        items: list[str] = []
        first = True
        while True:
            if self.i >= len(p):
                raise _GlobSyntax(f"unclosed character class at {start}: missing ']'")
            ch = p[self.i]
            if ch == "]" and not first:
                self.i += 1
                break
            if ch == "\\" and self.i + 1 < len(p):
                ch = p[self.i + 1]
                self.i += 1
            self.i += 1
            first = False
            if self.i + 1 < len(p) and p[self.i] == "-" and p[self.i + 1] != "]":
                end = p[self.i + 1]
                if end == "\\" and self.i + 2 < len(p):
                    end = p[self.i + 2]
                    self.i += 1
                self.i += 2
                if ord(end) < ord(ch):
                    raise _GlobSyntax(f"invalid range {ch!r}-{end!r}")
                items.append(f"{_class_char(ch)}-{_class_char(end)}")
            else:
                items.append(_class_char(ch))
        return f"[{'^' if negate else ''}{''.join(items)}]"

    def _alternates(self, depth: int) -> str:
        self.i += 1
        alternatives: list[str] = []
        while True:
            alternatives.append(self._sequence(depth + 1))
            if self.i >= len(self.p):
                raise _GlobSyntax("unclosed alternate group: missing '}'")
            sep = self.p[self.i]
            self.i += 1
            if sep == "}":
                break
        kept = [alt for alt in alternatives if alt] or [""]
        return "(?:" + "|".join(kept) + ")"


def _class_char(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch
