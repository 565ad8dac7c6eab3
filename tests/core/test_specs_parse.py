"""Parsing of job streams (JSON) and container tables (TOML): fields, errors, validation."""

from __future__ import annotations

import itertools
import json
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maelstrom_core._job import (
    Device,
    DevicesMount,
    DevptsMount,
    MqueueMount,
    Network,
    ProcMount,
    SysMount,
    TmpMount,
)
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
from maelstrom_core.errors import SpecError
from maelstrom_core.specs import (
    CONTAINER_KEYS,
    BindMountSpec,
    ContainerRef,
    ContainersItem,
    ContainerSpec,
    ContainerUse,
    DockerImageName,
    EnvironmentSpec,
    ImageRef,
    ImageUse,
    JobItem,
    JobSpec,
    JobStreamParser,
    LocalImageName,
    StreamItem,
    TomlWhere,
    parse_container_keys,
    parse_container_table,
    parse_containers_table,
    parse_image_name,
    parse_job_stream,
    reject_unknown_keys,
)

ALL_CONTAINER_USE = frozenset(ContainerUse)
ALL_IMAGE_USE = frozenset(ImageUse)
STUB = {"stubs": ["/x"]}


def items(text: str) -> list[StreamItem]:
    return list(parse_job_stream(text, source_name="jobs.json"))


def job(obj: dict[str, object]) -> JobSpec:
    (item,) = items(json.dumps(obj))
    assert isinstance(item, JobItem)
    return item.spec


def container(obj: dict[str, object]) -> ContainerSpec:
    return job({"program": "p", **obj}).container


def job_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        items(text)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the §2.8 example and the stream format ---------------------------------------------------

EXAMPLE = (
    '{"image":"docker://alpine","program":"echo","arguments":["Hello","world!"]}\n'
    '{"containers":{"base":{"image":"docker://ubuntu","added_layers":[{"stubs":["/tmp/"]}],'
    '"mounts":[{"type":"tmp","mount_point":"/tmp"}]}}}\n'
    '{"parent":"base","program":"ls","arguments":["/"],"timeout":5}\n'
)


def test_reference_example_parses() -> None:
    first, containers, second = items(EXAMPLE)
    assert first == JobItem(
        1,
        1,
        1,
        JobSpec(
            program="echo",
            container=ContainerSpec(parent=ImageRef("docker://alpine", ALL_IMAGE_USE, False)),
            arguments=("Hello", "world!"),
        ),
    )
    assert isinstance(containers, ContainersItem)
    assert (containers.line, containers.column) == (2, 1)
    assert dict(containers.containers) == {
        "base": ContainerSpec(
            parent=ImageRef("docker://ubuntu", ALL_IMAGE_USE, False),
            added_layers=(StubsLayer(("/tmp/",)),),
            mounts=(TmpMount("/tmp"),),
        )
    }
    assert second == JobItem(
        2,
        3,
        1,
        JobSpec(
            program="ls",
            container=ContainerSpec(parent=ContainerRef("base", ALL_CONTAINER_USE, False)),
            arguments=("/",),
            timeout=5,
        ),
    )


def test_objects_without_separators_and_pretty_printed() -> None:
    compact = EXAMPLE.replace("\n", "")
    pretty = "\n\n".join(json.dumps(json.loads(line), indent=4) for line in EXAMPLE.splitlines())
    expected = [(type(i), getattr(i, "spec", None)) for i in items(EXAMPLE)]
    assert [(type(i), getattr(i, "spec", None)) for i in items(compact)] == expected
    assert [(type(i), getattr(i, "spec", None)) for i in items(pretty)] == expected


def test_jobs_are_yielded_before_end_of_input() -> None:
    parser = JobStreamParser(source_name="stdin")
    assert parser.feed('{"program": "a", "layers": [{"tar": "x.tar"}]}{"prog') == [
        JobItem(1, 1, 1, JobSpec("a", ContainerSpec(layers=(TarLayer("x.tar"),))))
    ]
    assert parser.feed('ram": "b"}') == [JobItem(2, 1, 47, JobSpec("b"))]
    assert parser.close() == []


def test_empty_stream_and_whitespace_only() -> None:
    assert items("") == []
    assert items(" \n\t\r\n") == []


def test_chunked_iterable_input() -> None:
    chunks = [EXAMPLE[i : i + 7] for i in range(0, len(EXAMPLE), 7)]
    assert list(parse_job_stream(chunks, source_name="x")) == items(EXAMPLE)


def test_feed_after_close_is_refused() -> None:
    parser = JobStreamParser(source_name="x")
    parser.close()
    with pytest.raises(ValueError, match="already closed"):
        parser.feed("{}")


_json_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
_job_objects = st.fixed_dictionaries(
    {"program": _json_text},
    optional={
        "arguments": st.lists(_json_text, max_size=3),
        "environment": st.dictionaries(_json_text, _json_text, max_size=3),
        "priority": st.integers(-128, 127),
        "layers": st.lists(
            st.one_of(
                st.builds(lambda s: {"stubs": s}, st.lists(_json_text, max_size=2)),
                st.builds(lambda s: {"tar": s}, _json_text),
            ),
            max_size=2,
        ),
    },
)


