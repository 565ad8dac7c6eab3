"""Collapsing a job's parent chain: vectors prepended, scalars from the nearest definer, images."""

from __future__ import annotations

import pytest

from maelstrom_core._job import (
    ArtifactType,
    BindMount,
    LayerRef,
    Network,
    ProcMount,
    SysMount,
    TmpMount,
)
from maelstrom_core._job import JobSpec as ResolvedJobSpec
from maelstrom_core._layer_spec import StubsLayer, TarLayer
from maelstrom_core.errors import InternalError, SpecError
from maelstrom_core.specs import (
    BindMountSpec,
    CollapsedJob,
    ContainersItem,
    ContainerSpec,
    ContainerStore,
    ImageConfig,
    JobItem,
    JobSpec,
    parse_container_table,
    parse_job_stream,
)


def c(**obj: object) -> ContainerSpec:
    return parse_container_table(obj, location="test")


def tar(name: str) -> dict[str, str]:
    return {"tar": name}


def job(**container: object) -> JobSpec:
    return JobSpec("prog", c(**container))


IMAGES = {
    "docker://img": ImageConfig(
        layers=(TarLayer("img-1.tar"), TarLayer("img-2.tar")),
        environment=(("PATH", "/usr/bin"), ("LANG", "C")),
        working_directory="/img",
    ),
    "docker://bare": ImageConfig(),
}
fetched: list[str] = []


def image_config(name: str) -> ImageConfig:
    fetched.append(name)
    return IMAGES[name]


@pytest.fixture
def store() -> ContainerStore:
    fetched.clear()
    s = ContainerStore(client_environment={"HOME": "/home/u"}, image_config=image_config)
    # Added child-first: parents may be defined after the containers naming them.
    s.add("p4", c(layers=[tar("p4.tar")]))
    s.add("p3", c(parent={"name": "p2", "use": ["environment"]}, layers=[tar("p3.tar")]))
    s.add("p2", c(parent="p1", added_layers=[tar("p2.tar")]))
    s.add("p1", c(image="docker://img", added_layers=[tar("p1.tar")]))
    return s


def layer_names(collapsed: CollapsedJob) -> list[str]:
    return [layer.path for layer in collapsed.layers if isinstance(layer, TarLayer)]


# --- vectors ---------------------------------------------------------------------------------


def test_layers_without_parent(store: ContainerStore) -> None:
    assert layer_names(store.collapse(job(layers=[tar("foo.tar")]))) == ["foo.tar"]
    assert fetched == []


def test_layers_prepended_along_the_chain_image_first(store: ContainerStore) -> None:
    collapsed = store.collapse(job(parent="p2", added_layers=[tar("foo.tar")]))
    assert layer_names(collapsed) == ["img-1.tar", "img-2.tar", "p1.tar", "p2.tar", "foo.tar"]
    assert collapsed.image == "docker://img"
    assert collapsed.uses_image_layers


def test_layers_set_with_implicit_use_replace_inherited(store: ContainerStore) -> None:
    # The job's own `layers` drops layers from the implicit use: nothing inherited.
    collapsed = store.collapse(job(parent="p2", layers=[tar("foo.tar")]))
    assert layer_names(collapsed) == ["foo.tar"]
    # ...but other fields still come through: the image's working directory.
    assert collapsed.working_directory == "/img"
    assert not collapsed.uses_image_layers


def test_explicit_use_without_layers_inherits_none(store: ContainerStore) -> None:
    collapsed = store.collapse(
        job(parent={"name": "p3", "use": ["layers", "environment"]}, added_layers=[tar("f")])
    )
    # p3 uses only p2's environment, so p3's own layers are the last ones inherited.
    assert layer_names(collapsed) == ["p3.tar", "f"]
    assert collapsed.image == "docker://img"
    assert not collapsed.uses_image_layers
    assert collapsed.environment == ("LANG=C", "PATH=/usr/bin")


def test_container_without_parent_ends_the_chain(store: ContainerStore) -> None:
    collapsed = store.collapse(job(parent="p4", added_layers=[tar("f")]))
    assert layer_names(collapsed) == ["p4.tar", "f"]
    assert collapsed.image is None
    assert fetched == []


