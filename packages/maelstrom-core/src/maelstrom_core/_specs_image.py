"""Container image names (maelstrom-features.md §3): parsed and validated, never fetched here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SpecError

__all__ = ["DockerImageName", "LocalImageName", "parse_image_name"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+\Z")


@dataclass(frozen=True, slots=True)
class DockerImageName:
    """``docker://[host[:port]/]path[:tag][@digest]``, normalised as Docker does."""

    registry: str  # "docker.io" for Docker Hub
    port: int | None
    repository: str  # "library/alpine" for "alpine" on Docker Hub
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """The host serving the registry API (Docker Hub's differs from its name)."""
        host = DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag (``latest``)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        host = self.registry if self.port is None else f"{self.registry}:{self.port}"
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return f"docker://{host}/{self.repository}{tag}{digest}"


@dataclass(frozen=True, slots=True)
class LocalImageName:
    """``oci:<path>[:<ref>]`` or ``oci-archive:<path>[:<ref>]``: parse, but cannot be fetched
    yet (the original fails the same way: "local image path not supported yet")."""

    archive: bool
    path: str
    reference: str | None

    def __str__(self) -> str:
        scheme = "oci-archive" if self.archive else "oci"
        ref = f":{self.reference}" if self.reference is not None else ""
        return f"{scheme}:{self.path}{ref}"


def parse_image_name(name: str) -> DockerImageName | LocalImageName:
    """Parse an image URI; raise ``SpecError`` (message without location) when invalid."""
    if name.startswith("docker://"):
        return _parse_docker(name, name.removeprefix("docker://"))
    for scheme, archive in (("oci-archive:", True), ("oci:", False)):
        if name.startswith(scheme):
            path, sep, ref = name.removeprefix(scheme).partition(":")
            if not path:
                raise _bad(name, "the path is empty")
            if sep and not ref:
                raise _bad(name, "the reference after ':' is empty")
            return LocalImageName(archive, path, ref if sep else None)
    raise _bad(name, 'expected it to start with "docker://", "oci:" or "oci-archive:"')


def _parse_docker(name: str, rest: str) -> DockerImageName:
    rest, at, digest = rest.partition("@")
    if at and not _DIGEST.match(digest):
        raise _bad(name, f"invalid digest {digest!r}")
    tag: str | None = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise _bad(name, f"invalid tag {tag!r}")
    components = rest.split("/")
    registry, port = DOCKER_HUB, None
    first = components[0]
    if len(components) > 1 and ("." in first or ":" in first or first == "localhost"):
        host, has_port, port_text = first.partition(":")
        if not _HOST.match(host):
            raise _bad(name, f"invalid registry host {host!r}")
        if has_port:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise _bad(name, f"invalid registry port {port_text!r}")
            port = int(port_text)
        registry = host
        components = components[1:]
    for component in components:
        if not _COMPONENT.match(component):
            raise _bad(name, f"invalid repository name component {component!r}")
    if registry == DOCKER_HUB and len(components) == 1:
        components = ["library", *components]
    return DockerImageName(registry, port, "/".join(components), tag, digest if at else None)


def _bad(name: str, why: str) -> SpecError:
    return SpecError(f"failed to parse image name {name!r}: {why}")