@st.composite
def _streams_and_cuts(draw: st.DrawFn) -> tuple[str, list[int]]:
    objects = draw(st.lists(_job_objects, min_size=1, max_size=4))
    seps = draw(st.lists(st.sampled_from(["", "\n", " ", "\r\n\t"]), min_size=len(objects)))
    indent = draw(st.sampled_from([None, 1]))
    ascii_only = draw(st.booleans())
    text = "".join(
        json.dumps(obj, indent=indent, ensure_ascii=ascii_only) + sep
        for obj, sep in zip(objects, seps, strict=False)
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    return text, cuts


@settings(max_examples=150, deadline=None)
@given(_streams_and_cuts())
def test_any_chunking_gives_the_same_items(stream: tuple[str, list[int]]) -> None:
    text, cuts = stream
    whole = items(text)
    bounds = [0, *cuts, len(text)]
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    parser = JobStreamParser(source_name="jobs.json")
    chunked: list[StreamItem] = []
    for chunk in chunks:
        chunked.extend(parser.feed(chunk))
    chunked.extend(parser.close())
    assert chunked == whole
    assert [i.spec.program for i in whole if isinstance(i, JobItem)] == [
        json.loads(m)["program"] for m in _split_objects(text)
    ]


def _split_objects(text: str) -> list[str]:
    decoder = json.JSONDecoder()
    out: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        _, end = decoder.raw_decode(text, i)
        out.append(text[i:end])
        i = end


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40))
def test_error_position_is_independent_of_chunking(size: int) -> None:
    text = '{"program": "a"}\n{"program": "b",\n   "layers": [{"stubs": ["/a"]}, {"stubs": "x"}]}'
    expected = job_error(text)
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    with pytest.raises(SpecError) as info:
        list(parse_job_stream(chunks, source_name="jobs.json"))
    assert str(info.value) == expected


# --- errors name source, job, line, column and field path ----------------------------------


def test_error_message_format_names_everything() -> None:
    text = (
        '{"program": "a"}\n{"program": "b"}\n{"containers": {}}\n'
        '{\n  "program": "c",\n  "layers": [\n    {"tar": "t"},\n    {"stubs": 7}\n  ]\n}'
    )
    assert job_error(text) == (
        "jobs.json: job 3 (line 8, column 15): layers[1].stubs: "
        "expected a list of strings, found an integer"
    )


