"""Parsing container and job specs from JSON and TOML (maelstrom-features.md §2.3-§2.5, §2.8).

Both formats are decoded to plain values first (dicts, lists, strings, numbers) and then read by
one set of field readers here, so a field means the same in ``maelstrom-run``'s JSON stream,
in ``containers`` tables and in test-runner directives. Every error is one line naming where
the value came from (a ``Where``) and the field path, such as ``layers[1].stubs``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ._job import (
    Device,
    DevicesMount,
    DevptsMount,
    MqueueMount,
    Network,
    ProcMount,
    SysMount,
    TmpMount,
)
from ._layer_spec import (
    GlobLayer,
    LayerSpec,
    PathsLayer,
    PrefixOptions,
    SharedLibraryDependenciesLayer,
    StubsLayer,
    SymlinksLayer,
    SymlinkSpec,
    TarLayer,
)
from ._specs_image import parse_image_name
from ._specs_json import JsonSyntaxError, ObjectSplitter, line_column, parse_json_value
from ._specs_model import (
    BindMountSpec,
    ContainerRef,
    ContainerSpec,
    ContainerUse,
    EnvironmentSpec,
    ImageRef,
    ImageUse,
    JobSpec,
    MountSpec,
    printable,
    quoted,
)
from .errors import SpecError

__all__ = [
    "CONTAINER_KEYS",
    "JOB_KEYS",
    "ContainersItem",
    "JobItem",
    "JobStreamParser",
    "TomlWhere",
    "Where",
    "parse_container_keys",
    "parse_container_table",
    "parse_containers_table",
    "parse_job_stream",
    "reject_unknown_keys",
]

Path = tuple[str | int, ...]

CONTAINER_KEYS = frozenset(
    {
        "image",
        "parent",
        "layers",
        "added_layers",
        "environment",
        "added_environment",
        "mounts",
        "added_mounts",
        "working_directory",
        "enable_writable_file_system",
        "network",
        "user",
        "group",
    }
)
JOB_KEYS = frozenset({"program", "arguments", "timeout", "priority"})

# Order for "expected one of" lists: the order the reference documents them in. Directives
# reuse it (testrunner/_directives.py).
CONTAINER_KEY_ORDER = (
    "image",
    "parent",
    "layers",
    "added_layers",
    "environment",
    "added_environment",
    "working_directory",
    "enable_writable_file_system",
    "mounts",
    "added_mounts",
    "network",
    "user",
    "group",
)
_JOB_KEY_ORDER = ("program", "arguments", "timeout", "priority", *CONTAINER_KEY_ORDER)

U32_MAX = 2**32 - 1


# --- where a value came from ----------------------------------------------------------------


class Where(Protocol):
    """Turns a field path and a message into a one-line ``SpecError``."""

    @property
    def map_noun(self) -> str:
        """What a map is called in this format: "object" in JSON, "table" in TOML."""
        ...

    def error(self, path: Path, message: str) -> SpecError: ...


def format_path(path: Path) -> str:
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            key = part if _PLAIN_KEY.match(part) else quoted(part)
            out.append(f".{key}" if out else key)
    return "".join(out)


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True, slots=True)
class TomlWhere:
    """A table inside a TOML file. ``location`` names it, e.g. ``cargo-maelstrom.toml:
    directives[2]``; tomllib keeps no positions, so the field path does the pointing."""

    location: str
    map_noun: str = "table"

    def error(self, path: Path, message: str) -> SpecError:
        if path:
            return SpecError(f"{self.location}: {format_path(path)}: {message}")
        return SpecError(f"{self.location}: {message}")


@dataclass(frozen=True, slots=True)
class _JsonWhere:
    """One top-level object of a JSON stream. The offset of each value in it is found only
    when an error needs it, so the common case runs at the speed of the ``json`` module."""

    source: str
    label: str
    text: str
    line: int
    column: int
    map_noun: str = "object"

    def error(self, path: Path, message: str) -> SpecError:
        try:
            _, offsets = parse_json_value(self.text)
        except JsonSyntaxError as err:
            # Valid for the json module but not for us (nesting too deep): report that first.
            path, message = (), err.message
            offsets = {(): err.offset}
        probe = path
        while probe not in offsets and probe:
            probe = probe[:-1]
        line, column = line_column(self.text, offsets.get(probe, 0), self.line, self.column)
        field = f"{format_path(path)}: " if path else ""
        return SpecError(
            f"{self.source}: {self.label} (line {line}, column {column}): {field}{message}"
        )


# --- scalar readers -------------------------------------------------------------------------

T = TypeVar("T")


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return f"a {type(value).__name__}"


def _expected(where: Where, path: Path, what: str, value: object) -> SpecError:
    return where.error(path, f"expected {what}, found {_type_name(value)}")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _map(value: object, where: Where, path: Path) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _expected(where, path, _article(where.map_noun), value)
    return value


def _str(value: object, where: Where, path: Path) -> str:
    if not isinstance(value, str):
        raise _expected(where, path, "a string", value)
    return value


def _bool(value: object, where: Where, path: Path) -> bool:
    if not isinstance(value, bool):
        raise _expected(where, path, "a boolean", value)
    return value


def _int(value: object, where: Where, path: Path, lo: int, hi: int, kind: str) -> int:
    what = f"{kind} (an integer from {lo} to {hi})"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expected(where, path, what, value)
    if not lo <= value <= hi:
        shown = str(value) if abs(value) < 10**20 else "a larger number"
        raise where.error(path, f"expected {what}, found {shown}")
    return value


def _u32(value: object, where: Where, path: Path) -> int:
    return _int(value, where, path, 0, U32_MAX, "a u32")


def _network(value: object, where: Where, path: Path) -> Network:
    return Network(_enum_value(value, where, path, (n.value for n in Network)))


def _list(
    value: object, where: Where, path: Path, what: str, item: Callable[[object, Path], T]
) -> tuple[T, ...]:
    if not isinstance(value, list):
        raise _expected(where, path, what, value)
    return tuple(item(v, (*path, i)) for i, v in enumerate(value))


def _str_list(value: object, where: Where, path: Path) -> tuple[str, ...]:
    what = "a list of strings"
    if not isinstance(value, list):
        raise _expected(where, path, what, value)
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise where.error((*path, i), f"expected a string, found {_type_name(v)}")
    return tuple(value)


def _one_of(keys: Iterable[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


def reject_unknown_keys(
    table: Mapping[str, object], allowed: Iterable[str], where: Where, path: Path = ()
) -> None:
    """Raise for the first key not in ``allowed`` (kept in order for the message)."""
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            raise where.error(
                (*path, key),
                f"unknown field `{printable(key)}`, expected one of {_one_of(allowed)}",
            )


def _enum_value(value: object, where: Where, path: Path, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    text = _str(value, where, path)
    if text not in choices:
        raise where.error(
            path, f"unknown variant `{printable(text)}`, expected one of {_one_of(choices)}"
        )
    return text


# --- layers ---------------------------------------------------------------------------------

_PREFIX_KEYS = ("follow_symlinks", "canonicalize", "strip_prefix", "prepend_prefix")
_LAYER_KINDS = ("tar", "glob", "paths", "stubs", "symlinks", "shared_library_dependencies")
_LAYER_KEYS: dict[str, tuple[str, ...]] = {
    "tar": ("tar",),
    "glob": ("glob", *_PREFIX_KEYS),
    "paths": ("paths", *_PREFIX_KEYS),
    "stubs": ("stubs",),
    "symlinks": ("symlinks",),
    "shared_library_dependencies": ("shared_library_dependencies", *_PREFIX_KEYS),
}


def _prefix_options(table: Mapping[str, object], where: Where, path: Path) -> PrefixOptions:
    def opt_str(key: str) -> str | None:
        return _str(table[key], where, (*path, key)) if key in table else None

    def opt_bool(key: str) -> bool:
        return _bool(table[key], where, (*path, key)) if key in table else False

    return PrefixOptions(
        follow_symlinks=opt_bool("follow_symlinks"),
        canonicalize=opt_bool("canonicalize"),
        strip_prefix=opt_str("strip_prefix"),
        prepend_prefix=opt_str("prepend_prefix"),
    )


def _symlink(value: object, where: Where, path: Path) -> SymlinkSpec:
    table = _map(value, where, path)
    reject_unknown_keys(table, ("link", "target"), where, path)
    for key in ("link", "target"):
        if key not in table:
            raise where.error(path, f"missing field `{key}`")
    return SymlinkSpec(
        _str(table["link"], where, (*path, "link")), _str(table["target"], where, (*path, "target"))
    )


def parse_layer(value: object, where: Where, path: Path) -> LayerSpec:
    """One layer table: its kind is the one kind key it has (``tar``, ``glob``, ...)."""
    table = _map(value, where, path)
    if "command" in table:
        raise where.error((*path, "command"), "`command` layers are not supported yet")
    kinds = [k for k in _LAYER_KINDS if k in table]
    if not kinds:
        raise where.error(path, f"a layer needs one of {_one_of(_LAYER_KINDS)}")
    if len(kinds) > 1:
        raise where.error(
            (*path, kinds[1]), f"a layer cannot have both `{kinds[0]}` and `{kinds[1]}`"
        )
    kind = kinds[0]
    reject_unknown_keys(table, _LAYER_KEYS[kind], where, path)
    at = (*path, kind)
    body = table[kind]
    if kind == "tar":
        return TarLayer(_str(body, where, at))
    if kind == "glob":
        return GlobLayer(_str(body, where, at), _prefix_options(table, where, path))
    if kind == "paths":
        return PathsLayer(_str_list(body, where, at), _prefix_options(table, where, path))
    if kind == "stubs":
        return StubsLayer(_str_list(body, where, at))
    if kind == "symlinks":
        return SymlinksLayer(
            _list(
                body,
                where,
                at,
                "a list of {link, target} tables",
                lambda v, p: _symlink(v, where, p),
            )
        )
    return SharedLibraryDependenciesLayer(
        _str_list(body, where, at), _prefix_options(table, where, path)
    )


def _layers(value: object, where: Where, path: Path) -> tuple[LayerSpec, ...]:
    return _list(value, where, path, "a list of layers", lambda v, p: parse_layer(v, where, p))


# --- environment ----------------------------------------------------------------------------


def _vars(value: object, where: Where, path: Path) -> tuple[tuple[str, str], ...]:
    table = _map(value, where, path)
    for key, v in table.items():
        _str(v, where, (*path, key))
    return tuple(sorted((k, v) for k, v in table.items() if isinstance(v, str)))


def _environment_spec(value: object, where: Where, path: Path) -> EnvironmentSpec:
    table = _map(value, where, path)
    reject_unknown_keys(table, ("vars", "extend"), where, path)
    for key in ("vars", "extend"):
        if key not in table:
            raise where.error(path, f"missing field `{key}`")
    return EnvironmentSpec(
        _vars(table["vars"], where, (*path, "vars")),
        _bool(table["extend"], where, (*path, "extend")),
    )


def _environment(value: object, where: Where, path: Path) -> tuple[EnvironmentSpec, ...]:
    """A map is one spec that extends; a list holds ``{vars, extend}`` specs."""
    if isinstance(value, dict):
        return (EnvironmentSpec(_vars(value, where, path), True),)
    if isinstance(value, list):
        return tuple(_environment_spec(v, where, (*path, i)) for i, v in enumerate(value))
    raise _expected(
        where,
        path,
        f"{_article(where.map_noun)} of variables or a list of {{vars, extend}}",
        value,
    )


# --- mounts ---------------------------------------------------------------------------------

_MOUNT_TYPES = ("bind", "devices", "devpts", "mqueue", "proc", "sys", "tmp")
_POINT_MOUNTS: dict[str, Callable[[str], MountSpec]] = {
    "devpts": DevptsMount,
    "mqueue": MqueueMount,
    "proc": ProcMount,
    "sys": SysMount,
    "tmp": TmpMount,
}


def _mount_point(table: Mapping[str, object], where: Where, path: Path) -> str:
    if "mount_point" not in table:
        raise where.error(path, "missing field `mount_point`")
    point = _str(table["mount_point"], where, (*path, "mount_point"))
    if point == "/":
        raise where.error((*path, "mount_point"), 'a path of "/" is not allowed')
    return point


def parse_mount(value: object, where: Where, path: Path) -> MountSpec:
    table = _map(value, where, path)
    if "type" not in table:
        raise where.error(path, "missing field `type`")
    kind = _enum_value(table["type"], where, (*path, "type"), _MOUNT_TYPES)
    if kind == "bind":
        reject_unknown_keys(table, ("type", "mount_point", "local_path", "read_only"), where, path)
        point = _mount_point(table, where, path)
        if "local_path" not in table:
            raise where.error(path, "missing field `local_path`")
        local = _str(table["local_path"], where, (*path, "local_path"))
        read_only = (
            _bool(table["read_only"], where, (*path, "read_only"))
            if "read_only" in table
            else False
        )
        return BindMountSpec(point, local, read_only)
    if kind == "devices":
        reject_unknown_keys(table, ("type", "devices"), where, path)
        if "devices" not in table:
            raise where.error(path, "missing field `devices`")
        names = _list(
            table["devices"],
            where,
            (*path, "devices"),
            "a list of device names",
            lambda v, p: _enum_value(v, where, p, (d.value for d in Device)),
        )
        return DevicesMount(frozenset(Device(n) for n in names))
    reject_unknown_keys(table, ("type", "mount_point"), where, path)
    return _POINT_MOUNTS[kind](_mount_point(table, where, path))


def _mounts(value: object, where: Where, path: Path) -> tuple[MountSpec, ...]:
    return _list(value, where, path, "a list of mounts", lambda v, p: parse_mount(v, where, p))


# --- image and parent -----------------------------------------------------------------------


def _ref(
    value: object, where: Where, path: Path, choices: tuple[str, ...]
) -> tuple[str, frozenset[str] | None]:
    """A string name (implicit ``use``), or ``{name, use}``; returns ``use=None`` if implicit."""
    if isinstance(value, str):
        return value, None
    if not isinstance(value, dict):
        raise _expected(where, path, f"a string or {_article(where.map_noun)} with `name`", value)
    reject_unknown_keys(value, ("name", "use"), where, path)
    if "name" not in value:
        raise where.error(path, "missing field `name`")
    name = _str(value["name"], where, (*path, "name"))
    if "use" not in value:
        return name, None
    use = _list(
        value["use"],
        where,
        (*path, "use"),
        "a list of field names",
        lambda v, p: _enum_value(v, where, p, choices),
    )
    return name, frozenset(use)


# --- container ------------------------------------------------------------------------------

_VECTORS = ("layers", "environment", "mounts")
_CHECK_ORDER = (
    "layers",
    "environment",
    "working_directory",
    "enable_writable_file_system",
    "mounts",
    "network",
    "user",
    "group",
)


def parse_container_keys(
    table: Mapping[str, object], where: Where, path: Path = (), *, directive: bool = False
) -> ContainerSpec:
    """Read the container keys of ``table`` (others are ignored: the caller checks them) and
    apply the §2.3 validation rules.

    ``directive=True`` is for test-runner directives without ``image``/``parent``: there
    ``added_X`` appends to what earlier directives built, so it needs no parent.
    """

    def at(key: str) -> Path:
        return (*path, key)

    image_name = parent_name = None
    image_use: frozenset[str] | None = None
    parent_use: frozenset[str] | None = None
    if "image" in table:
        image_name, image_use = _ref(table["image"], where, at("image"), tuple(ImageUse))
        try:
            parse_image_name(image_name)
        except SpecError as err:
            named = (*at("image"), "name") if isinstance(table["image"], dict) else at("image")
            raise where.error(named, str(err)) from None
    if "parent" in table:
        parent_name, parent_use = _ref(table["parent"], where, at("parent"), tuple(ContainerUse))
    if image_name is not None and parent_name is not None:
        raise where.error(at("parent"), "both `image` and `parent` cannot be specified")

    def opt(key: str, reader: Callable[[object, Where, Path], T]) -> T | None:
        return reader(table[key], where, at(key)) if key in table else None

    layers = opt("layers", _layers)
    added_layers = opt("added_layers", _layers)
    environment = opt("environment", _environment)
    added_environment = opt("added_environment", _environment)
    working_directory = opt("working_directory", _str)
    enable_writable_file_system = opt("enable_writable_file_system", _bool)
    mounts = opt("mounts", _mounts)
    added_mounts = opt("added_mounts", _mounts)
    network = opt("network", _network)
    user = opt("user", _u32)
    group = opt("group", _u32)
    values = {key for key in CONTAINER_KEYS if key in table}

    has_image = image_name is not None
    base_name = "image" if has_image else "parent"
    base_use = image_use if has_image else parent_use
    base_fields: frozenset[str] = frozenset(ImageUse if has_image else ContainerUse)
    has_base = has_image or parent_name is not None
    explicit = base_use if base_use is not None else frozenset()
    removed: set[str] = set()

    # The original checks fields in this order, so the first error reported matches it.
    for field in _CHECK_ORDER:
        added = f"added_{field}"
        if field in _VECTORS and field in values and added in values:
            raise where.error(at(added), f"field `{added}` cannot be set with `{field}` field")
        if added in values:
            if not has_base:
                if directive:
                    continue
                needs = "`parent`" if field == "mounts" else "`image` or `parent`"
                raise where.error(
                    at(added),
                    f"field `{added}` cannot be set without {needs} also being specified "
                    f"(try `{field}` instead)",
                )
            if field not in base_fields:
                # Images have no mounts: added_mounts needs a container parent.
                raise where.error(
                    at(added),
                    f"field `{added}` cannot be set without `parent` also being specified "
                    f"(try `{field}` instead)",
                )
            if field not in (base_use if base_use is not None else base_fields):
                raise where.error(
                    at(added),
                    f"field `{added}` requires `{base_name}` being specified with a `use` of "
                    f"`{field}` (try `{field}` instead)",
                )
        elif field in values and has_base and field in base_fields:
            if field in explicit:
                hint = f" (try `{added}` instead)" if field in _VECTORS else ""
                raise where.error(
                    at(field),
                    f"field `{field}` cannot be set if `{base_name}` with an explicit `use` of "
                    f"`{field}` is also specified{hint}",
                )
            removed.add(field)

    parent: ImageRef | ContainerRef | None = None
    if image_name is not None:
        use = (image_use if image_use is not None else frozenset(ImageUse)) - removed
        parent = ImageRef(image_name, frozenset(ImageUse(u) for u in use), image_use is not None)
    elif parent_name is not None:
        use = (parent_use if parent_use is not None else frozenset(ContainerUse)) - removed
        parent = ContainerRef(
            parent_name, frozenset(ContainerUse(u) for u in use), parent_use is not None
        )

    return ContainerSpec(
        parent=parent,
        layers=layers,
        added_layers=added_layers,
        environment=environment,
        added_environment=added_environment,
        mounts=mounts,
        added_mounts=added_mounts,
        network=network,
        enable_writable_file_system=enable_writable_file_system,
        working_directory=working_directory,
        user=user,
        group=group,
    )


def _container(value: object, where: Where, path: Path) -> ContainerSpec:
    table = _map(value, where, path)
    reject_unknown_keys(table, CONTAINER_KEY_ORDER, where, path)
    return parse_container_keys(table, where, path)


def _containers(value: object, where: Where, path: Path) -> dict[str, ContainerSpec]:
    table = _map(value, where, path)
    return {name: _container(spec, where, (*path, name)) for name, spec in table.items()}


def parse_container_table(toml_table: Mapping[str, object], *, location: str) -> ContainerSpec:
    """One container spec from a TOML table; only container keys are allowed."""
    return _container(dict(toml_table), TomlWhere(location), ())


def parse_containers_table(
    toml_table: Mapping[str, object], *, location: str
) -> dict[str, ContainerSpec]:
    """The ``containers`` table of a spec file: a container spec per name."""
    return _containers(dict(toml_table), TomlWhere(location), ())


# --- job ------------------------------------------------------------------------------------


def _job(table: dict[str, object], where: Where) -> JobSpec:
    reject_unknown_keys(table, _JOB_KEY_ORDER, where)
    if "program" not in table:
        raise where.error((), "missing field `program`")
    container = parse_container_keys(table, where)
    program = _str(table["program"], where, ("program",))
    arguments = _str_list(table["arguments"], where, ("arguments",)) if "arguments" in table else ()
    timeout = _u32(table["timeout"], where, ("timeout",)) if "timeout" in table else 0
    priority = (
        _int(table["priority"], where, ("priority",), -128, 127, "an i8")
        if "priority" in table
        else 0
    )
    return JobSpec(
        program=program,
        container=container,
        arguments=arguments,
        timeout=timeout or None,
        priority=priority,
    )


# --- the maelstrom-run stream ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobItem:
    """A job from the stream. ``index`` counts jobs from 1, as diagnostics name them."""

    index: int
    line: int
    column: int
    spec: JobSpec


@dataclass(frozen=True, slots=True)
class ContainersItem:
    """A ``{"containers": {...}}`` object: named containers for later jobs."""

    line: int
    column: int
    containers: Mapping[str, ContainerSpec]


StreamItem = JobItem | ContainersItem

_CONTAINERS_FIRST = re.compile(r'\{[ \t\r\n]*"containers"[ \t\r\n]*:')


class JobStreamParser:
    """Incremental parser for ``maelstrom-run`` input: concatenated JSON objects, with or
    without whitespace between them, each a job or a ``containers`` object.

    Feed text as it arrives; each call returns the items completed so far, so jobs can start
    before end of input. Call ``close`` at end of input to catch a truncated object.
    """

    def __init__(self, *, source_name: str) -> None:
        self._source = source_name
        self._splitter = ObjectSplitter()
        self._jobs = 0
        self._closed = False
        self._failed: SpecError | None = None

    def feed(self, text: str) -> list[StreamItem]:
        """The items completed by ``text``.

        Raises:
            SpecError: for the first bad item, but only once every item before it has been
                returned: if this call already has items, the error waits for the next call.
        """
        self._raise_pending()
        items: list[StreamItem] = []
        try:
            for obj_text, line, column, value in self._splitter.feed(text):
                items.append(self._item(obj_text, line, column, value))
        except JsonSyntaxError as err:
            line, column = self._splitter.position(err.offset)
            self._failed = SpecError(f"{self._source}: line {line}, column {column}: {err.message}")
        except SpecError as err:
            self._failed = err
        if not items:
            self._raise_pending()
        return items

    def close(self) -> list[StreamItem]:
        """End of input: an unfinished object is an error naming where it went wrong."""
        self._raise_pending()
        self._closed = True
        pending = self._splitter.pending()
        if pending is None:
            return []
        obj_text, line, column = pending
        # Parsing the fragment reports the first real syntax error, or the end of input.
        return [self._item(obj_text, line, column, None)]

    def _raise_pending(self) -> None:
        if self._closed:
            raise ValueError("the job stream parser was already closed")
        if self._failed is not None:
            # Nothing after a bad item is trusted: the stream stays failed.
            raise self._failed

    def _item(self, text: str, line: int, column: int, value: object) -> StreamItem:
        if value is None:
            is_containers = _CONTAINERS_FIRST.match(text) is not None
            label = "containers object" if is_containers else f"job {self._jobs + 1}"
            try:
                value, _ = parse_json_value(text)
            except JsonSyntaxError as err:
                line, column = line_column(text, err.offset, line, column)
                raise SpecError(
                    f"{self._source}: {label} (line {line}, column {column}): {err.message}"
                ) from None
        assert isinstance(value, dict)  # the splitter only hands out "{...}"
        if "containers" in value and len(value) == 1:
            where = _JsonWhere(self._source, "containers object", text, line, column)
            return ContainersItem(
                line, column, _containers(value["containers"], where, ("containers",))
            )
        self._jobs += 1
        where = _JsonWhere(self._source, f"job {self._jobs}", text, line, column)
        return JobItem(self._jobs, line, column, _job(value, where))


def parse_job_stream(text: str | Iterable[str], *, source_name: str) -> Iterator[StreamItem]:
    """Yield each job or containers object of a stream, as soon as it is complete.

    ``text`` is the whole input, or an iterable of chunks (say, lines read from a pipe).
    """
    parser = JobStreamParser(source_name=source_name)
    chunks = (text,) if isinstance(text, str) else text
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()
