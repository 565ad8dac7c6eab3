"""The test spec file (``cargo-maelstrom.toml``, ...): directives and named containers (§4.5).

A spec file has two top-level keys. ``containers`` names container specs jobs may use as
``parent``. ``directives`` is an ordered list; each has an optional ``filter`` plus container
fields and ``ignore``/``timeout``/``include_shared_libraries``. For a case, *every* directive
whose filter matches is folded into the case's metadata, in file order:

* a directive with ``image`` or ``parent`` replaces the whole container (override mode);
* otherwise it edits it: ``layers``/``environment``/``mounts`` replace the case's own list
  (what the parent chain gives is untouched), ``added_*`` append, scalars overwrite;
* ``ignore``, ``timeout`` (0 = none, clearing an earlier one) and ``include_shared_libraries``
  overwrite when present, in both modes.

tomllib keeps no positions, so :class:`_KeyLines` scans the text once for the line each
table and key starts on: every error names ``file:line``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._layer_spec import LayerSpec
from .._specs_model import ContainerRef, ContainerSpec, EnvironmentSpec, ImageRef, MountSpec
from .._specs_parse import CONTAINER_KEY_ORDER, U32_MAX, format_path
from ..errors import FilterError, SpecError
from ..specs import CONTAINER_KEYS, parse_container_keys, reject_unknown_keys
from ._filter import CaseInfo, Dialect, Filter, parse_filter

__all__ = [
    "Directive",
    "InitResult",
    "SpecFile",
    "TestMetadata",
    "init_spec_file",
]

_TOP_KEYS = ("directives", "containers")
_OWN_KEYS = ("filter", "ignore", "timeout", "include_shared_libraries")
_DIRECTIVE_KEYS = (*_OWN_KEYS, *CONTAINER_KEY_ORDER)

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Directive:
    """One ``[[directives]]`` entry (``line`` is where it starts). ``None`` fields were not
    given; ``timeout`` is as written, so 0 means "no timeout" and clears an earlier one."""

    line: int
    filter: Filter | None = None
    container: ContainerSpec = field(default_factory=ContainerSpec)
    ignore: bool | None = None
    timeout: int | None = None
    include_shared_libraries: bool | None = None

    @property
    def overrides(self) -> bool:
        return self.container.parent is not None

    def matches(self, case: CaseInfo) -> bool:
        return self.filter is None or self.filter.matches(case)


@dataclass(frozen=True, slots=True)
class TestMetadata:
    """A case's metadata after folding its directives.

    Attributes:
        container: the case's container spec (binary layers not added yet).
        ignore: report the case IGNORED without running it.
        timeout: seconds, or ``None`` for no timeout.
        include_shared_libraries: the explicit value of the last directive that set it, or
            ``None``: then it is true unless the container's layers come from an image
            (decided after collapsing, see ``resolve_include_shared_libraries``).
    """

    __test__ = False

    container: ContainerSpec = field(default_factory=ContainerSpec)
    ignore: bool = False
    timeout: int | None = None
    include_shared_libraries: bool | None = None

    def resolve_include_shared_libraries(self, uses_image_layers: bool) -> bool:
        if self.include_shared_libraries is not None:
            return self.include_shared_libraries
        return not uses_image_layers


@dataclass(slots=True)
class _Candidate:
    """The fold's running state: a container as parts, so vectors can be replaced/appended."""

    parent: ImageRef | ContainerRef | None = None
    layers: tuple[LayerSpec, ...] = ()
    environment: tuple[EnvironmentSpec, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    scalars: dict[str, object] = field(default_factory=dict)
    ignore: bool = False
    timeout: int | None = None
    include_shared_libraries: bool | None = None

    def fold(self, directive: Directive) -> None:
        spec = directive.container
        if directive.overrides:
            self.parent = spec.parent
            self.layers = spec.all_layers
            self.environment = spec.all_environment
            self.mounts = spec.all_mounts
            self.scalars = {}
        else:
            if spec.layers is not None:
                self.layers = spec.layers
            if spec.environment is not None:
                self.environment = spec.environment
            if spec.mounts is not None:
                self.mounts = spec.mounts
            self.layers += spec.added_layers or ()
            self.environment += spec.added_environment or ()
            self.mounts += spec.added_mounts or ()
        for name in _SCALARS:
            value = getattr(spec, name)
            if value is not None:
                self.scalars[name] = value
        if directive.ignore is not None:
            self.ignore = directive.ignore
        if directive.timeout is not None:
            self.timeout = directive.timeout or None
        if directive.include_shared_libraries is not None:
            self.include_shared_libraries = directive.include_shared_libraries

    def metadata(self) -> TestMetadata:
        container = ContainerSpec(
            parent=self.parent,
            layers=self.layers,
            environment=self.environment,
            mounts=self.mounts,
            **self.scalars,  # type: ignore[arg-type]
        )
        return TestMetadata(container, self.ignore, self.timeout, self.include_shared_libraries)


_SCALARS = ("network", "enable_writable_file_system", "working_directory", "user", "group")


@dataclass(frozen=True, slots=True)
class SpecFile:
    """A parsed spec file: its directives in order and its named containers."""

    source: str
    directives: tuple[Directive, ...]
    containers: Mapping[str, ContainerSpec]

    @classmethod
    def parse(cls, text: str, *, source: str, dialect: Dialect) -> SpecFile:
        """Parse a spec file's text. ``source`` names it in messages (``cargo-maelstrom.toml``).

        Raises:
            SpecError: bad TOML, an unknown key, a bad filter or a bad container field; the
                message names ``source``, the line and the field.
        """
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise SpecError(f"{source}: {err}") from None
        where = _LinedWhere(source, _KeyLines(text))
        reject_unknown_keys(table, _TOP_KEYS, where)
        containers: dict[str, ContainerSpec] = {}
        raw_containers = table.get("containers", {})
        if not isinstance(raw_containers, dict):
            raise where.error(("containers",), "expected a table of container specs")
        for name, spec in raw_containers.items():
            path: PathKey = ("containers", name)
            if not isinstance(spec, dict):
                raise where.error(path, "expected a table")
            reject_unknown_keys(spec, CONTAINER_KEY_ORDER, where, path)
            containers[name] = parse_container_keys(spec, where, path)
        raw_directives = table.get("directives", [])
        if not isinstance(raw_directives, list):
            raise where.error(("directives",), "expected an array of tables (`[[directives]]`)")
        directives = tuple(
            _directive(raw, ("directives", index), where, dialect)
            for index, raw in enumerate(raw_directives)
        )
        return cls(source, directives, containers)

    @classmethod
    def load(
        cls, project_dir: Path, file_name: str, default_text: str, dialect: Dialect
    ) -> SpecFile:
        """``project_dir/file_name``, or the embedded default when the file does not exist."""
        path = project_dir / file_name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls.parse(
                default_text, source=f"{file_name} (built-in default)", dialect=dialect
            )
        except OSError as err:
            raise SpecError(f"cannot read {path}: {err.strerror or err}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SpecError(f"{file_name}: not UTF-8 text (byte {err.start})") from None
        return cls.parse(text, source=file_name, dialect=dialect)

    def metadata_for(self, case: CaseInfo) -> TestMetadata:
        """Fold every directive whose filter matches ``case``, in file order."""
        candidate = _Candidate()
        for directive in self.directives:
            if directive.matches(case):
                candidate.fold(directive)
        return candidate.metadata()


def _directive(raw: object, path: PathKey, where: _LinedWhere, dialect: Dialect) -> Directive:
    if not isinstance(raw, dict):
        raise where.error(path, "expected a table")
    reject_unknown_keys(raw, _DIRECTIVE_KEYS, where, path)
    test_filter = None
    if "filter" in raw:
        text = raw["filter"]
        if not isinstance(text, str):
            raise where.error((*path, "filter"), "expected a string")
        try:
            test_filter = parse_filter(text, dialect, origin=where.location((*path, "filter")))
        except FilterError as err:
            # In a spec file a bad filter is a spec error (exit 1), not a usage error (2).
            raise SpecError(str(err)) from None
    timeout = None
    if "timeout" in raw:
        value = raw["timeout"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
            raise where.error(
                (*path, "timeout"), f"expected a number of seconds from 0 to {U32_MAX}"
            )
        timeout = value
    container_keys = {k: v for k, v in raw.items() if k in CONTAINER_KEYS}
    return Directive(
        line=where.lines.line_of(path),
        filter=test_filter,
        container=parse_container_keys(container_keys, where, path, directive=True),
        ignore=_optional_bool(raw, "ignore", path, where),
        timeout=timeout,
        include_shared_libraries=_optional_bool(raw, "include_shared_libraries", path, where),
    )


def _optional_bool(
    raw: Mapping[str, object], key: str, path: PathKey, where: _LinedWhere
) -> bool | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, bool):
        raise where.error((*path, key), "expected a boolean")
    return value


@dataclass(frozen=True, slots=True)
class _LinedWhere:
    """A ``Where`` for a TOML file that names the line of the failing field."""

    source: str
    lines: _KeyLines
    map_noun: str = "table"

    def location(self, path: PathKey) -> str:
        return f"{self.source}:{self.lines.line_of(path)}"

    def error(self, path: PathKey, message: str) -> SpecError:
        if path:
            return SpecError(f"{self.location(path)}: {format_path(path)}: {message}")
        return SpecError(f"{self.location(path)}: {message}")


# --------------------------------------------------------------------------------------------
# Lines of keys, for messages

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\\n]|\\.)*"'
_LITERAL = r"'[^'\n]*'"
_KEY_PART = re.compile(rf"\s*({_BARE}|{_BASIC}|{_LITERAL})\s*")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _key_parts(text: str) -> tuple[list[str], int] | None:
    """Parse a dotted key at the start of ``text``: (parts, end offset), or None."""
    parts: list[str] = []
    pos = 0
    while True:
        m = _KEY_PART.match(text, pos)
        if m is None:
            return None
        token = m.group(1)
        if token.startswith('"'):
            token = re.sub(
                r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)",
                lambda e: (
                    chr(int(e.group(1)[1:], 16))
                    if e.group(1)[0] in "uU"
                    else _ESCAPES.get(e.group(1), e.group(1))
                ),
                token[1:-1],
            )
        elif token.startswith("'"):
            token = token[1:-1]
        parts.append(token)
        pos = m.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