@pytest.mark.parametrize(
    ("obj", "path", "expected"),
    [
        ({"program": 1}, "program", "expected a string, found an integer"),
        ({"program": "p", "arguments": "a"}, "arguments", "expected a list of strings"),
        ({"program": "p", "arguments": ["a", 2]}, "arguments[1]", "expected a string"),
        ({"program": "p", "timeout": -1}, "timeout", "expected a u32"),
        ({"program": "p", "timeout": 2**32}, "timeout", "expected a u32"),
        ({"program": "p", "timeout": 1.5}, "timeout", "found a float"),
        ({"program": "p", "priority": 128}, "priority", "expected an i8"),
        ({"program": "p", "priority": -129}, "priority", "expected an i8"),
        ({"program": "p", "priority": "1"}, "priority", "found a string"),
        ({"program": "p", "user": 2**32}, "user", "expected a u32"),
        ({"program": "p", "group": None}, "group", "found null"),
        ({"program": "p", "user": False}, "user", "found a boolean"),
        ({"program": "p", "network": "host"}, "network", "unknown variant `host`"),
        ({"program": "p", "network": 1}, "network", "expected a string"),
        (
            {"program": "p", "enable_writable_file_system": 1},
            "enable_writable_file_system",
            "boolean",
        ),
        ({"program": "p", "working_directory": ["/"]}, "working_directory", "expected a string"),
        ({"program": "p", "layers": {}}, "layers", "expected a list of layers"),
        ({"program": "p", "layers": ["x"]}, "layers[0]", "expected an object"),
        ({"program": "p", "layers": [{}]}, "layers[0]", "a layer needs one of `tar`"),
        ({"program": "p", "layers": [{"tar": 1}]}, "layers[0].tar", "expected a string"),
        ({"program": "p", "layers": [{"tar": "a", "glob": "b"}]}, "layers[0].glob", "both"),
        (
            {"program": "p", "layers": [{"tar": "a", "canonicalize": True}]},
            "layers[0].canonicalize",
            "unknown field `canonicalize`",
        ),
        (
            {"program": "p", "layers": [{"glob": "*", "canonicalize": 1}]},
            "layers[0].canonicalize",
            "boolean",
        ),
        (
            {"program": "p", "layers": [{"glob": "*", "strip_prefix": 1}]},
            "layers[0].strip_prefix",
            "string",
        ),
        ({"program": "p", "layers": [{"paths": "a"}]}, "layers[0].paths", "list of strings"),
        ({"program": "p", "layers": [{"stubs": ["/a", 1]}]}, "layers[0].stubs[1]", "string"),
        (
            {"program": "p", "layers": [{"stubs": ["/a"], "follow_symlinks": True}]},
            "layers[0].follow_symlinks",
            "unknown field",
        ),
        (
            {"program": "p", "layers": [{"symlinks": [{"link": "/a"}]}]},
            "layers[0].symlinks[0]",
            "missing field `target`",
        ),
        (
            {"program": "p", "layers": [{"symlinks": [{"link": "/a", "target": "b", "x": 1}]}]},
            "layers[0].symlinks[0].x",
            "unknown field `x`",
        ),
        (
            {"program": "p", "layers": [{"shared_library_dependencies": [1]}]},
            "layers[0].shared_library_dependencies[0]",
            "string",
        ),
        (
            {"program": "p", "layers": [{"shared-library-dependencies": ["a"]}]},
            "layers[0]",
            "a layer needs one of",
        ),
        (
            {"program": "p", "layers": [{"command": ["a"]}]},
            "layers[0].command",
            "not supported yet",
        ),
        ({"program": "p", "environment": "A=b"}, "environment", "expected an object of variables"),
        ({"program": "p", "environment": {"A": 1}}, "environment.A", "expected a string"),
        (
            {"program": "p", "environment": [{"vars": {}}]},
            "environment[0]",
            "missing field `extend`",
        ),
        (
            {"program": "p", "environment": [{"vars": {}, "extend": "yes"}]},
            "environment[0].extend",
            "boolean",
        ),
        (
            {"program": "p", "environment": [{"vars": {"a.b": 2}, "extend": True}]},
            'environment[0].vars."a.b"',
            "string",
        ),
        ({"program": "p", "mounts": [{"mount_point": "/a"}]}, "mounts[0]", "missing field `type`"),
        ({"program": "p", "mounts": [{"type": "nfs"}]}, "mounts[0].type", "unknown variant `nfs`"),
        ({"program": "p", "mounts": [{"type": "tmp"}]}, "mounts[0]", "missing field `mount_point`"),
        (
            {"program": "p", "mounts": [{"type": "tmp", "mount_point": "/"}]},
            "mounts[0].mount_point",
            'a path of "/" is not allowed',
        ),
        (
            {"program": "p", "mounts": [{"type": "proc", "mount_point": "/p", "read_only": True}]},
            "mounts[0].read_only",
            "unknown field",
        ),
        (
            {"program": "p", "mounts": [{"type": "bind", "mount_point": "/a"}]},
            "mounts[0]",
            "missing field `local_path`",
        ),
        (
            {
                "program": "p",
                "mounts": [
                    {"type": "bind", "mount_point": "/a", "local_path": "b", "read_only": "no"}
                ],
            },
            "mounts[0].read_only",
            "boolean",
        ),
        (
            {"program": "p", "mounts": [{"type": "devices", "devices": ["NULL"]}]},
            "mounts[0].devices[0]",
            "unknown variant `NULL`",
        ),
        ({"program": "p", "mounts": [{"type": "devices"}]}, "mounts[0]", "missing field `devices`"),
        ({"program": "p", "image": 3}, "image", "expected a string or an object"),
        ({"program": "p", "image": {"use": ["layers"]}}, "image", "missing field `name`"),
        (
            {"program": "p", "image": {"name": "docker://a", "use": ["mounts"]}},
            "image.use[0]",
            "unknown variant `mounts`",
        ),
        (
            {"program": "p", "image": {"name": "docker://a", "use": "layers"}},
            "image.use",
            "expected a list",
        ),
        (
            {"program": "p", "image": {"name": "docker://a", "tag": "x"}},
            "image.tag",
            "unknown field `tag`",
        ),
        ({"program": "p", "image": "alpine"}, "image", "failed to parse image name"),
        (
            {"program": "p", "image": {"name": "docker://UPPER"}},
            "image.name",
            "failed to parse image name",
        ),
        (
            {"program": "p", "parent": {"name": "a", "use": ["colour"]}},
            "parent.use[0]",
            "unknown variant `colour`",
        ),
        ({"program": "p", "bogus": 1}, "bogus", "unknown field `bogus`, expected one of `program`"),
    ],
)
def test_field_type_errors_name_path_and_position(
    obj: dict[str, object], path: str, expected: str
) -> None:
    text = json.dumps(obj)
    message = job_error("\n" + text)
    prefix = "jobs.json: job 1 (line 2, column "
    assert message.startswith(prefix)
    column = int(message[len(prefix) :].split(")")[0])
    assert message.split("): ", 1)[1].startswith(f"{path}: ")
    assert expected in message
    # The column points into the object, at the offending value (or the object holding it).
    assert 1 <= column <= len(text)
    assert text[column - 1] in '{["0123456789-tfn' or text[column - 1].isalpha()


def test_error_column_points_at_the_bad_value() -> None:
    text = '{"program": "p", "user": "root"}'
    message = job_error(text)
    column = text.index('"root"') + 1
    assert message.startswith(f"jobs.json: job 1 (line 1, column {column}): user:")


