"""Building layers: turn a user's layer spec into an artifact (a tar or a manifest) and its blobs.

``LayerBuilder(project_dir, cache_dir, template_vars).build(spec)`` gives a ``BuiltLayer``: the
``LayerRef`` a job names, and every digest the layer needs mapped to a local file holding those
bytes (the tar or the manifest itself, plus each large file a manifest refers to by digest).

Building is incremental. File digests are cached by (path, size, mtime_ns, inode), and a manifest
layer remembers the stat of every source it was built from, so rebuilding an unchanged layer
only walks and stats. Building blocks: call it through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cbor2

from ._braces import expand_braces
from ._digest_cache import DigestCache, FileStat
from ._elf_deps import LibraryResolver
from ._glob import Glob
from ._job import ArtifactType, LayerRef
from ._layer_spec import (
    GlobLayer,
    LayerSpec,
    PathsLayer,
    PrefixOptions,
    SharedLibraryDependenciesLayer,
    StubsLayer,
    SymlinksLayer,
    TarLayer,
)
from ._manifest import (
    MANIFEST_INLINE_LIMIT,
    Directory,
    EmptyFile,
    FileByDigest,
    InlineFile,
    ManifestEntry,
    ManifestWriter,
    Symlink,
    decode_manifest,
    encode_manifest,
    iter_manifest,
)
from ._templates import expand_template
from .digest import Sha256, sha256_bytes, to_hex
from .errors import ArtifactError, SpecError

__all__ = [
    "MANIFEST_INLINE_LIMIT",
    "STUB_MTIME",
    "BuiltLayer",
    "LayerBuilder",
    "decode_manifest",
    "encode_manifest",
    "iter_manifest",
]

STUB_MTIME = 1705000271  # the original's fixed mtime for stubs and symlinks: reproducible bytes
_STATE_FORMAT = 1
# Sources modified this recently may change again within the same mtime tick; a layer built
# from one is not remembered (see _digest_cache).
_RACY_WINDOW_NS = 100_000_000


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    """A built layer: what a job names, and where each needed artifact's bytes are."""

    layer: LayerRef
    artifacts: dict[bytes, Path]


@dataclass(frozen=True, slots=True)
class _Source:
    """One host file system object headed for ``dest`` in the layer."""

    host: str
    dest: str
    st: os.stat_result


