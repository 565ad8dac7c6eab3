"""The layer builder: every layer type, prefix options, templates, errors and incremental builds."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from maelstrom_core._job import ArtifactType
from maelstrom_core._layer_spec import (
    GlobLayer,
    PathsLayer,
    PrefixOptions,
    SharedLibraryDependenciesLayer,
    StubsLayer,
    SymlinksLayer,
    SymlinkSpec,
    TarLayer,
)
from maelstrom_core._manifest import (
    Directory,
    EmptyFile,
    FileByDigest,
    InlineFile,
    ManifestEntry,
    Symlink,
)
from maelstrom_core._templates import expand_template
from maelstrom_core.errors import SpecError
from maelstrom_core.layers import STUB_MTIME, BuiltLayer, LayerBuilder, decode_manifest

OLD = 1_600_000_000
BIG = 300 * 1024


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    files = {
        "src/a.py": b"print('a')\n",
        "src/pkg/b.py": b"b = 1\n",
        "src/pkg/data.txt": b"data",
        "src/empty.py": b"",
        "big.bin": bytes(range(256)) * (BIG // 256),
        "README": b"readme",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink("a.py", root / "src/link.py")
    for path in [*root.rglob("*"), root]:
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return root


def builder(project: Path, **vars: str) -> LayerBuilder:
    return LayerBuilder(project, project.parent / "cache", vars)


def entries(built: BuiltLayer) -> dict[str, ManifestEntry]:
    assert built.layer.type is ArtifactType.MANIFEST
    data = built.artifacts[built.layer.digest].read_bytes()
    assert hashlib.sha256(data).digest() == built.layer.digest
    return {e.path: e for e in decode_manifest(data)}


def test_glob_layer(project: Path) -> None:
    built = builder(project).build(GlobLayer("src/**"))
    got = entries(built)
    assert sorted(got) == [
        "/src/a.py",
        "/src/empty.py",
        "/src/link.py",
        "/src/pkg",
        "/src/pkg/b.py",
        "/src/pkg/data.txt",
    ]
    assert got["/src/a.py"] == ManifestEntry(
        "/src/a.py", os.stat(project / "src/a.py").st_mode, OLD, 11, InlineFile(b"print('a')\n")
    )
    assert got["/src/empty.py"].data == InlineFile(b"")
    assert got["/src/link.py"].data == Symlink(b"a.py")
    assert got["/src/pkg"].data == Directory()
    assert list(got) == sorted(got, key=lambda p: p.split("/"))  # parents first, sorted


def test_glob_syntax_in_a_layer(project: Path) -> None:
    got = entries(builder(project).build(GlobLayer("*.py")))  # * crosses "/" as in globset
    assert sorted(got) == ["/src/a.py", "/src/empty.py", "/src/link.py", "/src/pkg/b.py"]
    got = entries(builder(project).build(GlobLayer("{README,src/pkg/*.txt}")))
    assert sorted(got) == ["/README", "/src/pkg/data.txt"]


def test_large_files_go_by_digest_as_separate_artifacts(project: Path) -> None:
    built = builder(project).build(PathsLayer(("big.bin", "README")))
    got = entries(built)
    data = (project / "big.bin").read_bytes()
    digest = hashlib.sha256(data).digest()
    assert got["/big.bin"].data == FileByDigest(digest)
    assert got["/big.bin"].size == len(data)
    assert built.artifacts[digest] == project / "big.bin"
    assert set(built.artifacts) == {built.layer.digest, digest}


def test_paths_layer_kinds(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "abs.txt"
    outside.write_bytes(b"abs")
    got = entries(builder(project).build(PathsLayer(("src/link.py", "src/pkg", str(outside)))))
    assert got["/src/link.py"].data == Symlink(b"a.py")
    assert got["/src/pkg"].data == Directory()  # a directory is an empty directory
    assert "/src/pkg/b.py" not in got
    assert got[str(outside)].data == InlineFile(b"abs")


def test_follow_symlinks(project: Path) -> None:
    spec = PathsLayer(("src/link.py",), PrefixOptions(follow_symlinks=True))
    got = entries(builder(project).build(spec))
    assert got["/src/link.py"].data == InlineFile(b"print('a')\n")
    assert stat.S_ISREG(got["/src/link.py"].mode)


def test_canonicalize_strip_and_prepend(project: Path) -> None:
    real = os.path.realpath(project)
    opts = PrefixOptions(canonicalize=True)
    got = entries(builder(project).build(PathsLayer(("src/link.py",), opts)))
    assert list(got) == [f"{real}/src/a.py"]  # canonicalize resolves the link in the path
    opts = PrefixOptions(strip_prefix="src", prepend_prefix="/opt/app")
    got = entries(builder(project).build(PathsLayer(("src/a.py", "README"), opts)))
    assert sorted(got) == ["/opt/app/README", "/opt/app/a.py"]  # strip is a no-op on README
    opts = PrefixOptions(prepend_prefix="/root")
    got = entries(builder(project).build(PathsLayer((str(project / "README"),), opts)))
    assert list(got) == [f"/root{project}/README"]  # an absolute path is re-rooted


def test_prefix_options_apply_in_the_original_order(project: Path) -> None:
    # canonicalize runs before strip_prefix: stripping the real project dir only works after it,
    # and prepend runs last, so the stripped path is what gets the prefix.
    real = os.path.realpath(project)
    opts = PrefixOptions(
        follow_symlinks=True, canonicalize=True, strip_prefix=real, prepend_prefix="/p"
    )
    got = entries(builder(project).build(PathsLayer(("src/link.py",), opts)))
    assert list(got) == ["/p/src/a.py"]
    assert got["/p/src/a.py"].data == InlineFile(b"print('a')\n")
    # strip_prefix only matches whole components
    opts = PrefixOptions(strip_prefix="sr")
    assert list(entries(builder(project).build(PathsLayer(("src/a.py",), opts)))) == ["/src/a.py"]


def test_stubs(project: Path) -> None:
    built = builder(project).build(StubsLayer(("/dev/{null,zero}", "/{proc,tmp}/", "x/y")))
    got = entries(built)
    assert got == {
        "/dev/null": ManifestEntry("/dev/null", stat.S_IFREG | 0o444, STUB_MTIME, 0, EmptyFile()),
        "/dev/zero": ManifestEntry("/dev/zero", stat.S_IFREG | 0o444, STUB_MTIME, 0, EmptyFile()),
        "/proc": ManifestEntry("/proc", stat.S_IFDIR | 0o555, STUB_MTIME, 0, Directory()),
        "/tmp": ManifestEntry("/tmp", stat.S_IFDIR | 0o555, STUB_MTIME, 0, Directory()),
        "/x/y": ManifestEntry("/x/y", stat.S_IFREG | 0o444, STUB_MTIME, 0, EmptyFile()),
    }
    again = builder(project).build(StubsLayer(("/{proc,tmp}/", "/dev/{null,zero}", "x/y")))
    assert again.layer == built.layer  # order-independent and reproducible


def test_symlinks(project: Path) -> None:
    spec = SymlinksLayer((SymlinkSpec("/usr/bin/py", "/usr/bin/python3"), SymlinkSpec("a", "b")))
    got = entries(builder(project).build(spec))
    assert got["/usr/bin/py"] == ManifestEntry(
        "/usr/bin/py", stat.S_IFLNK | 0o444, STUB_MTIME, 0, Symlink(b"/usr/bin/python3")
    )
    assert got["/a"].data == Symlink(b"b")


def test_tar_layer(project: Path) -> None:
    tar = project / "layer.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", str(project), "README"], check=True)
    built = builder(project).build(TarLayer("layer.tar"))
    digest = hashlib.sha256(tar.read_bytes()).digest()
    assert built.layer.digest == digest
    assert built.layer.type is ArtifactType.TAR
    assert built.artifacts == {digest: tar}


def test_templates_in_every_path_kind(project: Path) -> None:
    b = builder(project, **{"build-dir": "src"})
    assert list(entries(b.build(PathsLayer(("<build-dir>/a.py",))))) == ["/src/a.py"]
    assert sorted(entries(b.build(GlobLayer("<build-dir>/pkg/*"))))[0] == "/src/pkg/b.py"
    assert list(entries(b.build(StubsLayer(("/<build-dir>/{x,y}",))))) == ["/src/x", "/src/y"]
    link = entries(b.build(SymlinksLayer((SymlinkSpec("/l", "<build-dir>/t"),))))
    assert link["/l"].data == Symlink(b"src/t")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<build-dir>/x", "target/debug/x"),
        ("<<build-dir>", "<build-dir>"),
        ("<<<build-dir>", "<target/debug"),
        ("<<<<x", "<<x"),
        ("a>b", "a>b"),
        ("no vars", "no vars"),
    ],
)
def test_template_escapes(text: str, expected: str) -> None:
    assert expand_template(text, {"build-dir": "target/debug"}, where="w") == expected


def test_unknown_template_variable(project: Path) -> None:
    with pytest.raises(SpecError, match=r"paths layer .*unknown template variable <nope>"):
        builder(project).build(PathsLayer(("<nope>/a",)))
    with pytest.raises(SpecError, match="does not open <name>"):
        expand_template("a<b", {}, where="w")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (PathsLayer(("missing.txt",)), r"paths layer \['missing.txt'\]: missing.txt: No such file"),
        (TarLayer("missing.tar"), "tar layer 'missing.tar': missing.tar: No such file"),
        (TarLayer("src"), "not a regular file"),
        (GlobLayer("src/[x"), "glob layer 'src/\\[x': invalid glob"),
        (StubsLayer(("/a/{b",)), "never closed"),
        (StubsLayer(("/../x",)), "'..' is not allowed"),
        (PathsLayer(("src/a.py",), PrefixOptions(strip_prefix="src/a.py")), "'/' itself"),
        (SharedLibraryDependenciesLayer(("README",)), "README: .*not an ELF file"),
        (SharedLibraryDependenciesLayer(("nope",)), "nope: No such file"),
    ],
)
def test_errors_name_the_layer_and_path(project: Path, spec: object, message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        builder(project).build(spec)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def test_broken_symlink_followed_is_an_error(project: Path) -> None:
    os.symlink("nowhere", project / "dangling")
    with pytest.raises(SpecError, match="dangling: No such file"):
        builder(project).build(PathsLayer(("dangling",), PrefixOptions(follow_symlinks=True)))


def test_glob_without_matches_is_an_empty_layer(project: Path) -> None:
    assert entries(builder(project).build(GlobLayer("nothing/**"))) == {}


def test_same_tree_same_digest_in_another_process(project: Path) -> None:
    built = builder(project).build(GlobLayer("**"))
    script = (
        "import sys; from maelstrom_core.layers import LayerBuilder;"
        "from maelstrom_core._layer_spec import GlobLayer;"
        "b = LayerBuilder(sys.argv[1], sys.argv[2], {});"
        "print(b.build(GlobLayer('**')).layer.digest.hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(project), str(project.parent / "cache2")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == built.layer.digest.hex()


def test_rebuild_of_unchanged_layer_reads_no_file(project: Path) -> None:
    spec = GlobLayer("**")
    first = builder(project).build(spec)
    # Swap bytes behind the builder's back with stat unchanged: a rebuild that read files again
    # would produce another manifest.
    for name in ("src/a.py", "big.bin"):
        path = project / name
        st = os.stat(path)
        data = path.read_bytes()
        path.write_bytes(bytes(len(data)))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = builder(project).build(spec)
    assert second == first


def test_rebuild_after_change(project: Path) -> None:
    spec = GlobLayer("**")
    b = builder(project)
    first = b.build(spec)
    (project / "src/a.py").write_bytes(b"changed\n")
    os.utime(project / "src/a.py", (OLD + 5, OLD + 5))
    second = b.build(spec)
    assert second.layer != first.layer
    assert entries(second)["/src/a.py"].data == InlineFile(b"changed\n")
    assert b.digest_cache.hits >= 1  # big.bin was not hashed again
    (project / "new.txt").write_bytes(b"n")
    assert "/new.txt" in entries(b.build(spec))


def test_real_binary_with_its_shared_libraries(project: Path) -> None:
    ls = shutil.which("ls") or "/bin/ls"
    b = builder(project)
    spec = SharedLibraryDependenciesLayer((ls,), PrefixOptions(follow_symlinks=True))
    libs = entries(b.build(spec))
    names = {os.path.basename(p) for p in libs}
    assert "libc.so.6" in names
    assert any(n.startswith("ld-linux") for n in names)
    assert ls not in libs
    for entry in libs.values():
        assert stat.S_ISREG(entry.mode)  # followed: the loader symlink became a file
        assert isinstance(entry.data, FileByDigest | InlineFile)
    listing = list((project.parent / "cache" / "so-listings").iterdir())
    assert len(listing) == 1
    # the binary itself comes through a paths layer
    exe = entries(b.build(PathsLayer((ls,), PrefixOptions(follow_symlinks=True))))
    assert stat.S_ISREG(exe[ls].mode)
    # a second build answers from the listing cache and gives the same layer
    assert builder(project).build(spec).layer == b.build(spec).layer


def test_manifests_are_written_atomically_into_the_cache(project: Path) -> None:
    built = builder(project).build(GlobLayer("src/**"))
    path = built.artifacts[built.layer.digest]
    assert path.parent == project.parent / "cache" / "manifests"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def _can_use_userns() -> bool:
    if shutil.which("unshare") is None:
        return False
    return (
        subprocess.run(["unshare", "-Urm", "true"], capture_output=True, check=False).returncode
        == 0
    )


@pytest.mark.requires_userns
@pytest.mark.skipif(not _can_use_userns(), reason="needs user namespaces (unshare -Urm)")
async def test_built_layers_run_a_host_binary_in_a_container(project: Path, tmp_path: Path) -> None:
    from maelstrom_core._job import ExitCode, JobCompleted, JobSpec, ProcMount
    from maelstrom_core.executor import Executor

    ls = os.path.realpath(shutil.which("ls") or "/bin/ls")
    follow = PrefixOptions(follow_symlinks=True)
    b = builder(project)
    built = [
        b.build(PathsLayer((ls,), follow)),
        b.build(SharedLibraryDependenciesLayer((ls,), follow)),
        b.build(StubsLayer(("/{proc,tmp}/", "/dev/{null,zero}"))),
        b.build(GlobLayer("src/**", PrefixOptions(prepend_prefix="/app"))),
    ]
    artifacts = {d: p for layer in built for d, p in layer.artifacts.items()}

    class Source:
        async def fetch(self, digest: bytes) -> Path:
            return artifacts[digest]

    spec = JobSpec(
        program=ls,
        layers=tuple(layer.layer for layer in built),
        arguments=("/app/src", "/app/src/pkg"),
        mounts=(ProcMount("/proc"),),
    )
    async with Executor(tmp_path / "worker-cache", slots=1) as executor:
        outcome = await executor.run(spec, Source())
    assert isinstance(outcome, JobCompleted), outcome
    assert outcome.status == ExitCode(0), outcome
    listing = outcome.stdout.data.decode()
    assert "a.py" in listing
    assert "data.txt" in listing