def test_missing_program() -> None:
    assert job_error('{"layers": []}') == (
        "jobs.json: job 1 (line 1, column 1): missing field `program`"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"program": "a",}',
            "jobs.json: job 1 (line 1, column 17): expected a string key, found '}'",
        ),
        (
            '{"program": "a"',
            "jobs.json: job 1 (line 1, column 16): expected ',' or '}', found end of input",
        ),
        (
            '{"program": "a"}\n{"program": [1, 2}',
            "jobs.json: job 2 (line 2, column 18): expected ',' or ']', found '}'",
        ),
        ('{"program": "a\\q"}', "jobs.json: job 1 (line 1, column 15): invalid \\escape"),
        ('{"program": tru}', "jobs.json: job 1 (line 1, column 13): expected a value, found 't'"),
        (
            '{"containers": {"a": {]}}',
            "jobs.json: containers object (line 1, column 23): expected a string key, found ']'",
        ),
        (
            '[{"program": "a"}]',
            "jobs.json: line 1, column 1: expected '{' to start a JSON object, found '['",
        ),
        (
            '{"program": "a"}\n  x',
            "jobs.json: line 2, column 3: expected '{' to start a JSON object, found 'x'",
        ),
        (
            '{"program": "a", "program": "b"}',
            "jobs.json: job 1 (line 1, column 18): duplicate field `program`",
        ),
        (
            '{"user": ' + "9" * 5000 + "}",
            "jobs.json: job 1 (line 1, column 10): number is too large",
        ),
        (
            '{"a": ' + "[" * 300 + "]" * 300 + "}",
            "jobs.json: job 1 (line 1, column 262): nesting is too deep",
        ),
    ],
)
def test_syntax_errors(text: str, expected: str) -> None:
    assert job_error(text) == expected


def test_containers_object_with_other_keys_is_a_job_error() -> None:
    assert job_error('{"containers": {}, "program": "a"}') == (
        "jobs.json: job 1 (line 1, column 16): containers: unknown field `containers`, "
        "expected one of `program`, `arguments`, `timeout`, `priority`, `image`, `parent`, "
        "`layers`, `added_layers`, `environment`, `added_environment`, `working_directory`, "
        "`enable_writable_file_system`, `mounts`, `added_mounts`, `network`, `user`, `group`"
    )


def test_error_in_named_container() -> None:
    text = '{"containers": {"my base": {"user": "x"}}}'
    assert job_error(text) == (
        "jobs.json: containers object (line 1, column 37): "
        'containers."my base".user: expected a u32 (an integer from 0 to 4294967295), '
        "found a string"
    )


# --- every field parses -------------------------------------------------------------------


def test_all_job_and_container_fields() -> None:
    spec = job(
        {
            "program": "/bin/sh",
            "arguments": ["-c", "true"],
            "timeout": 0,
            "priority": -128,
            "layers": [
                {"tar": "a.tar"},
                {"glob": "**.py", "strip_prefix": "src/", "prepend_prefix": "/app"},
                {"paths": ["a", "/b"], "follow_symlinks": True, "canonicalize": True},
                {"stubs": ["/dev/{null,zero}", "/tmp/"]},
                {"symlinks": [{"link": "/dev/ptmx", "target": "/dev/pts/ptmx"}]},
                {"shared_library_dependencies": ["<build-dir>/t"], "follow_symlinks": True},
            ],
            "environment": [{"vars": {"B": "2", "A": "$env{A:-1}"}, "extend": False}],
            "mounts": [
                {"type": "bind", "mount_point": "/m", "local_path": "data"},
                {"type": "bind", "mount_point": "/r", "local_path": "/abs", "read_only": True},
                {"type": "devices", "devices": ["null", "zero", "null", "shm"]},
                {"type": "devpts", "mount_point": "/dev/pts"},
                {"type": "mqueue", "mount_point": "/dev/mqueue"},
                {"type": "proc", "mount_point": "/proc"},
                {"type": "sys", "mount_point": "/sys"},
                {"type": "tmp", "mount_point": "/tmp"},
            ],
            "network": "loopback",
            "enable_writable_file_system": True,
            "working_directory": "/w",
            "user": 4294967295,
            "group": 0,
        }
    )
    assert spec == JobSpec(
        program="/bin/sh",
        arguments=("-c", "true"),
        timeout=None,
        priority=-128,
        container=ContainerSpec(
            layers=(
                TarLayer("a.tar"),
                GlobLayer("**.py", PrefixOptions(strip_prefix="src/", prepend_prefix="/app")),
                PathsLayer(("a", "/b"), PrefixOptions(follow_symlinks=True, canonicalize=True)),
                StubsLayer(("/dev/{null,zero}", "/tmp/")),
                SymlinksLayer((SymlinkSpec("/dev/ptmx", "/dev/pts/ptmx"),)),
                SharedLibraryDependenciesLayer(
                    ("<build-dir>/t",), PrefixOptions(follow_symlinks=True)
                ),
            ),
            environment=(EnvironmentSpec((("A", "$env{A:-1}"), ("B", "2")), False),),
            mounts=(
                BindMountSpec("/m", "data"),
                BindMountSpec("/r", "/abs", read_only=True),
                DevicesMount(frozenset({Device.NULL, Device.ZERO, Device.SHM})),
                DevptsMount("/dev/pts"),
                MqueueMount("/dev/mqueue"),
                ProcMount("/proc"),
                SysMount("/sys"),
                TmpMount("/tmp"),
            ),
            network=Network.LOOPBACK,
            enable_writable_file_system=True,
            working_directory="/w",
            user=4294967295,
            group=0,
        ),
    )