class LayerBuilder:
    """Builds layers for one project.

    Args:
        project_dir: relative paths in specs are relative to this.
        cache_dir: the client cache; manifests, digests and library listings live here.
        template_vars: values of ``<name>`` in spec paths (cargo: ``build-dir``).
        library_resolver: finds shared libraries; the host's loader configuration by default.

    Not thread-safe: build one layer at a time per builder.
    """

    def __init__(
        self,
        project_dir: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str],
        template_vars: Mapping[str, str] | None = None,
        *,
        library_resolver: LibraryResolver | None = None,
    ) -> None:
        self._project = os.path.realpath(project_dir)
        self._cache = Path(cache_dir)
        self._manifests = self._cache / "manifests"
        self._vars = dict(template_vars or {})
        self._digests = DigestCache(self._cache)
        self._resolver = library_resolver

    @property
    def digest_cache(self) -> DigestCache:
        return self._digests

    def build(self, spec: LayerSpec) -> BuiltLayer:
        """Build ``spec`` into an artifact.

        Raises:
            SpecError: the spec is wrong: a missing path, a bad glob, an unknown template
                variable, a missing shared library. The message names the layer and the path.
            ArtifactError: a file could not be read or the cache could not be written.
        """
        try:
            built = self._build(spec)
        finally:
            self._digests.save()
        return built

    # --- per layer type ------------------------------------------------------------------------

    def _build(self, spec: LayerSpec) -> BuiltLayer:
        what = _describe(spec)
        match spec:
            case TarLayer(path=path):
                return self._build_tar(what, self._expand(path, what))
            case GlobLayer(glob=pattern, prefix_options=options):
                glob = Glob(self._expand(pattern, what), where=what)
                return self._build_sources(spec, self._glob_sources(what, glob, options))
            case PathsLayer(paths=paths, prefix_options=options):
                expanded = [self._expand(p, what) for p in paths]
                return self._build_sources(spec, self._path_sources(what, expanded, options))
            case SharedLibraryDependenciesLayer(binary_paths=binaries, prefix_options=options):
                libraries = self._libraries(what, [self._expand(b, what) for b in binaries])
                return self._build_sources(spec, self._path_sources(what, libraries, options))
            case StubsLayer(stubs=stubs):
                return self._write_manifest(self._stub_entries(what, stubs), blobs={})
            case SymlinksLayer(symlinks=symlinks):
                entries = {}
                for item in symlinks:
                    dest = _layer_path(self._expand(item.link, what), what)
                    target = os.fsencode(self._expand(item.target, what))
                    if not target:
                        raise SpecError(f"{what}: symlink {dest} has an empty target")
                    mode = stat.S_IFLNK | 0o444
                    entries[dest] = ManifestEntry(dest, mode, STUB_MTIME, 0, Symlink(target))
                return self._write_manifest(_sorted(entries.values()), blobs={})
        raise SpecError(f"unknown layer spec {spec!r}")

    def _expand(self, text: str, what: str) -> str:
        return expand_template(text, self._vars, where=what)

    def _host(self, path: str) -> str:
        return os.path.join(self._project, path)

    def _build_tar(self, what: str, path: str) -> BuiltLayer:
        host = os.path.realpath(self._host(path))
        try:
            st = os.stat(host)
        except OSError as err:
            raise SpecError(f"{what}: {path}: {err.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{what}: {path}: not a regular file")
        (digest,) = self._digests.digests([(host, FileStat.of(st))])
        return BuiltLayer(LayerRef(digest, ArtifactType.TAR), {digest: Path(host)})

    def _glob_sources(self, what: str, glob: Glob, options: PrefixOptions) -> list[_Source]:
        sources: list[_Source] = []
        base = glob.base_dir
        start = self._host(base) if base else self._project
        stack = [(start, base)]
        plain = options == PrefixOptions()
        matches = glob.matches
        lstat = os.lstat
        while stack:
            directory, rel_dir = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArtifactError(f"{what}: {directory}: {err.strerror}") from None
            prefix = f"{rel_dir}/" if rel_dir else ""
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel))
                if not matches(rel):
                    continue
                if plain:
                    # The common case, kept lean: walked names need no normalising or rewriting.
                    try:
                        st = lstat(entry.path)
                    except OSError as err:
                        raise SpecError(f"{what}: {rel}: {err.strerror}") from None
                    sources.append(_Source(entry.path, "/" + rel, st))
                else:
                    sources.append(self._source(what, rel, entry.path, options))
        return sources

    def _path_sources(self, what: str, paths: list[str], options: PrefixOptions) -> list[_Source]:
        return [self._source(what, path, self._host(path), options) for path in paths]

    def _source(self, what: str, path: str, host: str, options: PrefixOptions) -> _Source:
        try:
            st = os.stat(host) if options.follow_symlinks else os.lstat(host)
        except OSError as err:
            raise SpecError(f"{what}: {path}: {err.strerror}") from None
        dest = path
        if options.canonicalize:
            dest = os.path.realpath(host)
        if options.strip_prefix is not None:
            dest = _strip_prefix(dest, self._expand(options.strip_prefix, what))
        if options.prepend_prefix is not None:
            prefix = self._expand(options.prepend_prefix, what)
            dest = os.path.join(prefix, dest.lstrip("/")) if dest.strip("/") else prefix
        return _Source(host, _layer_path(dest, f"{what}: {path}"), st)

    def _libraries(self, what: str, binaries: list[str]) -> list[str]:
        listings = self._cache / "so-listings"
        found: set[str] = set()
        for binary in binaries:
            host = os.path.realpath(self._host(binary))
            try:
                st = os.stat(host)
            except OSError as err:
                raise SpecError(f"{what}: {binary}: {err.strerror}") from None
            (digest,) = self._digests.digests([(host, FileStat.of(st))])
            listing = listings / to_hex(digest)
            paths = _read_listing(listing)
            if paths is None or not all(os.path.lexists(p) for p in paths):
                if self._resolver is None:
                    self._resolver = LibraryResolver()
                try:
                    paths = self._resolver.dependencies(host)
                except SpecError as err:
                    raise SpecError(f"{what}: {binary}: {err}") from None
                _write_atomically(listing, cbor2.dumps(paths))
            found.update(paths)
        return sorted(found)

    def _stub_entries(self, what: str, stubs: Iterable[str]) -> list[ManifestEntry]:
        entries: dict[str, ManifestEntry] = {}
        for stub in stubs:
            for item in expand_braces(self._expand(stub, what), where=f"{what}: {stub!r}"):
                dest = _layer_path(item, f"{what}: {item!r}")
                if item.endswith("/"):
                    entry = ManifestEntry(dest, stat.S_IFDIR | 0o555, STUB_MTIME, 0, Directory())
                else:
                    entry = ManifestEntry(dest, stat.S_IFREG | 0o444, STUB_MTIME, 0, EmptyFile())
                entries[dest] = entry
        return _sorted(entries.values())

    # --- manifests from host files -------------------------------------------------------------

    def _build_sources(self, spec: LayerSpec, sources: list[_Source]) -> BuiltLayer:
        by_dest: dict[str, _Source] = {}
        for source in sources:  # a later source for the same path wins, as a later layer would
            by_dest[source.dest] = source
        ordered = sorted(by_dest.values(), key=lambda s: _path_key(s.dest))
        what = _describe(spec)
        state_path = self._manifests / "state" / f"{_spec_key(spec, self._project, self._vars)}"
        signature = _signature(ordered)
        reused = self._reuse(state_path, signature)
        if reused is not None:
            return reused

        big = [s for s in ordered if _is_big(s)]
        digests: dict[str, bytes] = {}
        blobs: dict[bytes, Path] = {}
        with ThreadPoolExecutor(1) as pool:
            # Large files hash on another thread (the digest code drops the GIL) while this one
            # reads the small files that go inline.
            canonical = [os.path.realpath(s.host) for s in big]
            hashing = pool.submit(
                self._digests.digests,
                [(c, FileStat.of(s.st)) for c, s in zip(canonical, big, strict=True)],
            )
            entries = [s if _is_big(s) else _small_entry(what, s) for s in ordered]
            for source, path, digest in zip(big, canonical, hashing.result(), strict=True):
                digests[source.dest] = digest
                blobs[digest] = Path(path)
        final = [
            e if isinstance(e, ManifestEntry) else _big_entry(e, digests[e.dest]) for e in entries
        ]
        built = self._write_manifest(final, blobs)
        newest = max((s.st.st_mtime_ns for s in ordered), default=0)
        if newest < time.time_ns() - _RACY_WINDOW_NS:
            self._remember(state_path, signature, built)
        return built

    def _reuse(self, state_path: Path, signature: bytes) -> BuiltLayer | None:
        try:
            state = cbor2.loads(state_path.read_bytes())
            if state["format"] != _STATE_FORMAT or state["sources"] != signature:
                return None
            digest = state["manifest"]
            manifest = self._manifest_path(digest)
            if not manifest.is_file():
                return None
            artifacts = {digest: manifest}
            artifacts.update({d: Path(p) for d, p in state["blobs"]})
        except Exception:  # a missing or damaged state only means "build it again"
            return None
        return BuiltLayer(LayerRef(digest, ArtifactType.MANIFEST), artifacts)

    def _remember(self, state_path: Path, signature: bytes, built: BuiltLayer) -> None:
        digest = built.layer.digest
        blobs = [[d, str(p)] for d, p in built.artifacts.items() if d != digest]
        doc = {"format": _STATE_FORMAT, "sources": signature, "manifest": digest, "blobs": blobs}
        _write_atomically(state_path, cbor2.dumps(doc))

    def _manifest_path(self, digest: bytes) -> Path:
        return self._manifests / f"{to_hex(digest)}.manifest"

    def _write_manifest(self, entries: list[ManifestEntry], blobs: dict[bytes, Path]) -> BuiltLayer:
        try:
            return self._write_manifest_file(entries, blobs)
        except OSError as err:
            raise ArtifactError(f"{self._manifests}: cannot write a manifest: {err}") from None

    def _write_manifest_file(
        self, entries: list[ManifestEntry], blobs: dict[bytes, Path]
    ) -> BuiltLayer:
        self._manifests.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".manifest", dir=self._manifests)
        try:
            with os.fdopen(fd, "wb") as raw:
                out = _HashingWriter(raw)
                writer = ManifestWriter(out)
                for entry in entries:
                    writer.write(entry)
            digest = out.hash.digest()
            final = self._manifest_path(digest)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        artifacts = {digest: final}
        artifacts.update(blobs)
        return BuiltLayer(LayerRef(digest, ArtifactType.MANIFEST), artifacts)


