"""JSON for job streams: a parser that remembers where each value was, and a splitter that
finds complete top-level objects in text that arrives in arbitrary chunks.

The standard ``json`` module gives no positions for nested values, and users deserve errors
that point at the bad field (``layers[1].stubs``), so values are parsed here; strings still go
through the C ``scanstring`` of the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.decoder import scanstring  # type: ignore[attr-defined]

from ._specs_model import printable

__all__ = [
    "JsonPath",
    "JsonSyntaxError",
    "ObjectSplitter",
    "decode_strict",
    "line_column",
    "parse_json_value",
]

JsonPath = tuple[str | int, ...]

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_MAX_DEPTH = 256


class JsonSyntaxError(Exception):
    """Bad JSON at ``offset`` (relative to the parsed text)."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def parse_json_value(text: str) -> tuple[object, dict[JsonPath, int]]:
    """Parse ``text`` as one JSON value, surrounded only by whitespace.

    Returns the value and the offset in ``text`` where each value (by path) starts. Duplicate
    object keys are an error, as serde reports them.
    """
    parser = _Parser(text)
    end = _WS.match(text, 0).end()  # type: ignore[union-attr]
    value, end = parser.value(end, (), 0)
    end = _WS.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise JsonSyntaxError(end, "trailing characters after the JSON value")
    return value, parser.offsets


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.offsets: dict[JsonPath, int] = {}

    def value(self, i: int, path: JsonPath, depth: int) -> tuple[object, int]:
        text = self.text
        self.offsets[path] = i
        if i >= len(text):
            raise JsonSyntaxError(i, "unexpected end of input, expected a value")
        c = text[i]
        if c == '"':
            return self.string(i)
        if c == "{":
            return self.obj(i, path, depth + 1)
        if c == "[":
            return self.array(i, path, depth + 1)
        for word, result in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, i):
                return result, i + len(word)
        m = _NUMBER.match(text, i)
        if m and m.end() > i:
            integer, frac, exp = m.groups()
            if frac or exp:
                return float(m.group()), m.end()
            if len(integer) > 40:
                # Far beyond any field's range, and int() refuses huge digit strings anyway.
                raise JsonSyntaxError(i, "number is too large")
            return int(integer), m.end()
        raise JsonSyntaxError(i, f"expected a value, found {_show(text, i)}")

    def string(self, i: int) -> tuple[str, int]:
        try:
            return scanstring(self.text, i + 1, True)  # type: ignore[no-any-return]
        except json.JSONDecodeError as err:
            raise JsonSyntaxError(err.pos, err.msg.lower()) from None

    def obj(self, i: int, path: JsonPath, depth: int) -> tuple[dict[str, object], int]:
        if depth > _MAX_DEPTH:
            raise JsonSyntaxError(i, "nesting is too deep")
        text = self.text
        result: dict[str, object] = {}
        i = _skip(text, i + 1)
        if text.startswith("}", i):
            return result, i + 1
        while True:
            if not text.startswith('"', i):
                raise JsonSyntaxError(i, f"expected a string key, found {_show(text, i)}")
            key_at = i
            key, i = self.string(i)
            if key in result:
                raise JsonSyntaxError(key_at, f"duplicate field `{printable(key)}`")
            i = _skip(text, i)
            if not text.startswith(":", i):
                raise JsonSyntaxError(i, f"expected ':', found {_show(text, i)}")
            i = _skip(text, i + 1)
            result[key], i = self.value(i, (*path, key), depth)
            i = _skip(text, i)
            if text.startswith(",", i):
                i = _skip(text, i + 1)
            elif text.startswith("}", i):
                return result, i + 1
            else:
                raise JsonSyntaxError(i, f"expected ',' or '}}', found {_show(text, i)}")

    def array(self, i: int, path: JsonPath, depth: int) -> tuple[list[object], int]:
        if depth > _MAX_DEPTH:
            raise JsonSyntaxError(i, "nesting is too deep")
        text = self.text
        result: list[object] = []
        i = _skip(text, i + 1)
        if text.startswith("]", i):
            return result, i + 1
        while True:
            item, i = self.value(i, (*path, len(result)), depth)
            result.append(item)
            i = _skip(text, i)
            if text.startswith(",", i):
                i = _skip(text, i + 1)
            elif text.startswith("]", i):
                return result, i + 1
            else:
                raise JsonSyntaxError(i, f"expected ',' or ']', found {_show(text, i)}")


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()  # type: ignore[union-attr]


def _show(text: str, i: int) -> str:
    return "end of input" if i >= len(text) else repr(text[i])