def test_environment_map_is_one_extending_spec() -> None:
    assert container({"environment": {"Z": "1", "A": "2"}}).environment == (
        EnvironmentSpec((("A", "2"), ("Z", "1")), True),
    )


def test_image_and_parent_forms() -> None:
    assert container({"image": "docker://a"}).parent == ImageRef("docker://a", ALL_IMAGE_USE)
    assert container({"image": {"name": "docker://a"}}).parent == ImageRef(
        "docker://a", ALL_IMAGE_USE, False
    )
    assert container({"image": {"name": "docker://a", "use": ["layers", "layers"]}}).parent == (
        ImageRef("docker://a", frozenset({ImageUse.LAYERS}), True)
    )
    assert container({"image": {"name": "docker://a", "use": []}}).parent == ImageRef(
        "docker://a", frozenset(), True
    )
    assert container({"parent": "b"}).parent == ContainerRef("b", ALL_CONTAINER_USE, False)
    assert container({"parent": {"name": "b", "use": ["user", "mounts"]}}).parent == (
        ContainerRef("b", frozenset({ContainerUse.USER, ContainerUse.MOUNTS}), True)
    )


def test_timeout_zero_means_none() -> None:
    assert job({"program": "p", "timeout": 0}).timeout is None
    assert job({"program": "p", "timeout": 4294967295}).timeout == 4294967295


# --- validation rules of §2.3 -------------------------------------------------------------

IMAGE = "docker://img"


@pytest.mark.parametrize(
    ("obj", "path", "message"),
    [
        (
            {"image": IMAGE, "parent": "p"},
            "parent",
            "both `image` and `parent` cannot be specified",
        ),
        *[
            (
                {"parent": "p", field: [] if field != "environment" else {}, f"added_{field}": []},
                f"added_{field}",
                f"field `added_{field}` cannot be set with `{field}` field",
            )
            for field in ("layers", "environment", "mounts")
        ],
        (
            {"added_layers": [STUB]},
            "added_layers",
            "field `added_layers` cannot be set without `image` or `parent` also being "
            "specified (try `layers` instead)",
        ),
        (
            {"added_environment": {}},
            "added_environment",
            "field `added_environment` cannot be set without `image` or `parent` also being "
            "specified (try `environment` instead)",
        ),
        (
            {"added_mounts": []},
            "added_mounts",
            "field `added_mounts` cannot be set without `parent` also being specified "
            "(try `mounts` instead)",
        ),
        (
            {"image": IMAGE, "added_mounts": []},
            "added_mounts",
            "field `added_mounts` cannot be set without `parent` also being specified "
            "(try `mounts` instead)",
        ),
        (
            {"image": {"name": IMAGE, "use": ["environment"]}, "added_layers": []},
            "added_layers",
            "field `added_layers` requires `image` being specified with a `use` of `layers` "
            "(try `layers` instead)",
        ),
        (
            {"image": {"name": IMAGE, "use": ["layers"]}, "added_environment": {}},
            "added_environment",
            "field `added_environment` requires `image` being specified with a `use` of "
            "`environment` (try `environment` instead)",
        ),
        (
            {"parent": {"name": "p", "use": ["user"]}, "added_layers": []},
            "added_layers",
            "field `added_layers` requires `parent` being specified with a `use` of `layers` "
            "(try `layers` instead)",
        ),
        (
            {"parent": {"name": "p", "use": []}, "added_environment": {}},
            "added_environment",
            "field `added_environment` requires `parent` being specified with a `use` of "
            "`environment` (try `environment` instead)",
        ),
        (
            {"parent": {"name": "p", "use": ["layers"]}, "added_mounts": []},
            "added_mounts",
            "field `added_mounts` requires `parent` being specified with a `use` of `mounts` "
            "(try `mounts` instead)",
        ),
        (
            {"image": {"name": IMAGE, "use": ["layers"]}, "layers": [STUB]},
            "layers",
            "field `layers` cannot be set if `image` with an explicit `use` of `layers` is "
            "also specified (try `added_layers` instead)",
        ),
        (
            {"image": {"name": IMAGE, "use": ["environment"]}, "environment": {}},
            "environment",
            "field `environment` cannot be set if `image` with an explicit `use` of "
            "`environment` is also specified (try `added_environment` instead)",
        ),
        (
            {"image": {"name": IMAGE, "use": ["working_directory"]}, "working_directory": "/"},
            "working_directory",
            "field `working_directory` cannot be set if `image` with an explicit `use` of "
            "`working_directory` is also specified",
        ),
        (
            {"parent": {"name": "p", "use": ["layers"]}, "layers": []},
            "layers",
            "field `layers` cannot be set if `parent` with an explicit `use` of `layers` is "
            "also specified (try `added_layers` instead)",
        ),
        (
            {"parent": {"name": "p", "use": ["environment"]}, "environment": []},
            "environment",
            "field `environment` cannot be set if `parent` with an explicit `use` of "
            "`environment` is also specified (try `added_environment` instead)",
        ),
        (
            {"parent": {"name": "p", "use": ["mounts"]}, "mounts": []},
            "mounts",
            "field `mounts` cannot be set if `parent` with an explicit `use` of `mounts` is "
            "also specified (try `added_mounts` instead)",
        ),
        *[
            (
                {"parent": {"name": "p", "use": [field]}, field: value},
                field,
                f"field `{field}` cannot be set if `parent` with an explicit `use` of "
                f"`{field}` is also specified",
            )
            for field, value in (
                ("working_directory", "/w"),
                ("enable_writable_file_system", False),
                ("network", "local"),
                ("user", 1),
                ("group", 2),
            )
        ],
    ],
)
def test_validation_rules(obj: dict[str, object], path: str, message: str) -> None:
    text = json.dumps({"program": "p", **obj})
    error = job_error(text)
    assert error.startswith("jobs.json: job 1 (line 1, column ")
    assert error.endswith(f"): {path}: {message}")
    column = int(error.split("column ")[1].split(")")[0])
    key = path
    assert text.index(f'"{key}": ') + len(f'"{key}": ') + 1 == column