class _HashingWriter:
    """A write-only stream that hashes what passes through it."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.hash = Sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self._out.write(data)


def _small_entry(what: str, source: _Source) -> ManifestEntry:
    st, dest = source.st, source.dest
    mtime = st.st_mtime_ns // 1_000_000_000
    if stat.S_ISDIR(st.st_mode):
        return ManifestEntry(dest, st.st_mode, mtime, 0, Directory())
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(os.fsencode(source.host))
        except OSError as err:
            raise ArtifactError(f"{what}: {source.host}: {err.strerror}") from None
        return ManifestEntry(dest, st.st_mode, mtime, 0, Symlink(target))
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"{what}: {source.host}: not a file, directory or symlink")
    try:
        with open(source.host, "rb", buffering=0) as f:
            data = f.read(st.st_size + 1)
    except OSError as err:
        raise ArtifactError(f"{what}: {source.host}: {err.strerror}") from None
    if len(data) != st.st_size:
        raise ArtifactError(f"{what}: {source.host}: file changed while the layer was built")
    return ManifestEntry(dest, st.st_mode, mtime, st.st_size, InlineFile(data))


def _is_big(source: _Source) -> bool:
    return stat.S_ISREG(source.st.st_mode) and source.st.st_size > MANIFEST_INLINE_LIMIT


def _big_entry(source: _Source, digest: bytes) -> ManifestEntry:
    st = source.st
    mtime = st.st_mtime_ns // 1_000_000_000
    return ManifestEntry(source.dest, st.st_mode, mtime, st.st_size, FileByDigest(digest))


def _signature(sources: list[_Source]) -> bytes:
    """A digest of every source's path and stat: equal only if no source can have changed."""
    rows = [
        (s.dest, s.host, s.st.st_mode, s.st.st_size, s.st.st_mtime_ns, s.st.st_ino, s.st.st_dev)
        for s in sources
    ]
    return sha256_bytes(cbor2.dumps(rows))