def test_mounts_prepended_and_masked(store: ContainerStore) -> None:
    store.add("m1", c(layers=[tar("m")], mounts=[{"type": "proc", "mount_point": "/proc"}]))
    store.add("m2", c(parent="m1", added_mounts=[{"type": "tmp", "mount_point": "/tmp"}]))
    mount = {"type": "bind", "mount_point": "/d", "local_path": "data"}
    assert store.collapse(job(parent="m2", added_mounts=[mount])).mounts == (
        ProcMount("/proc"),
        TmpMount("/tmp"),
        BindMountSpec("/d", "data"),
    )
    assert store.collapse(job(parent="m2", mounts=[mount])).mounts == (BindMountSpec("/d", "data"),)
    only_layers = {"name": "m2", "use": ["layers"]}
    assert store.collapse(job(parent=only_layers)).mounts == ()


def test_environment_chain_and_prev(store: ContainerStore) -> None:
    store.add("e1", c(image="docker://img", added_environment={"PATH": "$prev{PATH}:/e1"}))
    store.add("e2", c(parent="e1", added_environment=[{"vars": {"X": "1"}, "extend": True}]))
    collapsed = store.collapse(
        job(parent="e2", added_environment={"PATH": "$prev{PATH}:/job", "H": "$env{HOME}"})
    )
    assert collapsed.environment == (
        "H=/home/u",
        "LANG=C",
        "PATH=/usr/bin:/e1:/job",
        "X=1",
    )


def test_environment_set_directly_drops_the_image_environment(store: ContainerStore) -> None:
    collapsed = store.collapse(job(image="docker://img", environment={"A": "b"}))
    assert collapsed.environment == ("A=b",)
    with pytest.raises(SpecError, match='unknown variable "PATH"'):
        store.collapse(job(image="docker://img", environment={"P": "$prev{PATH}"}))


def test_extend_false_replaces_inherited_environment(store: ContainerStore) -> None:
    collapsed = store.collapse(
        job(
            image="docker://img",
            added_environment=[{"vars": {"P": "$prev{PATH}"}, "extend": False}],
        )
    )
    assert collapsed.environment == ("P=/usr/bin",)


# --- scalars ---------------------------------------------------------------------------------

SCALARS: list[tuple[str, object, object, object]] = [
    # field, parent's value, job's value, default
    ("working_directory", "/parent", "/job", "/"),
    ("enable_writable_file_system", True, False, False),
    ("network", "loopback", "disabled", Network.DISABLED),
    ("user", 100, 200, 0),
    ("group", 101, 201, 0),
]


def _value(field: str, value: object) -> object:
    return Network(value) if field == "network" else value


@pytest.mark.parametrize(("field", "parent_value", "job_value", "default"), SCALARS)
def test_scalar_from_nearest_definer(
    store: ContainerStore, field: str, parent_value: object, job_value: object, default: object
) -> None:
    store.add("s1", c(layers=[tar("s")], **{field: parent_value}))
    store.add("s2", c(parent="s1"))
    # Inherited through a container that does not set it.
    assert getattr(store.collapse(job(parent="s2")), field) == _value(field, parent_value)
    # Set by the job with implicit use: the job's value wins.
    own = store.collapse(job(parent="s2", **{field: job_value}))
    assert getattr(own, field) == _value(field, job_value)
    # Explicit use without the field: default, even though an ancestor sets it.
    explicit = store.collapse(job(parent={"name": "s2", "use": ["layers"]}))
    assert getattr(explicit, field) == default
    # Explicit use with the field: inherited.
    named = store.collapse(job(parent={"name": "s2", "use": ["layers", field]}))
    assert getattr(named, field) == _value(field, parent_value)
    # An intermediate link whose use lacks the field cuts it off.
    store.add("s3", c(parent={"name": "s1", "use": ["layers"]}))
    assert getattr(store.collapse(job(parent="s3")), field) == default


@pytest.mark.parametrize(("field", "parent_value", "job_value", "default"), SCALARS)
def test_scalar_explicit_use_conflict_is_a_parse_error(
    field: str, parent_value: object, job_value: object, default: object
) -> None:
    with pytest.raises(SpecError, match=f"field `{field}` cannot be set if `parent`"):
        c(parent={"name": "x", "use": [field]}, **{field: job_value})


