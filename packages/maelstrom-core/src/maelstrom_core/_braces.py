"""Brace expansion for stub paths, as the original's ``bracoxide`` does it.

Supported: alternatives ``{a,b}`` (nested, empty members allowed: ``a{,b}``), numeric sequences
``{1..3}``, ``{3..1}``, ``{-1..1}`` with zero padding when a bound is written with a leading zero
(``{01..10}``), and backslash escapes of ``{``, ``}``, ``,`` and ``\\``. A group with no comma and
no sequence (``{a}``) expands to its content. Results keep left-to-right order.
"""

from __future__ import annotations

import re

from .errors import SpecError

__all__ = ["expand_braces"]

_SEQUENCE = re.compile(r"(-?\d+)\.\.(-?\d+)")
_MAX_RESULTS = 100_000  # a guard against "{1..99999999}" eating the machine


class _Group(list["_Alternatives"]):
    """A brace group: one or more alternatives, each a sequence of parts."""


_Part = str | _Group
_Alternatives = list[_Part]


def expand_braces(text: str, *, where: str = "stub") -> list[str]:
    """Every string ``text`` expands to, in order.

    Raises:
        SpecError: unbalanced braces, an empty group, or an expansion that is too large.
    """
    if "{" not in text and "}" not in text and "\\" not in text:
        return [text]
    parts, _ = _parse(text, 0, where, top=True)
    return _expand(parts, text, where)


def _parse(text: str, pos: int, where: str, *, top: bool) -> tuple[list[_Alternatives], int]:
    """Parse alternatives until the matching ``}`` (or the end, at top level)."""
    alternatives: list[_Alternatives] = [[]]
    literal: list[str] = []

    def flush() -> None:
        if literal:
            alternatives[-1].append("".join(literal))
            literal.clear()

    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            if pos + 1 >= len(text):
                raise SpecError(f"{where}: {text!r}: dangling '\\' at the end")
            literal.append(text[pos + 1])
            pos += 2
        elif ch == "{":
            flush()
            inner, pos = _parse(text, pos + 1, where, top=False)
            alternatives[-1].append(_Group(inner))
        elif ch == "}":
            if top:
                raise SpecError(f"{where}: {text!r}: '}}' at {pos} has no matching '{{'")
            flush()
            return alternatives, pos + 1
        elif ch == "," and not top:
            flush()
            alternatives.append([])
            pos += 1
        else:
            literal.append(ch)
            pos += 1
    if not top:
        raise SpecError(f"{where}: {text!r}: '{{' is never closed")
    flush()
    return alternatives, pos


def _expand(alternatives: list[_Alternatives], text: str, where: str) -> list[str]:
    out: list[str] = []
    for sequence in alternatives:
        out.extend(_expand_sequence(sequence, text, where))
    return out


def _expand_sequence(sequence: _Alternatives, text: str, where: str) -> list[str]:
    results = [""]
    for part in sequence:
        choices = [part] if isinstance(part, str) else _expand_group(part, text, where)
        if len(results) * len(choices) > _MAX_RESULTS:
            raise SpecError(f"{where}: {text!r}: expands to more than {_MAX_RESULTS} strings")
        results = [head + tail for head in results for tail in choices]
    return results


def _expand_group(group: _Group, text: str, where: str) -> list[str]:
    if len(group) == 1:
        only = group[0]
        if not only:
            raise SpecError(f"{where}: {text!r}: empty brace group '{{}}'")
        if len(only) == 1 and isinstance(only[0], str):
            match = _SEQUENCE.fullmatch(only[0])
            if match:
                return _sequence(match.group(1), match.group(2), text, where)
    return _expand(list(group), text, where)


def _sequence(first: str, last: str, text: str, where: str) -> list[str]:
    start, stop = int(first), int(last)
    if abs(stop - start) + 1 > _MAX_RESULTS:
        raise SpecError(f"{where}: {text!r}: sequence {first}..{last} is too long")

    def padded(bound: str) -> bool:
        digits = bound.lstrip("-")
        return len(digits) > 1 and digits.startswith("0")

    width = max(len(first), len(last)) if padded(first) or padded(last) else 0
    step = 1 if stop >= start else -1
    numbers = range(start, stop + step, step)
    if not width:
        return [str(n) for n in numbers]
    return [f"-{str(-n).zfill(width - 1)}" if n < 0 else str(n).zfill(width) for n in numbers]