def _layer_path(path: str, where: str) -> str:
    """``path`` as an absolute, normalised in-layer path."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise SpecError(f"{where}: '..' is not allowed in a layer path")
    if not parts:
        raise SpecError(f"{where}: the path in the layer would be '/' itself")
    return "/" + "/".join(parts)


def _strip_prefix(path: str, prefix: str) -> str:
    """Remove ``prefix`` by whole components, as Rust's ``Path::strip_prefix``; else no-op."""
    if path.startswith("/") != prefix.startswith("/"):
        return path
    have = [p for p in path.split("/") if p not in ("", ".")]
    want = [p for p in prefix.split("/") if p not in ("", ".")]
    if have[: len(want)] != want:
        return path
    return "/".join(have[len(want) :])


def _path_key(path: str) -> str:
    # Component-wise order (every directory right before its contents) is string order with
    # "/" ranked below every other character; names never hold NUL.
    return path.replace("/", "\0")


def _sorted(entries: Iterable[ManifestEntry]) -> list[ManifestEntry]:
    return sorted(entries, key=lambda e: _path_key(e.path))


def _describe(spec: LayerSpec) -> str:
    match spec:
        case TarLayer(path=path):
            return f"tar layer {path!r}"
        case GlobLayer(glob=glob):
            return f"glob layer {glob!r}"
        case PathsLayer(paths=paths):
            return f"paths layer {list(paths)!r}"[:120]
        case StubsLayer(stubs=stubs):
            return f"stubs layer {list(stubs)!r}"[:120]
        case SymlinksLayer():
            return "symlinks layer"
        case SharedLibraryDependenciesLayer(binary_paths=binaries):
            return f"shared_library_dependencies layer {list(binaries)!r}"[:120]
    return "layer"


def _spec_key(spec: LayerSpec, project: str, variables: Mapping[str, str]) -> str:
    text = repr((project, spec, sorted(variables.items())))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _read_listing(path: Path) -> list[str] | None:
    try:
        paths = cbor2.loads(path.read_bytes())
    except Exception:  # missing or damaged: resolve again
        return None
    if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
        return paths
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        raise ArtifactError(f"{path}: cannot write: {err.strerror}") from None