def test_nearest_definer_wins_over_further_ones(store: ContainerStore) -> None:
    store.add("u1", c(layers=[tar("u")], user=1, group=1))
    store.add("u2", c(parent="u1", user=2))
    collapsed = store.collapse(job(parent="u2"))
    assert (collapsed.user, collapsed.group) == (2, 1)


def test_working_directory_from_image(store: ContainerStore) -> None:
    assert store.collapse(job(image="docker://img")).working_directory == "/img"
    assert store.collapse(job(image="docker://img", working_directory="/w")).working_directory == (
        "/w"
    )
    only_layers = {"name": "docker://img", "use": ["layers"]}
    assert store.collapse(job(image=only_layers)).working_directory == "/"
    # An image with no WorkingDir leaves the default.
    assert store.collapse(job(image="docker://bare", layers=[tar("x")])).working_directory == "/"


def test_defaults() -> None:
    store = ContainerStore(client_environment={})
    assert store.collapse(job(layers=[tar("x")])) == CollapsedJob(
        program="prog", layers=(TarLayer("x"),)
    )


# --- images ----------------------------------------------------------------------------------


def test_image_parts_selected_by_use(store: ContainerStore) -> None:
    collapsed = store.collapse(
        job(image={"name": "docker://img", "use": ["environment"]}, layers=[tar("x")])
    )
    assert layer_names(collapsed) == ["x"]
    assert collapsed.environment == ("LANG=C", "PATH=/usr/bin")
    assert collapsed.working_directory == "/"


def test_image_not_fetched_when_nothing_is_used(store: ContainerStore) -> None:
    store.add("ib", c(image={"name": "docker://img", "use": ["layers"]}, added_layers=[tar("b")]))
    collapsed = store.collapse(job(parent={"name": "ib", "use": ["user"]}, layers=[tar("x")]))
    assert layer_names(collapsed) == ["x"]
    assert collapsed.image is None
    assert fetched == []


def test_image_needed_without_provider_is_a_clear_error() -> None:
    store = ContainerStore(client_environment={})
    with pytest.raises(SpecError) as info:
        store.collapse(job(image="docker://alpine"))
    assert str(info.value) == "container images are not supported yet: docker://alpine"
    # When the chain no longer uses anything from the image, no provider is needed.
    store.add("base", c(image="docker://alpine", added_layers=[tar("b")]))
    collapsed = store.collapse(job(parent={"name": "base", "use": ["user"]}, layers=[tar("j")]))
    assert layer_names(collapsed) == ["j"]


def test_image_with_no_layers_and_no_own_layers(store: ContainerStore) -> None:
    with pytest.raises(SpecError, match=r"^At least one layer must be specified"):
        store.collapse(job(image="docker://bare"))


# --- chain errors ----------------------------------------------------------------------------


def test_unknown_parent(store: ContainerStore) -> None:
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent="nope"))
    assert str(info.value) == 'couldn\'t find parent container "nope"'
    store.add("mid", c(parent="gone", layers=[tar("m")]))
    with pytest.raises(SpecError, match='couldn\'t find parent container "gone"'):
        store.collapse(job(parent="mid"))


def test_walk_stops_when_use_is_exhausted(store: ContainerStore) -> None:
    # As in the original: nothing more can be inherited, so the unknown parent is not looked up.
    store.add("p", c(group=202, parent="unknown"))
    collapsed = store.collapse(
        job(parent={"name": "p", "use": ["group"]}, user=101, layers=[tar("x")])
    )
    assert (collapsed.user, collapsed.group) == (101, 202)


def test_ancestor_loops(store: ContainerStore) -> None:
    store.add("a", c(parent="b"))
    store.add("b", c(parent="c"))
    store.add("c", c(parent="a"))
    store.add("self", c(parent="self"))
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent="a"))
    assert str(info.value) == "ancestor loop: a -> b -> c -> a"
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent="self"))
    assert str(info.value) == "ancestor loop: self -> self"


def test_label_prefixes_errors(store: ContainerStore) -> None:
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent="nope"), label="jobs.json: job 4")
    assert str(info.value) == 'jobs.json: job 4: couldn\'t find parent container "nope"'


