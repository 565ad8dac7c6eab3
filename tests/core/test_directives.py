"""Spec files: parsing with file:line errors, the directive fold (§4.5), --init."""

from __future__ import annotations

from pathlib import Path

import pytest

from maelstrom_core._job import Network, TmpMount
from maelstrom_core._layer_spec import StubsLayer, TarLayer
from maelstrom_core.errors import SpecError
from maelstrom_core.specs import (
    ContainerRef,
    ContainerStore,
    ContainerUse,
    EnvironmentSpec,
    ImageConfig,
    ImageRef,
    JobSpec,
)
from maelstrom_core.testrunner import CARGO, GO, CaseInfo, SpecFile, init_spec_file

CASE = CaseInfo(package="foo", name="tests::adds", artifact_name="foo", artifact_kind="library")
OTHER = CaseInfo(package="bar", name="it_works", artifact_name="bar", artifact_kind="test")


def parse(text: str) -> SpecFile:
    return SpecFile.parse(text, source="cargo-maelstrom.toml", dialect=CARGO)


def error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the fold -------------------------------------------------------------------------------


def test_every_matching_directive_folds_in_order() -> None:
    spec = parse(
        """
[[directives]]
layers = [{ tar = "base.tar" }]
environment = { A = "1" }
working_directory = "/w"

[[directives]]
filter = "package.equals(foo)"
added_layers = [{ tar = "foo.tar" }]
added_environment = { B = "2" }
network = "loopback"

[[directives]]
filter = "name.starts_with(tests::)"
added_layers = [{ tar = "tests.tar" }]
user = 1000
"""
    )
    container = spec.metadata_for(CASE).container
    assert container.all_layers == (
        TarLayer("base.tar"),
        TarLayer("foo.tar"),
        TarLayer("tests.tar"),
    )
    assert container.all_environment == (
        EnvironmentSpec((("A", "1"),)),
        EnvironmentSpec((("B", "2"),)),
    )
    assert (container.working_directory, container.network, container.user) == (
        "/w",
        Network.LOOPBACK,
        1000,
    )
    other = spec.metadata_for(OTHER).container
    assert other.all_layers == (TarLayer("base.tar"),)
    assert other.network is None


def test_augment_vectors_replace_and_added_vectors_append() -> None:
    spec = parse(
        """
[[directives]]
layers = [{ tar = "a.tar" }]
mounts = [{ type = "tmp", mount_point = "/tmp" }]

[[directives]]
added_layers = [{ tar = "b.tar" }]

[[directives]]
filter = "package.equals(foo)"
layers = [{ tar = "c.tar" }]
mounts = []

[[directives]]
added_layers = [{ tar = "d.tar" }]
"""
    )
    foo = spec.metadata_for(CASE).container
    assert foo.all_layers == (TarLayer("c.tar"), TarLayer("d.tar"))
    assert foo.all_mounts == ()
    bar = spec.metadata_for(OTHER).container
    assert bar.all_layers == (TarLayer("a.tar"), TarLayer("b.tar"), TarLayer("d.tar"))
    assert bar.all_mounts == (TmpMount("/tmp"),)


def test_override_replaces_the_container_but_keeps_other_fields() -> None:
    spec = parse(
        """
[containers.base]
layers = [{ tar = "base.tar" }]
network = "loopback"

[[directives]]
layers = [{ tar = "a.tar" }]
user = 5
timeout = 7
ignore = true
include_shared_libraries = false

[[directives]]
filter = "package.equals(foo)"
parent = "base"
added_layers = [{ tar = "mine.tar" }]
"""
    )
    metadata = spec.metadata_for(CASE)
    container = metadata.container
    assert container.parent == ContainerRef("base")
    assert container.all_layers == (TarLayer("mine.tar"),)
    assert container.user is None  # the earlier scalar went with the replaced container
    assert (metadata.timeout, metadata.ignore, metadata.include_shared_libraries) == (
        7,
        True,
        False,
    )
    # The named container is registered and the collapse sees both layers.
    store = ContainerStore(client_environment={})
    store.add_all(spec.containers)
    collapsed = store.collapse(JobSpec("/t", container))
    assert collapsed.layers == (TarLayer("base.tar"), TarLayer("mine.tar"))
    assert collapsed.network is Network.LOOPBACK