def test_first_error_follows_the_original_field_order() -> None:
    # layers is checked before working_directory, which is checked before mounts.
    obj = {
        "program": "p",
        "parent": {"name": "p", "use": ["mounts", "working_directory", "layers"]},
        "mounts": [],
        "working_directory": "/",
        "layers": [],
    }
    assert "): layers: field `layers`" in job_error(json.dumps(obj))
    del obj["layers"]
    assert "): working_directory: field" in job_error(json.dumps(obj))


@pytest.mark.parametrize(
    ("obj", "use"),
    [
        ({"image": IMAGE, "layers": [STUB]}, ALL_IMAGE_USE - {ImageUse.LAYERS}),
        ({"image": IMAGE, "environment": {}}, ALL_IMAGE_USE - {ImageUse.ENVIRONMENT}),
        ({"image": IMAGE, "working_directory": "/"}, ALL_IMAGE_USE - {ImageUse.WORKING_DIRECTORY}),
        ({"image": {"name": IMAGE}, "layers": [STUB]}, ALL_IMAGE_USE - {ImageUse.LAYERS}),
        # Images give no mounts or other scalars, so those leave the image's use alone.
        ({"image": IMAGE, "mounts": [], "user": 1, "network": "local"}, ALL_IMAGE_USE),
        ({"image": IMAGE, "added_layers": [STUB], "added_environment": {}}, ALL_IMAGE_USE),
    ],
)
def test_implicit_image_use_drops_fields_set_directly(
    obj: dict[str, object], use: frozenset[ImageUse]
) -> None:
    parent = container(obj).parent
    assert isinstance(parent, ImageRef)
    assert parent.use == use
    assert not parent.use_explicit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("layers", [STUB]),
        ("environment", {"A": "b"}),
        ("mounts", [{"type": "tmp", "mount_point": "/tmp"}]),
        ("working_directory", "/w"),
        ("enable_writable_file_system", True),
        ("network", "loopback"),
        ("user", 7),
        ("group", 8),
    ],
)
def test_implicit_parent_use_drops_each_field_set_directly(field: str, value: object) -> None:
    for parent in ("p", {"name": "p"}):
        spec = container({"parent": parent, field: value})
        assert spec.parent == ContainerRef("p", ALL_CONTAINER_USE - {ContainerUse(field)}, False)


def test_explicit_use_keeps_what_it_does_not_name() -> None:
    spec = container(
        {"parent": {"name": "p", "use": ["layers", "user"]}, "group": 1, "added_layers": [STUB]}
    )
    assert spec.parent == ContainerRef(
        "p", frozenset({ContainerUse.LAYERS, ContainerUse.USER}), True
    )
    assert spec.added_layers == (StubsLayer(("/x",)),)
    assert spec.layers is None


# --- TOML: the same rules through the same code ---------------------------------------------