def test_sys_mount_with_local_network(store: ContainerStore) -> None:
    store.add("net", c(layers=[tar("n")], network="local"))
    message = (
        'A "sys" mount is not compatible with local networking. Check the documentation for '
        'the "network" field of "JobSpec".'
    )
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent="net", added_mounts=[{"type": "sys", "mount_point": "/sys"}]))
    assert str(info.value) == message
    ok = store.collapse(job(parent="net", mounts=[{"type": "proc", "mount_point": "/proc"}]))
    assert ok.network is Network.LOCAL
    loopback = store.collapse(
        job(layers=[tar("x")], network="loopback", mounts=[{"type": "sys", "mount_point": "/s"}])
    )
    assert loopback.mounts == (SysMount("/s"),)


def test_zero_layers(store: ContainerStore) -> None:
    with pytest.raises(SpecError) as info:
        store.collapse(job())
    assert str(info.value) == (
        "At least one layer must be specified, or an image must be used that has at least one "
        "layer."
    )
    store.add("empty", c(layers=[]))
    with pytest.raises(SpecError, match="At least one layer"):
        store.collapse(job(parent="empty"))


# --- end to end ------------------------------------------------------------------------------


def test_reference_stream_collapses(store: ContainerStore) -> None:
    IMAGES["docker://alpine"] = ImageConfig(layers=(TarLayer("alpine.tar"),))
    IMAGES["docker://ubuntu"] = ImageConfig(
        layers=(TarLayer("ubuntu.tar"),), environment=(("PATH", "/bin"),), working_directory="/u"
    )
    text = (
        '{"image":"docker://alpine","program":"echo","arguments":["Hello","world!"]}\n'
        '{"containers":{"base":{"image":"docker://ubuntu","added_layers":[{"stubs":["/tmp/"]}],'
        '"mounts":[{"type":"tmp","mount_point":"/tmp"}]}}}\n'
        '{"parent":"base","program":"ls","arguments":["/"],"timeout":5}\n'
    )
    collapsed = []
    for item in parse_job_stream(text, source_name="jobs.json"):
        if isinstance(item, ContainersItem):
            store.add_all(item.containers)
        else:
            assert isinstance(item, JobItem)
            collapsed.append(store.collapse(item.spec, label=f"jobs.json: job {item.index}"))
    assert collapsed == [
        CollapsedJob(
            program="echo",
            layers=(TarLayer("alpine.tar"),),
            arguments=("Hello", "world!"),
            image="docker://alpine",
            uses_image_layers=True,
        ),
        CollapsedJob(
            program="ls",
            layers=(TarLayer("ubuntu.tar"), StubsLayer(("/tmp/",))),
            arguments=("/",),
            environment=("PATH=/bin",),
            mounts=(TmpMount("/tmp"),),
            working_directory="/u",
            timeout=5,
            image="docker://ubuntu",
            uses_image_layers=True,
        ),
    ]


def test_to_job_spec_resolves_bind_mounts(store: ContainerStore) -> None:
    collapsed = store.collapse(
        job(
            layers=[tar("a"), tar("b")],
            mounts=[
                {
                    "type": "bind",
                    "mount_point": "/d",
                    "local_path": "data/../in",
                    "read_only": True,
                },
                {"type": "bind", "mount_point": "/abs", "local_path": "/etc"},
            ],
            user=3,
        )
    )
    refs = (LayerRef(b"\1" * 32, ArtifactType.TAR), LayerRef(b"\2" * 32, ArtifactType.MANIFEST))
    resolved = collapsed.to_job_spec(refs, project_dir="/proj")
    assert resolved == ResolvedJobSpec(
        program="prog",
        layers=refs,
        mounts=(BindMount("/d", "/proj/in", True), BindMount("/abs", "/etc", False)),
        user=3,
    )
    assert resolved.must_run_locally
    with pytest.raises(InternalError):
        collapsed.to_job_spec(refs[:1], project_dir="/proj")


def test_names_in_messages_stay_on_one_line(store: ContainerStore) -> None:
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent='a\n"b'))
    assert str(info.value) == 'couldn\'t find parent container "a\\n\\"b"'
    store.add("x\ty", c(parent="x\ty"))
    with pytest.raises(SpecError) as info:
        store.collapse(job(parent="x\ty"))
    assert str(info.value) == "ancestor loop: x\\ty -> x\\ty"
