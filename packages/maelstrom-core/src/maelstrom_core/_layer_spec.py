"""Layer specs as users write them (maelstrom-features.md §2.5), before any file is read.

The spec parser (TOML and JSON) produces these; the layer builder turns each into an artifact.
Paths may still hold template variables such as ``<build-dir>``; the builder expands them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GlobLayer",
    "LayerSpec",
    "PathsLayer",
    "PrefixOptions",
    "SharedLibraryDependenciesLayer",
    "StubsLayer",
    "SymlinkSpec",
    "SymlinksLayer",
    "TarLayer",
]


@dataclass(frozen=True, slots=True)
class PrefixOptions:
    """Path rewriting, applied in this order: follow, canonicalize, strip, prepend."""

    follow_symlinks: bool = False
    canonicalize: bool = False
    strip_prefix: str | None = None
    prepend_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class TarLayer:
    path: str  # relative to the project dir


@dataclass(frozen=True, slots=True)
class GlobLayer:
    glob: str  # globset syntax, matched against project-relative paths
    prefix_options: PrefixOptions = PrefixOptions()


@dataclass(frozen=True, slots=True)
class PathsLayer:
    paths: tuple[str, ...]
    prefix_options: PrefixOptions = PrefixOptions()


@dataclass(frozen=True, slots=True)
class StubsLayer:
    stubs: tuple[str, ...]  # brace-expanded; a trailing "/" makes an empty directory


@dataclass(frozen=True, slots=True)
class SymlinkSpec:
    link: str
    target: str


@dataclass(frozen=True, slots=True)
class SymlinksLayer:
    symlinks: tuple[SymlinkSpec, ...]


@dataclass(frozen=True, slots=True)
class SharedLibraryDependenciesLayer:
    binary_paths: tuple[str, ...]
    prefix_options: PrefixOptions = PrefixOptions()


LayerSpec = (
    TarLayer | GlobLayer | PathsLayer | StubsLayer | SymlinksLayer | SharedLibraryDependenciesLayer
)
