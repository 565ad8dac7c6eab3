"""The go tool and go test binaries: module root, ``go list``, ``go test -c``, listing, output.

Process-running functions are async (trio) and take the environment to run go with; the
rest is pure: naming, the job's command line, skip detection and fixture stripping.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import trio

from maelstrom_core.errors import MaelstromError, UsageError

__all__ = [
    "BUILD_DIR_NAME",
    "GoBuild",
    "GoCommandFailed",
    "GoPackage",
    "binary_path",
    "build_stamp",
    "build_test_binary",
    "container_package_dir",
    "find_module_root",
    "go_environment",
    "go_test_c_args",
    "is_skip_output",
    "job_arguments",
    "list_packages",
    "list_test_binary",
    "parse_go_list",
    "quote_meta",
    "reuse_allowed",
    "short_name",
    "strip_fixture_output",
    "toolchain_identity",
]

#: The hidden per-project directory: ``state/``, ``cache/`` and ``cache/test-binaries/``.
BUILD_DIR_NAME = ".maelstrom-go-test"

# Every file list of `go list -json` that feeds the compiler or linker of a package's own
# (non-test) code, and the extra ones that feed only its test binary.
_BUILD_FILE_KEYS = (
    "GoFiles",
    "CgoFiles",
    "CompiledGoFiles",
    "CFiles",
    "CXXFiles",
    "MFiles",
    "HFiles",
    "FFiles",
    "SFiles",
    "SwigFiles",
    "SwigCXXFiles",
    "SysoFiles",
    "EmbedFiles",
)
_TEST_FILE_KEYS = ("TestGoFiles", "XTestGoFiles", "TestEmbedFiles", "XTestEmbedFiles")

_STAMP_FORMAT = 1


class GoCommandFailed(MaelstromError):
    """A go command failed; ``status`` is its exit status and ``output`` what it printed."""

    def __init__(self, message: str, *, status: int, output: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.output = tuple(output)


@dataclass(frozen=True, slots=True)
class GoPackage:
    """One package of the main module, as ``go list -json`` describes it.

    Attributes:
        import_path: e.g. ``example.com/m/kv``.
        name: the ``package`` clause.
        dir: the package's directory on the host (absolute).
        rel_path: ``dir`` relative to the module root, ``/``-separated; ``""`` at the root.
        has_tests: it has ``_test.go`` files (internal or external).
        imports: every import path the package and its tests use, directly or not (the
            tests' own imports only directly: see ``build_stamp``).
        build_imports: every import path its non-test build uses, directly or not.
        own_files: absolute paths of every file that goes into its test binary from this
            package itself.
        build_files: absolute paths of the files of its non-test build (what a package
            importing it compiles).
    """

    import_path: str
    name: str
    dir: Path
    rel_path: str
    has_tests: bool
    imports: tuple[str, ...]
    build_imports: tuple[str, ...]
    own_files: tuple[Path, ...]
    build_files: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class GoBuild:
    """What building one package's test binary gave.

    ``binary`` is ``None`` when the package has no tests; ``reused`` is true when the binary
    was already up to date and go was not run; ``output`` is what go printed.
    """

    package: GoPackage
    binary: Path | None
    reused: bool
    output: tuple[str, ...]


# --- the module and its packages ------------------------------------------------------------


def find_module_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``go.mod``."""
    start = start.absolute()
    for directory in (start, *start.parents):
        if (directory / "go.mod").is_file():
            return directory
    raise UsageError(f"no go.mod in {start} or any parent directory: not inside a Go module")


def go_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run go in: ours, with go's colour and prompts off."""
    env = dict(os.environ if base is None else base)
    # A credential prompt would hang the build with nobody to answer it.
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


async def _kill(process: trio.Process) -> None:
    # Stopping a build (stop-after, Ctrl-C) should not wait for go to notice a SIGTERM.
    process.kill()


async def _run_go(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], *, merge_stderr: bool
) -> tuple[int, bytes, bytes]:
    try:
        stderr: dict[str, Any] = (
            {"stderr": subprocess.STDOUT} if merge_stderr else {"capture_stderr": True}
        )
        result = await trio.run_process(
            ["go", *args],
            cwd=cwd,
            env=env,
            check=False,
            capture_stdout=True,
            stdin=subprocess.DEVNULL,
            deliver_cancel=_kill,
            **stderr,
        )
    except FileNotFoundError:
        raise UsageError("cannot run go: no go command on PATH (install Go)") from None
    except OSError as err:
        raise UsageError(f"cannot run go: {err.strerror}") from None
    return result.returncode, result.stdout or b"", result.stderr or b""