def test_toml_container_table() -> None:
    table = tomllib.loads(
        """
        image = { name = "docker://rust", use = ["layers"] }
        added_layers = [{ paths = ["<build-dir>/foo"], canonicalize = true }]
        environment = [{ vars = { A = "1" }, extend = true }]
        mounts = [{ type = "devices", devices = ["null"] }]
        """
    )
    assert parse_container_table(table, location="cargo-maelstrom.toml: containers.x") == (
        ContainerSpec(
            parent=ImageRef("docker://rust", frozenset({ImageUse.LAYERS}), True),
            added_layers=(PathsLayer(("<build-dir>/foo",), PrefixOptions(canonicalize=True)),),
            environment=(EnvironmentSpec((("A", "1"),), True),),
            mounts=(DevicesMount(frozenset({Device.NULL})),),
        )
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("user = -1", "f.toml: containers.c: user: expected a u32"),
        ('layers = [{ stubs = "x" }]', "f.toml: containers.c: layers[0].stubs: expected a list"),
        ("layers = [1]", "f.toml: containers.c: layers[0]: expected a table, found an integer"),
        (
            "user = 1979-05-27",
            "f.toml: containers.c: user: expected a u32 (an integer from 0 to 4294967295), "
            "found a date",
        ),
        (
            "colour = 1",
            "f.toml: containers.c: colour: unknown field `colour`, expected one of `image`",
        ),
        (
            'added_layers = [{ tar = "a" }]',
            "f.toml: containers.c: added_layers: field `added_layers` cannot be set without",
        ),
        (
            'parent = { name = "b", use = ["user"] }\nuser = 3',
            "f.toml: containers.c: user: field `user` cannot be set if `parent` with an explicit",
        ),
        (
            'mounts = [{ type = "devices", devices = ["Zero"] }]',
            "f.toml: containers.c: mounts[0].devices[0]: unknown variant `Zero`",
        ),
    ],
)
def test_toml_errors(toml: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_container_table(tomllib.loads(toml), location="f.toml: containers.c")
    assert str(info.value).startswith(expected)


def test_toml_containers_table() -> None:
    doc = tomllib.loads(
        """
        [containers.base]
        layers = [{ stubs = ["/tmp/"] }]
        [containers.child]
        parent = "base"
        added_layers = [{ tar = "c.tar" }]
        """
    )
    parsed = parse_containers_table(doc["containers"], location="f.toml: containers")
    assert parsed == {
        "base": ContainerSpec(layers=(StubsLayer(("/tmp/",)),)),
        "child": ContainerSpec(
            parent=ContainerRef("base", ALL_CONTAINER_USE, False),
            added_layers=(TarLayer("c.tar"),),
        ),
    }
    with pytest.raises(SpecError, match=r"^f.toml: containers: base.user: expected a u32"):
        parse_containers_table({"base": {"user": "x"}}, location="f.toml: containers")


def test_json_and_toml_share_field_rules() -> None:
    """The same container text, as JSON and as TOML, parses to the same spec."""
    obj = {
        "parent": {"name": "p", "use": ["layers", "environment"]},
        "added_layers": [{"glob": "**", "strip_prefix": "a"}],
        "added_environment": [{"vars": {"X": "$prev{X}:y"}, "extend": True}],
        "network": "local",
        "user": 5,
    }
    toml = (
        'parent = { name = "p", use = ["layers", "environment"] }\n'
        'added_layers = [{ glob = "**", strip_prefix = "a" }]\n'
        'added_environment = [{ vars = { X = "$prev{X}:y" }, extend = true }]\n'
        'network = "local"\nuser = 5\n'
    )
    assert container(obj) == parse_container_table(tomllib.loads(toml), location="t")


def test_directive_keys_reuse_the_container_parser() -> None:
    """A test-runner directive: its own keys plus container keys, parsed by the same code."""
    directive = tomllib.loads(
        """
        filter = "package.equals(foo)"
        timeout = 5
        added_layers = [{ stubs = ["/x/"] }]
        added_environment = { RUST_BACKTRACE = "$env{RUST_BACKTRACE:-0}" }
        added_mounts = [{ type = "proc", mount_point = "/proc" }]
        user = 3
        """
    )
    where = TomlWhere("cargo-maelstrom.toml: directives[0]")
    own = ("filter", "ignore", "timeout", "include_shared_libraries")
    reject_unknown_keys(directive, (*own, *sorted(CONTAINER_KEYS)), where)
    # Augment mode: added_* need no parent.
    spec = parse_container_keys(directive, where, directive=True)
    assert spec == ContainerSpec(
        added_layers=(StubsLayer(("/x/",)),),
        added_environment=(EnvironmentSpec((("RUST_BACKTRACE", "$env{RUST_BACKTRACE:-0}"),)),),
        added_mounts=(ProcMount("/proc"),),
        user=3,
    )
    # Outside directives, the same table breaks the §2.3 rule.
    with pytest.raises(SpecError, match=r"directives\[0\]: added_layers: field `added_layers`"):
        parse_container_keys(directive, where)
    # Field types are checked exactly as in containers.
    with pytest.raises(SpecError) as info:
        parse_container_keys({"layers": [{"stubs": "x"}]}, where, directive=True)
    assert str(info.value) == (
        "cargo-maelstrom.toml: directives[0]: layers[0].stubs: expected a list of strings, "
        "found a string"
    )
    with pytest.raises(SpecError, match="unknown field `bogus`"):
        reject_unknown_keys({"bogus": 1}, (*own, *sorted(CONTAINER_KEYS)), where)
    # Override mode (with image or parent): all validation rules apply.
    with pytest.raises(SpecError, match="explicit `use` of `user`"):
        parse_container_keys(
            {"parent": {"name": "b", "use": ["user"]}, "user": 1}, where, directive=True
        )


# --- image names (§3) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("docker://alpine", DockerImageName("docker.io", None, "library/alpine", None, None)),
        (
            "docker://python:3.12.3-slim",
            DockerImageName("docker.io", None, "library/python", "3.12.3-slim", None),
        ),
        ("docker://user/app:v1", DockerImageName("docker.io", None, "user/app", "v1", None)),
        ("docker://ghcr.io/o/r", DockerImageName("ghcr.io", None, "o/r", None, None)),
        ("docker://localhost/x", DockerImageName("localhost", None, "x", None, None)),
        ("docker://localhost:5000/x:t", DockerImageName("localhost", 5000, "x", "t", None)),
        (
            "docker://foo.com:124/bar:baz@sha256:abc123",
            DockerImageName("foo.com", 124, "bar", "baz", "sha256:abc123"),
        ),
        (
            "docker://a@sha256:00ff",
            DockerImageName("docker.io", None, "library/a", None, "sha256:00ff"),
        ),
        ("oci:/foo/bar:r:ef1", LocalImageName(False, "/foo/bar", "r:ef1")),
        ("oci-archive:img.tar", LocalImageName(True, "img.tar", None)),
    ],
)
def test_image_names(name: str, expected: object) -> None:
    assert parse_image_name(name) == expected