def test_augmenting_layers_leaves_the_parents_use_alone() -> None:
    spec = parse(
        """
[containers.base]
layers = [{ tar = "base.tar" }]

[[directives]]
parent = "base"

[[directives]]
layers = [{ tar = "own.tar" }]
"""
    )
    container = spec.metadata_for(CASE).container
    assert isinstance(container.parent, ContainerRef)
    assert ContainerUse.LAYERS in container.parent.use
    store = ContainerStore(client_environment={})
    store.add_all(spec.containers)
    collapsed = store.collapse(JobSpec("/t", container))
    assert collapsed.layers == (TarLayer("base.tar"), TarLayer("own.tar"))


def test_timeout_zero_clears_and_ignore_can_be_undone() -> None:
    spec = parse(
        """
[[directives]]
timeout = 30
ignore = true

[[directives]]
filter = "package.equals(foo)"
timeout = 0
ignore = false
"""
    )
    assert (spec.metadata_for(CASE).timeout, spec.metadata_for(CASE).ignore) == (None, False)
    assert (spec.metadata_for(OTHER).timeout, spec.metadata_for(OTHER).ignore) == (30, True)


def test_include_shared_libraries_defaults_to_not_using_image_layers() -> None:
    spec = parse(
        """
[[directives]]
filter = "package.equals(foo)"
image = "docker://alpine"

[[directives]]
filter = "package.equals(bar)"
image = { name = "docker://alpine", use = ["environment"] }
layers = [{ stubs = ["/tmp/"] }]
"""
    )
    store = ContainerStore(
        client_environment={},
        image_config=lambda name: ImageConfig(layers=(StubsLayer(("/x",)),)),
    )
    foo = spec.metadata_for(CASE)
    assert foo.include_shared_libraries is None
    assert isinstance(foo.container.parent, ImageRef)
    collapsed = store.collapse(JobSpec("/t", foo.container))
    assert foo.resolve_include_shared_libraries(collapsed.uses_image_layers) is False
    bar = spec.metadata_for(OTHER)
    collapsed = store.collapse(JobSpec("/t", bar.container))
    assert bar.resolve_include_shared_libraries(collapsed.uses_image_layers) is True
    # An explicit value always wins.
    explicit = parse("[[directives]]\ninclude_shared_libraries = true\nimage = 'docker://a'\n")
    assert explicit.metadata_for(CASE).resolve_include_shared_libraries(True) is True


def test_filters_use_the_runners_dialect_and_may_span_lines() -> None:
    spec = SpecFile.parse(
        '[[directives]]\nfilter = """\npackage_name.equals(kv)\n  && name.equals(TestX)"""\n'
        "user = 3\n",
        source="maelstrom-go-test.toml",
        dialect=GO,
    )
    case = CaseInfo(package="example.com/kv", package_name="kv", package_path="kv", name="TestX")
    assert spec.metadata_for(case).container.user == 3
    assert (
        spec.metadata_for(CaseInfo(package="x", package_name="x", name="TestX")).container.user
        is None
    )


def test_no_directives_means_an_empty_container() -> None:
    metadata = parse("").metadata_for(CASE)
    assert metadata.container.all_layers == ()
    assert (metadata.ignore, metadata.timeout, metadata.include_shared_libraries) == (
        False,
        None,
        None,
    )


# --- errors name the file and the line ------------------------------------------------------


def test_unknown_top_level_key() -> None:
    assert error("\n\n[container.x]\nlayers = []\n").startswith(
        "cargo-maelstrom.toml:3: container: unknown field `container`, expected one of "
        "`directives`, `containers`"
    )


def test_unknown_directive_key_points_at_its_line() -> None:
    text = """
[[directives]]
layers = [
    { tar = "a.tar" },
]

[[directives]]
filter = "all"
colour = "blue"
"""
    assert error(text).startswith(
        "cargo-maelstrom.toml:9: directives[1].colour: unknown field `colour`"
    )


def test_bad_filter_names_file_and_line() -> None:
    message = error('[[directives]]\nlayers = []\n\nfilter = "package.eq(x) &&"\n')
    assert message.startswith('cargo-maelstrom.toml:4: invalid filter "package.eq(x) &&"')