def _exit_status(returncode: int) -> int:
    # A signal is reported as shells do.
    return 128 - returncode if returncode < 0 else returncode


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").splitlines()


async def list_packages(root: Path, env: Mapping[str, str]) -> list[GoPackage]:
    """Every package of the main module at ``root`` (``go list -json ./...``).

    Nested modules are not part of ``./...``, so they are not tested, as with ``go test``.
    """
    code, out, err = await _run_go(["list", "-json", "./..."], root, env, merge_stderr=False)
    if code != 0:
        lines = _lines(err)
        first = next((line for line in lines if line.strip()), "no output")
        raise GoCommandFailed(
            f"go list -json ./... failed in {root} (exit {_exit_status(code)}): {first}",
            status=_exit_status(code),
            output=lines,
        )
    return parse_go_list(out.decode("utf-8", "replace"), root)


def parse_go_list(text: str, root: Path) -> list[GoPackage]:
    """The packages of ``go list -json``'s output: a stream of JSON objects."""
    decoder = json.JSONDecoder()
    packages: list[GoPackage] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return packages
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise GoCommandFailed(
                f"go list -json: unreadable output at offset {pos}: {err.msg}", status=1
            ) from None
        if not isinstance(item, dict):
            raise GoCommandFailed(f"go list -json: expected an object at offset {pos}", status=1)
        packages.append(_package(item, root))


def _strings(item: Mapping[str, object], key: str) -> list[str]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GoCommandFailed(f"go list -json: {key} is not a list of strings", status=1)
    return list(value)


def _string(item: Mapping[str, object], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise GoCommandFailed(f"go list -json: a package has no {key}", status=1)
    return value


def _package(item: Mapping[str, object], root: Path) -> GoPackage:
    import_path = _string(item, "ImportPath")
    directory = Path(_string(item, "Dir"))
    try:
        rel = directory.relative_to(root).as_posix()
    except ValueError:
        raise GoCommandFailed(
            f"go list -json: package {import_path} is in {directory}, outside the module {root}",
            status=1,
        ) from None
    build = sorted({f for key in _BUILD_FILE_KEYS for f in _strings(item, key)})
    tests = sorted({f for key in _TEST_FILE_KEYS for f in _strings(item, key)})
    build_imports = {*_strings(item, "Deps"), *_strings(item, "Imports")}
    imports = {*build_imports, *_strings(item, "TestImports"), *_strings(item, "XTestImports")}
    has_tests = bool(_strings(item, "TestGoFiles") or _strings(item, "XTestGoFiles"))
    # A directory with only external tests ("package x_test") is named "x" by go list.
    name = item.get("Name")
    return GoPackage(
        import_path=import_path,
        name=name if isinstance(name, str) else "",
        dir=directory,
        rel_path="" if rel == "." else rel,
        has_tests=has_tests,
        imports=tuple(sorted(imports)),
        build_imports=tuple(sorted(build_imports)),
        own_files=tuple(directory / f for f in sorted({*build, *tests})),
        build_files=tuple(directory / f for f in build),
    )


# --- building ---------------------------------------------------------------------------------


def short_name(import_path: str) -> str:
    """The test binary's base name, as go names it: the last import-path element, or the one
    before it when the last is a major-version suffix such as ``v2``."""
    parts = import_path.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def binary_path(binaries_dir: Path, package: GoPackage) -> Path:
    """``<cache>/test-binaries/<pkg-rel-path>/<short>.test``."""
    directory = binaries_dir / package.rel_path if package.rel_path else binaries_dir
    return directory / f"{short_name(package.import_path)}.test"


def reuse_allowed(root: Path) -> bool:
    """Whether an up-to-date check over the module's own files is sound.

    Files from outside the module reach a build through go.mod/go.sum (module cache, which is
    read-only and versioned) and the toolchain, all in the stamp; a workspace, a vendor tree
    or a ``replace`` by a local directory brings in files the stamp does not see, so then go
    decides every time.
    """
    if (root / "vendor").is_dir() or (root / "go.work").exists() or os.environ.get("GOWORK"):
        return False
    try:
        gomod = (root / "go.mod").read_text("utf-8", "replace")
    except OSError:
        return False
    return re.search(r"=>\s*(\.{1,2}/|/|\.{1,2}\s*$)", gomod, re.MULTILINE) is None


def _file_key(path: Path) -> list[object]:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns, st.st_ino]


