"""Template variables in layer paths: ``<build-dir>/foo`` with ``<<`` as an escaped ``<``.

A run of ``<`` is read in pairs: each ``<<`` is one literal ``<``; an odd run leaves one ``<`` that
opens a variable reference ``<name>``. Every reference must name a known variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import SpecError

__all__ = ["expand_template"]

_NAME = re.compile(r"[A-Za-z0-9_-]+")


def expand_template(text: str, variables: Mapping[str, str], *, where: str) -> str:
    """Replace every ``<name>`` in ``text`` with ``variables[name]``.

    Args:
        text: a path as written in a spec.
        variables: the template variables the front end defines (``build-dir`` for cargo).
        where: names the spec field for error messages.

    Raises:
        SpecError: an unknown variable, or a ``<`` that does not start ``<name>``.
    """
    if "<" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        start = text.find("<", i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        run_end = start
        while run_end < n and text[run_end] == "<":
            run_end += 1
        run = run_end - start
        out.append("<" * (run // 2))
        i = run_end
        if run % 2 == 0:
            continue
        close = text.find(">", i)
        name = text[i:close] if close >= 0 else ""
        if close < 0 or not _NAME.fullmatch(name):
            raise SpecError(f"{where}: {text!r}: '<' at {start + run - 1} does not open <name>")
        if name not in variables:
            known = ", ".join(f"<{k}>" for k in sorted(variables)) or "none"
            raise SpecError(
                f"{where}: {text!r}: unknown template variable <{name}> (known: {known})"
            )
        out.append(variables[name])
        i = close + 1
    return "".join(out)
