"""Environment evaluation (maelstrom-features.md §2.2): ``$env{}``, ``$prev{}``, defaults.

A job inherits nothing from the client's environment except what its specs name with
``$env{VAR}``; the result is sorted by name as ``NAME=value`` strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ._specs_model import EnvironmentSpec, printable, quoted
from .errors import SpecError

__all__ = ["evaluate_environment", "substitute"]

_BAD_DOLLAR = '$ must be followed by "$", "env{", or "prev{"'


class SubstitutionError(SpecError):
    """A value could not be expanded; the message is the original's wording."""


def substitute(
    value: str,
    env_lookup: Callable[[str], str | None],
    prev_lookup: Callable[[str], str | None],
) -> str:
    """Expand ``$env{VAR}``, ``$prev{VAR}`` (each with an optional ``:-default``) and ``$$``.

    The default applies when the variable is missing or empty. The text is cut at every ``$``
    and each piece read on its own, as the original does: a variable's name and default end
    at the first ``}`` of their piece, so they can hold neither ``$`` nor ``}``.

    Raises:
        SubstitutionError: an unknown variable with no default, an unterminated ``{``, or a
            ``$`` that starts none of ``$$``, ``$env{``, ``$prev{``.
    """
    pieces = value.split("$")
    if len(pieces) == 1:
        return value
    out = [pieces[0]]
    i = 1
    while i < len(pieces):
        piece = pieces[i]
        i += 1
        if piece == "":
            # "$$": a literal "$", and the next piece is plain text.
            if i >= len(pieces):
                raise SubstitutionError(_BAD_DOLLAR)
            out.append("$")
            out.append(pieces[i])
            i += 1
        elif piece.startswith("env{"):
            out.append(_expand(piece[4:], env_lookup))
        elif piece.startswith("prev{"):
            out.append(_expand(piece[5:], prev_lookup))
        else:
            raise SubstitutionError(_BAD_DOLLAR)
    return "".join(out)


def _expand(piece: str, lookup: Callable[[str], str | None]) -> str:
    body, brace, rest = piece.partition("}")
    if not brace:
        raise SubstitutionError("unterminated {")
    name, has_default, default = body.partition(":-")
    found = lookup(name)
    if has_default and not found:
        return default + rest
    if found is None:
        raise SubstitutionError(f"unknown variable {quoted(name)}")
    return found + rest


def evaluate_environment(
    specs: Iterable[EnvironmentSpec],
    client_environment: Mapping[str, str],
    initial: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Fold ``specs`` over ``initial`` (an image's environment, or empty).

    Each spec's values are expanded against the map as it was before that spec, then overlay
    it (``extend``) or replace it. Returns ``NAME=value`` strings sorted by name.

    Raises:
        SpecError: naming the variable whose value could not be expanded.
    """
    running: dict[str, str] = dict(initial or {})
    for spec in specs:
        prev = running
        expanded: dict[str, str] = {}
        for name, value in spec.vars:
            try:
                expanded[name] = substitute(value, client_environment.get, prev.get)
            except SubstitutionError as err:
                raise SpecError(f"environment variable {printable(name)}: {err}") from None
        running = {**prev, **expanded} if spec.extend else expanded
    return tuple(f"{name}={value}" for name, value in sorted(running.items()))