def build_stamp(
    package: GoPackage,
    by_import_path: Mapping[str, GoPackage],
    *,
    root: Path,
    toolchain: str,
    go_args: Sequence[str],
) -> str:
    """A digest of everything the package's test binary is made from, as far as the module
    goes: its own files and those of every in-module package it or its tests import, directly
    or not, go.mod, go.sum, the toolchain's settings (``go env``) and the build flags."""
    files = set(package.own_files)
    # go list gives the tests' imports only directly: follow in-module ones to their own.
    seen: set[str] = set()
    pending = list(package.imports)
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        found = by_import_path.get(path)
        if found is not None and found is not package:
            files.update(found.build_files)
            pending.extend(found.build_imports)
    doc = {
        "format": _STAMP_FORMAT,
        "toolchain": toolchain,
        "args": list(go_args),
        "module": [_file_key(root / "go.mod"), _file_key(root / "go.sum")],
        "files": [_file_key(f) for f in sorted(files)],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _stamp_file(binary: Path) -> Path:
    return binary.with_name(binary.name + ".stamp")


def _binary_is_current(binary: Path, stamp: str) -> bool:
    try:
        recorded = json.loads(_stamp_file(binary).read_text("utf-8"))
        st = binary.stat()
    except (OSError, ValueError):
        return False
    # The binary's own size and mtime are recorded too: one replaced by hand is rebuilt.
    return (
        isinstance(recorded, dict)
        and recorded.get("stamp") == stamp
        and recorded.get("binary") == [st.st_size, st.st_mtime_ns]
    )


def _record_stamp(binary: Path, stamp: str) -> None:
    st = binary.stat()
    tmp = _stamp_file(binary).with_suffix(".stamp.tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "binary": [st.st_size, st.st_mtime_ns]}))
    tmp.replace(_stamp_file(binary))


async def toolchain_identity(root: Path, env: Mapping[str, str]) -> str:
    """``go env -json``: the toolchain version and every setting that changes its output."""
    code, out, err = await _run_go(["env", "-json"], root, env, merge_stderr=False)
    if code != 0:
        lines = _lines(err)
        first = next((line for line in lines if line.strip()), "no output")
        raise GoCommandFailed(
            f"go env -json failed (exit {_exit_status(code)}): {first}",
            status=_exit_status(code),
            output=lines,
        )
    try:
        settings = json.loads(out)
    except ValueError:
        raise GoCommandFailed("go env -json: unreadable output", status=1) from None
    if not isinstance(settings, dict):
        raise GoCommandFailed("go env -json: expected an object", status=1)
    # GOGCCFLAGS names a fresh temporary directory every time; what it derives from (CC,
    # CGO_CFLAGS, ...) is in the other settings.
    settings.pop("GOGCCFLAGS", None)
    return json.dumps(settings, sort_keys=True)


def go_test_c_args(output: Path, vet: str | None) -> list[str]:
    args = ["test", "-c", "-o", str(output)]
    if vet is not None:
        args.append(f"--vet={vet}")
    return args


async def build_test_binary(
    package: GoPackage,
    binaries_dir: Path,
    env: Mapping[str, str],
    *,
    vet: str | None,
    stamp: str | None,
    on_output_line: Callable[[str], None] | None = None,
) -> GoBuild:
    """``go test -c -o <binary> [--vet=..]`` in the package's directory.

    With a ``stamp`` (see ``build_stamp``) the build is skipped when the binary was made from
    exactly those inputs. A package without test files gives no binary.

    Raises:
        GoCommandFailed: go failed; ``status`` is its exit status.
    """
    if not package.has_tests:
        return GoBuild(package, None, reused=False, output=())
    binary = binary_path(binaries_dir, package)
    if stamp is not None and _binary_is_current(binary, stamp):
        return GoBuild(package, binary, reused=True, output=())
    binary.parent.mkdir(parents=True, exist_ok=True)
    _stamp_file(binary).unlink(missing_ok=True)
    # go refuses to overwrite a file that is not an object file (say, a truncated one).
    binary.unlink(missing_ok=True)
    args = go_test_c_args(binary, vet)
    code, out, _ = await _run_go(args, package.dir, env, merge_stderr=True)
    lines = _lines(out)
    if on_output_line is not None:
        for line in lines:
            on_output_line(line)
    if code != 0:
        if any("no Go files" in line for line in lines):
            return GoBuild(package, None, reused=False, output=tuple(lines))
        first = next((line for line in lines if line.strip()), "no output")
        raise GoCommandFailed(
            f"go test -c failed for {package.import_path} (exit {_exit_status(code)}): {first}",
            status=_exit_status(code),
            output=lines,
        )
    if any("[no test files]" in line for line in lines) or not binary.is_file():
        return GoBuild(package, None, reused=False, output=tuple(lines))
    if stamp is not None:
        _record_stamp(binary, stamp)
    return GoBuild(package, binary, reused=False, output=tuple(lines))


# --- listing and running ----------------------------------------------------------------------


async def list_test_binary(binary: Path, cwd: Path) -> list[str]:
    """The cases of a test binary (``-test.list=.``): tests, fuzz targets (run on their seed
    corpus) and examples with output. Benchmarks are left out: ``-test.run`` never runs them.
    """
    try:
        result = await trio.run_process(
            [str(binary), "-test.list=."],
            cwd=cwd,
            check=False,
            capture_stdout=True,
            capture_stderr=True,
            stdin=subprocess.DEVNULL,
            deliver_cancel=_kill,
        )
    except OSError as err:
        raise MaelstromError(f"cannot run {binary} -test.list=.: {err.strerror}") from None
    if result.returncode != 0:
        text = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
        first = text.splitlines()[0] if text else "no output"
        raise GoCommandFailed(
            f"{binary} -test.list=. failed (exit {_exit_status(result.returncode)}): {first}",
            status=_exit_status(result.returncode),
            output=text.splitlines(),
        )
    names = [line.strip() for line in result.stdout.decode("utf-8", "replace").splitlines()]
    # Anything else on stdout is a TestMain talking, not a case.
    return [n for n in names if _CASE_NAME.fullmatch(n)]


_CASE_NAME = re.compile(r"(Test|Fuzz|Example)\w*")
_QUOTE = re.compile(r"([\\.+*?()|\[\]{}^$])")


def quote_meta(name: str) -> str:
    """``name`` with RE2 metacharacters escaped, as Go's ``regexp.QuoteMeta`` does."""
    return _QUOTE.sub(r"\\\1", name)


def job_arguments(
    name: str, *, short: bool, fullpath: bool, extra: Iterable[str]
) -> tuple[str, ...]:
    """A test binary's arguments to run the case ``name`` alone.

    Unlike the original the name is escaped, so it is matched literally. ``-test.timeout=0``
    because maelstrom enforces the timeout itself.
    """
    return (
        "-test.run",
        f"^{quote_meta(name)}$",
        "-test.timeout=0",
        "-test.v",
        f"-test.short={str(short).lower()}",
        f"-test.fullpath={str(fullpath).lower()}",
        *extra,
    )


def is_skip_output(name: str, stdout_lines: Sequence[str]) -> bool:
    """Whether a passing run of ``name`` skipped: the last non-empty line is ``PASS`` and the
    one before it ``--- SKIP: <name> (...)``."""
    lines = [line for line in stdout_lines if line.strip()]
    return (
        len(lines) >= 2
        and lines[-1].strip() == "PASS"
        and lines[-2].startswith(f"--- SKIP: {name} ")
    )


def _rindex(lines: Sequence[str], pred: Callable[[str], bool]) -> int | None:
    for i in range(len(lines) - 1, -1, -1):
        if pred(lines[i]):
            return i
    return None


def _index(lines: Sequence[str], pred: Callable[[str], bool]) -> int | None:
    for i, line in enumerate(lines):
        if pred(line):
            return i
    return None


def strip_fixture_output(name: str, lines: Sequence[str]) -> list[str]:
    """A failed case's stdout without the testing package's own lines, per kind of case.

    * tests: drop through ``=== RUN   <name>`` and from the last ``--- FAIL: <name> ``;
    * fuzz targets: drop from the last line starting ``FAIL``;
    * examples: drop through ``--- FAIL: <name> `` and from the last line starting ``FAIL``.
    """
    out = list(lines)
    fail_line = f"--- FAIL: {name} "
    if name.startswith("Example"):
        start = _index(out, lambda s: s.startswith(fail_line))
        if start is not None:
            out = out[start + 1 :]
        end = _rindex(out, lambda s: s.startswith("FAIL"))
        return out[:end] if end is not None else out
    if name.startswith("Fuzz"):
        end = _rindex(out, lambda s: s.startswith("FAIL"))
        return out[:end] if end is not None else out
    start = _index(out, lambda s: s == f"=== RUN   {name}")
    if start is not None:
        out = out[start + 1 :]
    end = _rindex(out, lambda s: s.startswith(fail_line))
    return out[:end] if end is not None else out


def container_package_dir(package: GoPackage) -> str:
    """Where the package's directory is inside the container: ``/<module-relative path>``,
    the same place a project-relative glob layer puts its files."""
    return str(PurePosixPath("/", package.rel_path))
