"""The test listing DB: what each case did last time, so the next run can order and size itself.

Stored as ``<state-dir>/test-listing.toml`` in the original's version 3 layout, so an existing
file keeps working after switching::

    version = 3

    [my-package."my-lib(library)"."tests::adds"]
    timings = [0.013, 0.014]
    outcome = "success"

Cases are grouped by package and artifact key (cargo ``name(kind)``, go ``test``, pytest the
file); each keeps its last three run times and whether its last run failed. Runner metadata
(pytest's ``node_id`` and ``markers``) sits beside them as extra keys.

The DB is a cache: a file of an unknown version is dropped silently, and a damaged one is
dropped with a warning. Saving writes a temporary file and renames it over the old one, so a
crash never leaves half a file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final, Literal, TypeAlias

from ..errors import InternalError, MaelstromError
from ._filter import CaseInfo, Filter

__all__ = [
    "DB_FILE_NAME",
    "DB_VERSION",
    "MAX_TIMINGS",
    "PRIORITY_KNOWN_GOOD",
    "PRIORITY_NEW_OR_FAILED",
    "CaseRecord",
    "Outcome",
    "TestDb",
    "TestDbStore",
    "TomlValue",
]

DB_FILE_NAME: Final = "test-listing.toml"
DB_VERSION: Final = 3
MAX_TIMINGS: Final = 3
PRIORITY_NEW_OR_FAILED: Final = 1
PRIORITY_KNOWN_GOOD: Final = 0

Outcome: TypeAlias = Literal["success", "failure"]
TomlValue: TypeAlias = "str | int | float | bool | list[TomlValue] | dict[str, TomlValue]"

_log = logging.getLogger("maelstrom_core.testrunner")


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A case's last outcome and its recent run times in seconds (never empty)."""

    outcome: Outcome
    timings: tuple[float, ...]

    @property
    def estimated_duration(self) -> float:
        """The mean of the recent timings: the original's estimate."""
        return sum(self.timings) / len(self.timings)

    def add(self, failed: bool, seconds: float) -> CaseRecord:
        """This record after one more run; any failure in a run marks the run failed."""
        outcome: Outcome = "failure" if failed or self.outcome == "failure" else "success"
        return CaseRecord(outcome, (*self.timings, seconds)[-MAX_TIMINGS:])


@dataclass(slots=True)
class _Case:
    metadata: dict[str, TomlValue]
    when_read: CaseRecord | None  # from the file; None for a case never run
    this_run: CaseRecord | None  # accumulated since the file was read