def test_bad_container_field_in_a_sub_table() -> None:
    text = """
[[directives]]
layers = []

[[directives]]
filter = "all"

[directives.added_environment]
GOOD = "yes"
BAD = 1
"""
    assert error(text) == (
        "cargo-maelstrom.toml:10: directives[1].added_environment.BAD: expected a string, "
        "found an integer"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[directives]]\ntimeout = -1", "2: directives[0].timeout: expected a number of seconds"),
        ("[[directives]]\ntimeout = true", "2: directives[0].timeout: expected a number"),
        ("[[directives]]\nignore = 1", "2: directives[0].ignore: expected a boolean"),
        (
            "[[directives]]\ninclude_shared_libraries = 'y'",
            "2: directives[0].include_shared_libraries: expected a boolean",
        ),
        ("[[directives]]\nfilter = 3", "2: directives[0].filter: expected a string"),
        ("directives = 3", "1: directives: expected an array of tables"),
        ("containers = 3", "1: containers: expected a table of container specs"),
        ("[containers]\nx = 3", "2: containers.x: expected a table"),
        ("[containers.x]\nlayers = []\nnope = 1", "3: containers.x.nope: unknown field `nope`"),
        (
            "[[directives]]\nlayers = []\nadded_layers = []",
            "3: directives[0].added_layers: field `added_layers` cannot be set with `layers`",
        ),
        (
            "[[directives]]\nimage = 'docker://a'\nparent = 'b'",
            "3: directives[0].parent: both `image` and `parent` cannot be specified",
        ),
        ("[[directives]]\nnetwork = 'wifi'", "2: directives[0].network: unknown variant `wifi`"),
        ("[[directives]]\nlayers = [{ tar = 1 }]", "2: directives[0].layers[0].tar: expected"),
    ],
)
def test_field_errors(text: str, expected: str) -> None:
    assert error(text).startswith(f"cargo-maelstrom.toml:{expected}")


def test_toml_syntax_error_names_the_file() -> None:
    assert error("[[directives]\n").startswith("cargo-maelstrom.toml: ")


# --- files ----------------------------------------------------------------------------------


def test_load_falls_back_to_the_default(tmp_path: Path) -> None:
    default = "[[directives]]\nuser = 9\n"
    spec = SpecFile.load(tmp_path, "cargo-maelstrom.toml", default, CARGO)
    assert spec.metadata_for(CASE).container.user == 9
    (tmp_path / "cargo-maelstrom.toml").write_text("[[directives]]\nuser = 1\n")
    spec = SpecFile.load(tmp_path, "cargo-maelstrom.toml", default, CARGO)
    assert spec.metadata_for(CASE).container.user == 1
    (tmp_path / "cargo-maelstrom.toml").write_bytes(b"user = \xff\n")
    with pytest.raises(SpecError, match=r"^cargo-maelstrom.toml: not UTF-8 text"):
        SpecFile.load(tmp_path, "cargo-maelstrom.toml", default, CARGO)


def test_a_broken_default_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"built-in default\):1: bogus: unknown field"):
        SpecFile.load(tmp_path, "x.toml", "bogus = 1\n", CARGO)


def test_init_writes_once(tmp_path: Path) -> None:
    first = init_spec_file(tmp_path, "cargo-maelstrom.toml", "# hello\n")
    assert first.exit_code == 0
    assert (tmp_path / "cargo-maelstrom.toml").read_text() == "# hello\n"
    second = init_spec_file(tmp_path, "cargo-maelstrom.toml", "# other\n")
    assert second.exit_code == 1
    assert "already exists" in second.message
    assert (tmp_path / "cargo-maelstrom.toml").read_text() == "# hello\n"
    with pytest.raises(SpecError, match="cannot write"):
        init_spec_file(tmp_path / "missing", "cargo-maelstrom.toml", "")


def test_the_examples_spec_files_parse() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    cargo = SpecFile.load(examples / "rust-workspace", "cargo-maelstrom.toml", "", CARGO)
    assert len(cargo.directives) == 3
    assert cargo.directives[1].line == 23
    go = SpecFile.load(examples / "go-module", "maelstrom-go-test.toml", "", GO)
    assert len(go.directives) == 1