def test_image_name_helpers() -> None:
    hub = parse_image_name("docker://alpine")
    assert isinstance(hub, DockerImageName)
    assert (hub.api_host, hub.reference, str(hub)) == (
        "registry-1.docker.io",
        "latest",
        "docker://docker.io/library/alpine",
    )
    local = parse_image_name("docker://localhost:5000/x@sha256:ab")
    assert isinstance(local, DockerImageName)
    assert (local.api_host, local.reference) == ("localhost:5000", "sha256:ab")
    assert str(parse_image_name("oci:/p:r")) == "oci:/p:r"


@pytest.mark.parametrize(
    "name",
    [
        "alpine",
        "http://x/y",
        "docker://",
        "docker://Alpine",
        "docker://a:",
        "docker://a:t@",
        "docker://a@md5",
        "docker://host.com:99999/x",
        "docker://host.com:p/x",
        "docker://a//b",
        "docker://a:bad/tag",
        "oci:",
        "oci:p:",
    ],
)
def test_bad_image_names(name: str) -> None:
    with pytest.raises(SpecError, match=r"^failed to parse image name"):
        parse_image_name(name)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet='{}[]",:\\ \n0123456789.-+eEtrufalsn"abcu$', max_size=60),
        st.builds(
            lambda text, at, junk: text[:at] + junk + text[at:],
            st.sampled_from(EXAMPLE.splitlines()),
            st.integers(0, 200),
            st.text(alphabet='{}[]",:\\ 0-9', max_size=3),
        ),
    )
)
def test_garbage_gives_one_line_spec_errors_only(text: str) -> None:
    try:
        items(text)
    except SpecError as err:
        message = str(err)
        assert "\n" not in message
        assert message.startswith("jobs.json: ")


def test_public_surface_is_deliberate() -> None:
    from maelstrom_core import specs

    assert sorted(specs.__all__) == sorted(
        name for name in dir(specs) if not name.startswith("_") and name != "annotations"
    )
    assert set(specs.__all__) >= {
        "ContainerSpec",
        "ContainerStore",
        "JobSpec",
        "CollapsedJob",
        "parse_job_stream",
        "parse_container_table",
        "parse_container_keys",
        "evaluate_environment",
    }


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_text, inner, max_size=4),
    max_leaves=20,
)


@given(_json_values, st.booleans())
def test_position_parser_agrees_with_json_module(value: object, ascii_only: bool) -> None:
    from maelstrom_core._specs_json import parse_json_value

    text = json.dumps(value, ensure_ascii=ascii_only, indent=None if ascii_only else 2)
    parsed, offsets = parse_json_value(text)
    assert parsed == json.loads(text)
    assert offsets[()] == 0


def test_items_before_a_bad_one_are_delivered_first() -> None:
    stream = parse_job_stream('{"program": "a"}\n{"program": 1}', source_name="s")
    assert next(stream) == JobItem(1, 1, 1, JobSpec("a"))
    with pytest.raises(SpecError, match=r"^s: job 2 \(line 2, column 13\): program: expected"):
        next(stream)
    parser = JobStreamParser(source_name="s")
    assert parser.feed('{"program": "a"} ]') == [JobItem(1, 1, 1, JobSpec("a"))]
    for _ in range(2):  # the stream stays failed
        with pytest.raises(SpecError, match=r"^s: line 1, column 18: expected '\{'"):
            parser.feed('{"program": "b"}')
    with pytest.raises(SpecError, match="expected"):
        parser.close()