class TestDb:
    """Cases by package, then artifact key, then case name. A plain, synchronous structure."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        self._packages: dict[str, dict[str, dict[str, _Case]]] = {}

    # -- listing -----------------------------------------------------------------------------

    def update_artifact_cases(
        self,
        package: str,
        artifact_key: str,
        cases: Iterable[str | tuple[str, Mapping[str, TomlValue]]],
    ) -> None:
        """Record the artifact's current list of cases.

        Cases not listed any more are dropped; new ones start as "new"; history of the rest
        is kept and their metadata replaced.
        """
        listed: dict[str, dict[str, TomlValue]] = {}
        for case in cases:
            if isinstance(case, str):
                listed[case] = {}
            else:
                name, metadata = case
                listed[name] = dict(metadata)
        artifact = self._packages.setdefault(package, {}).setdefault(artifact_key, {})
        for name in list(artifact):
            if name not in listed:
                del artifact[name]
        for name, metadata in listed.items():
            existing = artifact.get(name)
            if existing is None:
                artifact[name] = _Case(metadata, None, None)
            else:
                existing.metadata = metadata

    def retain_packages_and_artifacts(self, packages: Mapping[str, Iterable[str]]) -> None:
        """Drop every package not in ``packages`` and every artifact not listed under its one."""
        for package in list(self._packages):
            keep = packages.get(package)
            if keep is None:
                del self._packages[package]
                continue
            keep_keys = set(keep)
            artifacts = self._packages[package]
            for key in list(artifacts):
                if key not in keep_keys:
                    del artifacts[key]

    def count_matching_cases(
        self,
        test_filter: Filter,
        describe: Callable[[str, str, str, Mapping[str, TomlValue]], CaseInfo | None],
    ) -> int:
        """How many known cases the filter selects: the expected count before listing ends.

        ``describe(package, artifact_key, case, metadata)`` gives the filter its view of a
        case, or ``None`` for a case of a package the runner does not know (not counted).
        """
        count = 0
        for package, artifact_key, name, case in self._iter_cases():
            info = describe(package, artifact_key, name, case.metadata)
            if info is not None and test_filter.matches(info):
                count += 1
        return count

    def cases(self) -> Iterator[tuple[str, str, str]]:
        """Every (package, artifact key, case name), sorted."""
        for package, artifact_key, name, _ in self._iter_cases():
            yield package, artifact_key, name

    def metadata(self, package: str, artifact_key: str, case: str) -> Mapping[str, TomlValue]:
        return self._case(package, artifact_key, case).metadata

    # -- results -----------------------------------------------------------------------------

    def update_case(
        self, package: str, artifact_key: str, case: str, *, failed: bool, seconds: float
    ) -> None:
        """Record one run of a listed case. With ``--repeat``, call once per run."""
        if not math.isfinite(seconds) or seconds < 0:
            raise InternalError(f"bad duration {seconds!r} for {package} {case}")
        data = self._case(package, artifact_key, case)
        if data.this_run is not None:
            data.this_run = data.this_run.add(failed, seconds)
        elif data.when_read is not None:
            # The session's first run keeps the older timings but not the older outcome.
            timings = (*data.when_read.timings, seconds)[-MAX_TIMINGS:]
            data.this_run = CaseRecord("failure" if failed else "success", timings)
        else:
            data.this_run = CaseRecord("failure" if failed else "success", (seconds,))

    def get_case(self, package: str, artifact_key: str, case: str) -> CaseRecord | None:
        """What the file said about the case, or ``None`` if it was never run (or is unknown)."""
        data = self._packages.get(package, {}).get(artifact_key, {}).get(case)
        return None if data is None else data.when_read

    def scheduling_hint(
        self, package: str, artifact_key: str, case: str
    ) -> tuple[int, float | None]:
        """(priority, estimated seconds): new and last-failed cases first, LPT by the mean."""
        record = self.get_case(package, artifact_key, case)
        if record is None:
            return PRIORITY_NEW_OR_FAILED, None
        priority = PRIORITY_NEW_OR_FAILED if record.outcome == "failure" else PRIORITY_KNOWN_GOOD
        return priority, record.estimated_duration

    # -- (de)serialisation -------------------------------------------------------------------

    @classmethod
    def from_toml(cls, text: str) -> TestDb:
        """Parse a file's contents. An unknown version gives an empty DB.

        Raises:
            MaelstromError: the text is not TOML or not laid out as a version-3 DB.
        """
        table = _parse_toml(text)
        if "version" not in table:
            raise MaelstromError("missing version")
        version = table.pop("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise MaelstromError("version is not an integer")
        db = cls()
        if version != DB_VERSION:
            _log.debug("test DB has version %s, not %s: starting afresh", version, DB_VERSION)
            return db
        for package, artifacts in table.items():
            if not isinstance(artifacts, dict):
                raise MaelstromError(f"package {_key(package)} is not a table")
            for artifact_key, cases in artifacts.items():
                where = f"{_key(package)}.{_key(artifact_key)}"
                if not isinstance(cases, dict):
                    raise MaelstromError(f"artifact {where} is not a table")
                db._packages.setdefault(package, {})[artifact_key] = {
                    name: _case_from_toml(fields, f"{where}.{_key(name)}")
                    for name, fields in cases.items()
                }
            db._packages.setdefault(package, {})
        return db

    def to_toml(self) -> str:
        """The file's contents, sorted, in the original's layout."""
        lines = [f"version = {DB_VERSION}"]
        for package in sorted(self._packages):
            if package == "version":
                # v3 shares the top-level table between `version` and packages, so a package
                # literally named "version" cannot be stored; it is only timing history.
                continue
            artifacts = self._packages[package]
            if not artifacts:
                lines += ["", f"[{_key(package)}]"]
            for artifact_key in sorted(artifacts):
                cases = artifacts[artifact_key]
                if not cases:
                    lines += ["", f"[{_key(package)}.{_key(artifact_key)}]"]
                for name in sorted(cases):
                    lines += ["", f"[{_key(package)}.{_key(artifact_key)}.{_key(name)}]"]
                    lines += _case_to_toml(cases[name])
        return "\n".join(lines) + "\n"

    # -- helpers -----------------------------------------------------------------------------

    def _iter_cases(self) -> Iterator[tuple[str, str, str, _Case]]:
        for package in sorted(self._packages):
            artifacts = self._packages[package]
            for artifact_key in sorted(artifacts):
                cases = artifacts[artifact_key]
                for name in sorted(cases):
                    yield package, artifact_key, name, cases[name]

    def _case(self, package: str, artifact_key: str, case: str) -> _Case:
        try:
            return self._packages[package][artifact_key][case]
        except KeyError:
            raise InternalError(
                f"test DB has no case {package} {artifact_key} {case}: list it first"
            ) from None


def _case_from_toml(fields: object, where: str) -> _Case:
    if not isinstance(fields, dict):
        raise MaelstromError(f"case {where} is not a table")
    metadata = dict(fields)
    timings = metadata.pop("timings", None)
    if not isinstance(timings, list) or not all(_is_seconds(t) for t in timings):
        raise MaelstromError(f"case {where}: timings must be a list of non-negative seconds")
    outcome = metadata.pop("outcome", "success")
    if outcome not in ("success", "failure", "new"):
        raise MaelstromError(f"case {where}: unknown outcome {outcome!r}")
    if not timings:
        # Without a timing the case counts as never run, whatever the outcome says.
        return _Case(metadata, None, None)
    # "new" with timings should not occur; the original reads it as a failure, and so do we.
    read: Outcome = "success" if outcome == "success" else "failure"
    return _Case(metadata, CaseRecord(read, tuple(float(t) for t in timings)), None)


def _case_to_toml(case: _Case) -> list[str]:
    record = case.this_run or case.when_read
    timings = record.timings if record else ()
    lines = [f"timings = {_value(list(timings))}"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in case.metadata.items()]
    lines.append(f'outcome = "{record.outcome if record else "new"}"')
    return lines


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


# -- a TOML reader and writer for the few value types the DB holds -----------------------------


def _parse_toml(text: str) -> dict[str, object]:
    # tomllib needs about 1.5 s for the 1.6 MB a 20,000-case DB takes; the fast reader below
    # handles exactly the layout we write in a tenth of that, and hands anything else to tomllib.
    fast = _parse_our_layout(text)
    if fast is not None:
        return fast
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MaelstromError(f"not valid TOML: {err}") from None


_STRING_SOURCE = r'"(?:[^"\\\x00-\x1f\x7f]|\\(?:[btnfr"\\]|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}))*"'
_KEY_SOURCE = rf"(?:[A-Za-z0-9_-]+|{_STRING_SOURCE})"
_KEY = re.compile(_KEY_SOURCE)
_HEADER = re.compile(rf"\[((?:{_KEY_SOURCE}\.)*)({_KEY_SOURCE})\]")
_ASSIGNMENT = re.compile(rf"({_KEY_SOURCE}) = (.*)")
_STRING = re.compile(_STRING_SOURCE)
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)")
_UNESCAPE = re.compile(r"\\(?:([btnfr\"\\])|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8}))")
_SIMPLE_ESCAPES: Final[Mapping[str, str]] = {
    "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\",
}  # fmt: skip


class _NotOurs(Exception):
    """The text uses TOML beyond what we write; tomllib decides what it means."""


def _parse_our_layout(text: str) -> dict[str, object] | None:
    try:
        return _parse_lines(text)
    except _NotOurs:
        return None


def _parse_lines(text: str) -> dict[str, object]:
    root: dict[str, object] = {}
    current = root
    # Consecutive headers mostly share their package and artifact: resolve each prefix once.
    parents: dict[str, dict[str, object]] = {"": root}
    for line in text.split("\n"):
        if not line:
            continue
        header = _HEADER.fullmatch(line)
        if header:
            prefix, last = header.group(1), _key_text(header.group(2))
            parent = parents.get(prefix)
            if parent is None:
                keys = [_key_text(k.group()) for k in _KEY.finditer(prefix)]
                parent = parents[prefix] = _descend(root, keys)
            if last in parent:
                raise _NotOurs  # redefinitions and the like: tomllib knows the rules
            table: dict[str, object] = {}
            parent[last] = table
            current = table
            continue
        assignment = _ASSIGNMENT.fullmatch(line)
        if not assignment:
            raise _NotOurs
        key = _key_text(assignment.group(1))
        if key in current:
            raise _NotOurs
        current[key] = _parse_value(assignment.group(2))
    return root


def _descend(table: dict[str, object], keys: list[str]) -> dict[str, object]:
    for key in keys:
        child = table.setdefault(key, {})
        if not isinstance(child, dict):
            raise _NotOurs
        table = child
    return table


def _key_text(key: str) -> str:
    return _unquote(key) if key.startswith('"') else key


def _unquote(quoted: str) -> str:
    if "\\" not in quoted:
        return quoted[1:-1]

    def replace(m: re.Match[str]) -> str:
        if m.group(1):
            return _SIMPLE_ESCAPES[m.group(1)]
        code = int(m.group(2) or m.group(3), 16)
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            raise _NotOurs
        return chr(code)

    return _UNESCAPE.sub(replace, quoted[1:-1])


def _parse_value(text: str) -> object:
    if text.startswith('"'):
        if not _STRING.fullmatch(text):
            raise _NotOurs
        return _unquote(text)
    if text.startswith("["):
        if text == "[]":
            return []
        if not text.endswith("]"):
            raise _NotOurs
        inner = text[1:-1]
        if '"' in inner:
            # Strings may hold ", " themselves: split only where a whole string ends.
            items = [m.group() for m in _STRING.finditer(inner)]
            if ", ".join(items) != inner:
                raise _NotOurs
            return [_unquote(item) for item in items]
        return [_parse_number(item) for item in inner.split(", ")]
    if text in ("true", "false"):
        return text == "true"
    return _parse_number(text)


def _parse_number(text: str) -> int | float:
    if _INTEGER.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    raise _NotOurs


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES: Final[Mapping[str, str]] = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)  # shortest round-tripping form; always has "." or "e"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"


# -- the file -----------------------------------------------------------------------------------


class TestDbStore:
    """Reads and writes ``<state_dir>/test-listing.toml``."""

    __test__: ClassVar[bool] = False

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / DB_FILE_NAME

    def load(self, on_warning: Callable[[str], None] | None = None) -> TestDb:
        """The stored DB; an empty one if there is none, or (after a warning) if it is damaged.

        Args:
            on_warning: receives the one-line warning; by default it is logged.
        """
        warn = on_warning if on_warning is not None else _log.warning
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return TestDb()
        except OSError as err:
            warn(f"cannot read test DB {self.path}: {err.strerror or err}; starting afresh")
            return TestDb()
        try:
            return TestDb.from_toml(data.decode("utf-8"))
        except UnicodeDecodeError:
            warn(f"ignoring damaged test DB {self.path}: not UTF-8 text; starting afresh")
        except MaelstromError as err:
            warn(f"ignoring damaged test DB {self.path}: {err}; starting afresh")
        return TestDb()

    def save(self, db: TestDb) -> None:
        """Write the DB atomically: a temporary file in the same directory, then a rename.

        Raises:
            MaelstromError: the state directory cannot be created or written.
        """
        text = db.to_toml()
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".test-listing.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as temp:
                    temp.write(text)
                    temp.flush()
                    os.fchmod(temp.fileno(), 0o644)
                    os.fsync(temp.fileno())
                os.replace(temp_name, self.path)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise MaelstromError(
                f"cannot write test DB {self.path}: {err.strerror or err}"
            ) from None