class _KeyLines:
    """Line numbers (1-based) of the tables and keys of a TOML text.

    Only what the parser needs for messages: ``[a.b]`` and ``[[a]]`` headers (array entries
    are numbered) and ``key = ...`` lines at the top of a table. Values spanning lines
    (arrays, inline tables, multi-line strings) are skipped, so their inner keys map to the
    line of the key that holds them.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[PathKey, int] = {}
        counts: dict[PathKey, int] = {}
        table: PathKey = ()
        depth = 0
        in_string: str | None = None  # the closing quotes of an open multi-line string
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is None and depth == 0:
                stripped = line.lstrip()
                header = self._header(stripped, counts)
                if header is not None:
                    table = header
                    for end in range(1, len(table) + 1):
                        self._lines.setdefault(table[:end], number)
                    continue
                parsed = _key_parts(stripped)
                if parsed is not None and stripped[parsed[1] :].startswith("="):
                    key_path = (*table, *parsed[0])
                    for end in range(len(table) + 1, len(key_path) + 1):
                        self._lines.setdefault(key_path[:end], number)
                    line = stripped[parsed[1] + 1 :]
                else:
                    continue
            depth, in_string = self._scan_value(line, depth, in_string)

    @staticmethod
    def _header(stripped: str, counts: dict[PathKey, int]) -> PathKey | None:
        array = stripped.startswith("[[")
        if not stripped.startswith("["):
            return None
        parsed = _key_parts(stripped[2 if array else 1 :])
        if parsed is None:
            return None
        path: PathKey = tuple(parsed[0])
        if array:
            index = counts.get(path, 0)
            counts[path] = index + 1
            # Sub-tables of earlier array entries restart: [[a]] [a.b] [[a]] [a.b].
            return (*path, index)
        # [directives.added_environment] belongs to the last [[directives]] entry.
        for cut in range(len(path), 0, -1):
            prefix = path[:cut]
            if prefix in counts:
                return (*prefix, counts[prefix] - 1, *path[cut:])
        return path

    @staticmethod
    def _scan_value(line: str, depth: int, in_string: str | None) -> tuple[int, str | None]:
        i = 0
        while i < len(line):
            if in_string is not None:
                end = line.find(in_string, i)
                if end < 0:
                    return depth, in_string
                i = end + 3
                in_string = None
                continue
            ch = line[i]
            if ch == "#":
                break
            if line.startswith('"""', i) or line.startswith("'''", i):
                in_string = line[i : i + 3]
                i += 3
                continue
            if ch == '"':
                m = re.compile(_BASIC).match(line, i)
                i = m.end() if m else len(line)
                continue
            if ch == "'":
                end = line.find("'", i + 1)
                i = end + 1 if end >= 0 else len(line)
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth = max(depth - 1, 0)
            i += 1
        return depth, in_string

    def line_of(self, path: PathKey) -> int:
        """The line of ``path``, or of its nearest known ancestor (1 if none)."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return 1


# --------------------------------------------------------------------------------------------
# --init


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``--init`` did: ``exit_code`` 0 (written) or 1 (the file exists), and the
    message to print."""

    exit_code: int
    message: str


def init_spec_file(project_dir: Path, file_name: str, default_text: str) -> InitResult:
    """Write the default spec file into ``project_dir``, unless it exists.

    Raises:
        SpecError: the file cannot be written.
    """
    path = project_dir / file_name
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(default_text)
    except FileExistsError:
        return InitResult(1, f"{file_name} already exists in {project_dir}; not overwriting it")
    except OSError as err:
        raise SpecError(f"cannot write {path}: {err.strerror or err}") from None
    return InitResult(0, f"wrote {path}")