def line_column(
    text: str, offset: int, base_line: int = 1, base_column: int = 1, start: int = 0
) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``, where ``start`` is at ``base_*``."""
    offset = min(offset, len(text))
    newlines = text.count("\n", start, offset)
    if newlines == 0:
        return base_line, base_column + offset - start
    return base_line + newlines, offset - text.rfind("\n", start, offset)


_IN_STRING_STOP = re.compile(r'["\\]')
# A whole string in one step when it is complete; a lone quote when it runs past the buffer.
_IN_OBJECT_STOP = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]"]', re.DOTALL)


class _Rejected(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Rejected
    return result


def _no_constants(name: str) -> object:
    raise _Rejected  # NaN and Infinity are not JSON


_STRICT = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)


def decode_strict(text: str, start: int) -> tuple[object, int] | None:
    """The JSON value at ``start`` and where it ends, decoded by the C parser, or ``None``
    for anything doubtful (incomplete, invalid, duplicate keys, NaN, too deep), which
    ``parse_json_value`` then reports precisely."""
    try:
        value, end = _STRICT.raw_decode(text, start)
    except (ValueError, RecursionError, _Rejected):
        return None
    return value, end


class ObjectSplitter:
    """Finds each complete top-level ``{...}`` in a stream fed in chunks.

    It only tracks strings and bracket depth, so it is cheap; the full parse of each object
    (and any precise syntax error) is left to ``parse_json_value``. Text of objects that were
    handed out is dropped, and ``(line, column)`` of the buffer start is kept up to date.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._pos = 0  # next character to scan
        self._start = -1  # start of the object being scanned, or -1 between objects
        self._depth = 0
        self._in_string = False
        # Line and column of buffer offset ``_anchor``; it only moves forward, so counting
        # newlines never rescans text already counted.
        self._anchor = 0
        self._line = 1
        self._column = 1

    def feed(self, chunk: str) -> Iterator[tuple[str, int, int, object]]:
        """Yield ``(object_text, line, column, value)`` for each object completed by ``chunk``.

        ``value`` is the decoded object when the C decoder accepted it outright, else
        ``None``: the text is then incomplete-looking or invalid, and ``parse_json_value``
        must be used on it to get the precise error.

        A character between objects that is neither whitespace nor ``{`` raises
        ``JsonSyntaxError`` whose offset is relative to the returned ``position``.
        """
        self._buf += chunk
        buf = self._buf
        pos = self._pos
        while pos < len(buf):
            if self._depth == 0:
                pos = _skip(buf, pos)
                if pos >= len(buf):
                    break
                if buf[pos] != "{":
                    self._pos = pos
                    raise JsonSyntaxError(
                        pos, f"expected '{{' to start a JSON object, found {_show(buf, pos)}"
                    )
                # Whole, valid objects (the common case) are found and decoded in C; only
                # partial or bad ones go through the bracket scan below.
                decoded = decode_strict(buf, pos)
                if decoded is not None:
                    value, end = decoded
                    line, column = self.position(pos)
                    self._pos = end
                    yield buf[pos:end], line, column, value
                    pos = end
                    continue
                self._start = pos
                self._depth = 1
                pos += 1
            elif self._in_string:
                m = _IN_STRING_STOP.search(buf, pos)
                if m is None:
                    pos = len(buf)
                elif m.group() == "\\":
                    if m.end() >= len(buf):
                        # The escaped character has not arrived yet: rescan from here later.
                        pos = m.start()
                        break
                    pos = m.end() + 1
                else:
                    self._in_string = False
                    pos = m.end()
            else:
                m = _IN_OBJECT_STOP.search(buf, pos)
                if m is None:
                    pos = len(buf)
                    continue
                ch = m.group()
                pos = m.end()
                if len(ch) > 1:
                    continue
                if ch == '"':
                    self._in_string = True
                elif ch in "{[":
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 0:
                        line, column = self.position(self._start)
                        text = buf[self._start : pos]
                        self._start = -1
                        self._pos = pos
                        yield text, line, column, None
        self._pos = pos
        self._trim()

    def _trim(self) -> None:
        cut = self._start if self._start >= 0 else self._pos
        if cut > 0:
            self.position(cut)
            self._anchor = 0
            self._buf = self._buf[cut:]
            self._pos -= cut
            if self._start >= 0:
                self._start = 0

    def position(self, offset: int) -> tuple[int, int]:
        """Line and column of ``offset`` into the current buffer (not before the last
        position asked for), moving the anchor there."""
        offset = max(offset, self._anchor)
        self._line, self._column = line_column(
            self._buf, offset, self._line, self._column, self._anchor
        )
        self._anchor = offset
        return self._line, self._column

    def pending(self) -> tuple[str, int, int] | None:
        """At end of input: the unfinished object's text and position, if there is one."""
        if self._start < 0:
            return None
        line, column = self.position(self._start)
        return self._buf[self._start :], line, column
