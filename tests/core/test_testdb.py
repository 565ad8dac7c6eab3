"""The test listing DB: the original's v3 file, history, estimates, priorities, damaged files."""

from __future__ import annotations

import logging
import stat
import textwrap
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maelstrom_core.errors import InternalError, MaelstromError
from maelstrom_core.testrunner import (
    CARGO,
    PYTEST,
    CaseInfo,
    CaseRecord,
    TestDb,
    TestDbStore,
    TomlValue,
    compile_filter,
)
from maelstrom_core.testrunner._testdb import _parse_our_layout

# The file the original's own test suite loads (test_db.rs), outcomes and all.
ORIGINAL_FILE = textwrap.dedent(
    """\
    version = 3

    [package-1."artifact-1.library".case-1-1L-1]
    outcome = "success"
    timings = [0.01, 0.011]

    [package-1."artifact-1.library".case-1-1L-2]
    outcome = "failure"
    timings = [0.02]

    [package-1."artifact-1.library".case-1-1L-3]
    timings = [0.03]

    [package-1."artifact-1.library".case-1-1L-4]
    outcome = "success"
    timings = []

    [package-1."artifact-1.library".case-1-1L-5]
    outcome = "failure"
    timings = []

    [package-1."artifact-1.library".case-1-1L-6]
    outcome = "new"
    timings = []

    [package-1."artifact-1.library".case-1-1L-7]
    timings = []
    """
)

ART = "artifact-1.library"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_reads_the_original_file_format(tmp_path: Path) -> None:
    write(tmp_path / "test-listing.toml", ORIGINAL_FILE)
    db = TestDbStore(tmp_path).load(on_warning=pytest.fail)
    assert db.get_case("package-1", ART, "case-1-1L-1") == CaseRecord("success", (0.01, 0.011))
    assert db.get_case("package-1", ART, "case-1-1L-2") == CaseRecord("failure", (0.02,))
    # A missing outcome means success.
    assert db.get_case("package-1", ART, "case-1-1L-3") == CaseRecord("success", (0.03,))
    # Without timings a case counts as never run, whatever its outcome says.
    for n in range(4, 8):
        assert db.get_case("package-1", ART, f"case-1-1L-{n}") is None
    assert len(list(db.cases())) == 7


def test_writes_the_original_layout() -> None:
    db = TestDb()
    db.update_artifact_cases("package-2", ART, ["case-2-1L-1"])
    db.update_artifact_cases("package-1", "artifact-1.binary", ["case-1-1B-1", "case-1-1B-2"])
    db.update_case("package-1", "artifact-1.binary", "case-1-1B-1", failed=False, seconds=0.013)
    db.update_case("package-1", "artifact-1.binary", "case-1-1B-1", failed=False, seconds=0.014)
    db.update_case("package-1", "artifact-1.binary", "case-1-1B-2", failed=True, seconds=0.015)
    db.update_case("package-1", "artifact-1.binary", "case-1-1B-2", failed=False, seconds=0.016)
    assert db.to_toml() == textwrap.dedent(
        """\
        version = 3

        [package-1."artifact-1.binary".case-1-1B-1]
        timings = [0.013, 0.014]
        outcome = "success"

        [package-1."artifact-1.binary".case-1-1B-2]
        timings = [0.015, 0.016]
        outcome = "failure"

        [package-2."artifact-1.library".case-2-1L-1]
        timings = []
        outcome = "new"
        """
    )


def test_an_empty_db_is_just_the_version() -> None:
    assert TestDb().to_toml() == "version = 3\n"
    assert list(TestDb.from_toml("version = 3\n").cases()) == []


ODD_NAMES = [
    "tests::nested::case",
    "with space",
    'quote"and\\backslash',
    "dotted.name",
    "unicode-é-∑",
    "tab\tand\nnewline",
    "",
    "version",
    "[brackets]",
    "control\x01\x7f",
]


def test_round_trip_with_awkward_names_and_metadata(tmp_path: Path) -> None:
    db = TestDb()
    for i, name in enumerate(ODD_NAMES):
        metadata: dict[str, TomlValue] = {
            "node_id": f"tests/test_x.py::{name}",
            "markers": ["slow", name],
            "weird key": {"n": i, "flag": True, "ratio": 0.5},
        }
        db.update_artifact_cases(f"pkg {name}", f"{name}(library)", [(name, metadata)])
        db.update_case(f"pkg {name}", f"{name}(library)", name, failed=i % 2 == 1, seconds=i / 7)
    store = TestDbStore(tmp_path / "state")
    store.save(db)
    text = store.path.read_text(encoding="utf-8")
    tomllib.loads(text)  # valid TOML
    again = store.load(on_warning=pytest.fail)
    assert again.to_toml() == text
    for i, name in enumerate(ODD_NAMES):
        record = again.get_case(f"pkg {name}", f"{name}(library)", name)
        assert record == CaseRecord("failure" if i % 2 else "success", (i / 7,))
        assert again.metadata(f"pkg {name}", f"{name}(library)", name)["markers"] == ["slow", name]


def test_a_package_named_version_is_not_stored_since_v3_cannot_hold_it() -> None:
    db = TestDb()
    db.update_artifact_cases("version", "a(library)", ["t"])
    db.update_artifact_cases("other", "a(library)", ["t"])
    assert list(TestDb.from_toml(db.to_toml()).cases()) == [("other", "a(library)", "t")]


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=6),
        st.dictionaries(
            st.text(max_size=6),
            st.dictionaries(
                st.text(max_size=6),
                st.lists(st.floats(0, 1e6, allow_nan=False), max_size=5),
                max_size=3,
            ),
            max_size=3,
        ),
        max_size=3,
    )
)
def test_round_trip_property(content: dict[str, dict[str, dict[str, list[float]]]]) -> None:
    db = TestDb()
    for package, artifacts in content.items():
        for artifact, cases in artifacts.items():
            db.update_artifact_cases(package, artifact, list(cases))
            for case, timings in cases.items():
                for n, seconds in enumerate(timings):
                    db.update_case(package, artifact, case, failed=n == 1, seconds=seconds)
    text = db.to_toml()
    again = TestDb.from_toml(text)
    assert again.to_toml() == text
    for package, artifacts in content.items():
        if package == "version":
            continue
        for artifact, cases in artifacts.items():
            for case, timings in cases.items():
                record = again.get_case(package, artifact, case)
                if not timings:
                    assert record is None
                else:
                    assert record is not None
                    assert record.timings == tuple(timings[-3:])
                    assert record.outcome == ("failure" if len(timings) > 1 else "success")


# -- history, estimates, priorities --------------------------------------------------------------


def loaded(text: str) -> TestDb:
    return TestDb.from_toml(textwrap.dedent(text))


def test_keeps_the_last_three_timings_and_any_repeat_failure_fails_the_run() -> None:
    db = loaded(
        """\
        version = 3
        [p."a(library)".t]
        timings = [1.0, 2.0, 3.0]
        outcome = "failure"
        """
    )
    db.update_case("p", "a(library)", "t", failed=False, seconds=4.0)
    db.update_case("p", "a(library)", "t", failed=True, seconds=5.0)  # --repeat: one fails
    db.update_case("p", "a(library)", "t", failed=False, seconds=6.0)
    again = TestDb.from_toml(db.to_toml())
    assert again.get_case("p", "a(library)", "t") == CaseRecord("failure", (4.0, 5.0, 6.0))
    # What the run is scheduled by is what was read, not what it is recording.
    assert db.get_case("p", "a(library)", "t") == CaseRecord("failure", (1.0, 2.0, 3.0))


def test_a_passing_rerun_of_a_failed_case_is_a_success() -> None:
    db = loaded(
        """\
        version = 3
        [p."a(library)".t]
        timings = [1.0, 2.0]
        outcome = "failure"
        """
    )
    db.update_case("p", "a(library)", "t", failed=False, seconds=3.0)
    again = TestDb.from_toml(db.to_toml())
    assert again.get_case("p", "a(library)", "t") == CaseRecord("success", (1.0, 2.0, 3.0))


def test_estimate_is_the_mean_and_priority_favours_new_and_failed() -> None:
    db = loaded(
        """\
        version = 3
        [p."a(library)".passed]
        timings = [1.0, 2.0, 6.0]
        outcome = "success"
        [p."a(library)".failed]
        timings = [0.5]
        outcome = "failure"
        [p."a(library)".new]
        timings = []
        outcome = "new"
        [p."a(library)".long_history]
        timings = [1, 2, 3, 4, 5]
        """
    )
    assert db.scheduling_hint("p", "a(library)", "passed") == (0, 3.0)
    assert db.scheduling_hint("p", "a(library)", "failed") == (1, 0.5)
    assert db.scheduling_hint("p", "a(library)", "new") == (1, None)
    assert db.scheduling_hint("p", "a(library)", "never-listed") == (1, None)
    assert db.scheduling_hint("q", "b(test)", "x") == (1, None)
    # A longer list written by someone else is read whole; the next run trims it.
    assert db.scheduling_hint("p", "a(library)", "long_history") == (0, 3.0)
    db.update_case("p", "a(library)", "long_history", failed=False, seconds=6)
    record = TestDb.from_toml(db.to_toml()).get_case("p", "a(library)", "long_history")
    assert record == CaseRecord("success", (4.0, 5.0, 6.0))


def test_the_new_outcome_with_timings_reads_as_a_failure() -> None:
    db = loaded('version = 3\n[p.a.t]\ntimings = [2]\noutcome = "new"\n')
    assert db.get_case("p", "a", "t") == CaseRecord("failure", (2.0,))


def test_renaming_makes_a_case_new() -> None:
    db = loaded('version = 3\n[p."a(library)".old_name]\ntimings = [1.0]\n')
    db.update_artifact_cases("p", "a(library)", ["new_name"])
    assert db.scheduling_hint("p", "a(library)", "new_name") == (1, None)
    assert list(db.cases()) == [("p", "a(library)", "new_name")]


def test_update_artifact_cases_keeps_history_and_replaces_metadata() -> None:
    db = loaded(
        """\
        version = 3
        ["default"."tests/test_a.py"."tests/test_a.py::test_x"]
        timings = [0.25]
        node_id = "tests/test_a.py::test_x"
        markers = ["old"]
        outcome = "success"
        ["default"."tests/test_a.py"."tests/test_a.py::test_gone"]
        timings = [0.5]
        """
    )
    db.update_artifact_cases(
        "default",
        "tests/test_a.py",
        [
            ("tests/test_a.py::test_x", {"node_id": "tests/test_a.py::test_x", "markers": ["new"]}),
            ("tests/test_a.py::test_y", {"node_id": "tests/test_a.py::test_y", "markers": []}),
        ],
    )
    key = ("default", "tests/test_a.py")
    assert db.get_case(*key, "tests/test_a.py::test_x") == CaseRecord("success", (0.25,))
    assert db.metadata(*key, "tests/test_a.py::test_x")["markers"] == ["new"]
    assert db.get_case(*key, "tests/test_a.py::test_y") is None
    assert db.get_case(*key, "tests/test_a.py::test_gone") is None


def test_prunes_to_existing_packages_and_artifacts() -> None:
    db = TestDb()
    db.update_artifact_cases("keep", "lib(library)", ["a"])
    db.update_artifact_cases("keep", "gone(test)", ["b"])
    db.update_artifact_cases("drop", "lib(library)", ["c"])
    db.update_artifact_cases("keep-empty", "x(test)", ["d"])
    db.retain_packages_and_artifacts(
        {"keep": ["lib(library)", "never-seen(test)"], "keep-empty": [], "brand-new": ["z"]}
    )
    assert list(db.cases()) == [("keep", "lib(library)", "a")]
    assert "keep-empty" in TestDb.from_toml(db.to_toml()).to_toml()


def test_expected_count_uses_the_filter_and_known_packages() -> None:
    db = TestDb()
    db.update_artifact_cases("foo", "foo(library)", ["tests::a", "tests::b", "slow::c"])
    db.update_artifact_cases("foo", "integration(test)", ["it_works"])
    db.update_artifact_cases("bar", "bar(library)", ["tests::a"])
    db.update_artifact_cases("stale", "stale(library)", ["tests::a"])

    def describe(
        package: str, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
    ) -> CaseInfo | None:
        if package == "stale":
            return None
        target, _, kind = artifact_key.rstrip(")").partition("(")
        return CaseInfo(package=package, artifact_name=target, artifact_kind=kind, name=case)

    def count(includes: list[str], excludes: list[str]) -> int:
        return db.count_matching_cases(compile_filter(includes, excludes, CARGO), describe)

    assert count([], []) == 5
    assert count(["package.equals(foo)"], []) == 4
    assert count(["all"], ["name.starts_with(slow::)"]) == 4
    assert count(["test"], []) == 1
    assert count(["library & n.c(tests::)"], ["p.eq(bar)"]) == 2


def test_expected_count_sees_pytest_metadata() -> None:
    db = TestDb()
    db.update_artifact_cases(
        "default",
        "test_a.py",
        [("test_a.py::t1", {"markers": ["slow"]}), ("test_a.py::t2", {"markers": []})],
    )

    def describe(
        package: str, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
    ) -> CaseInfo:
        markers = metadata.get("markers", [])
        assert isinstance(markers, list)
        return CaseInfo(
            package=package,
            file=artifact_key,
            node_id=case,
            name=case.rpartition("::")[2],
            markers=frozenset(str(m) for m in markers),
        )

    f = compile_filter(["markers.contains(slow)"], [], PYTEST)
    assert db.count_matching_cases(f, describe) == 1


def test_updating_an_unlisted_case_is_a_bug() -> None:
    with pytest.raises(InternalError, match="list it first"):
        TestDb().update_case("p", "a", "t", failed=False, seconds=1.0)
    db = TestDb()
    db.update_artifact_cases("p", "a", ["t"])
    with pytest.raises(InternalError, match="bad duration"):
        db.update_case("p", "a", "t", failed=False, seconds=-1.0)


# -- the file: versions, damage, atomic writes -----------------------------------------------------


def test_no_file_is_an_empty_db(tmp_path: Path) -> None:
    assert list(TestDbStore(tmp_path / "missing").load(on_warning=pytest.fail).cases()) == []


@pytest.mark.parametrize("version", ["0", "2", "4", "1000000"])
def test_an_unknown_version_resets_silently(tmp_path: Path, version: str) -> None:
    write(tmp_path / "test-listing.toml", f'version = {version}\n[p.a.t]\nfoo = "bar"\n')
    assert list(TestDbStore(tmp_path).load(on_warning=pytest.fail).cases()) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('"garbage": { "foo", "bar" }', "not valid TOML"),
        ("version = 3\n[p.a.t]\ntimings = [1.0\n", "not valid TOML"),
        ("foo = 3\n", "missing version"),
        ('version = "v1"\n', "version is not an integer"),
        ("version = true\n", "version is not an integer"),
        ('version = 3\n[[frob.blah]]\nfoo = "package1"\n', "artifact frob.blah is not a table"),
        ("version = 3\np = 1\n", "package p is not a table"),
        ("version = 3\n[p]\na = 1\n", "artifact p.a is not a table"),
        ("version = 3\n[p.a]\nt = 1\n", "case p.a.t is not a table"),
        ("version = 3\n[p.a.t]\noutcome = 'success'\n", "p.a.t: timings must be a list"),
        ('version = 3\n[p.a.t]\ntimings = ["1"]\n', "p.a.t: timings must be a list"),
        ("version = 3\n[p.a.t]\ntimings = [-1.0]\n", "p.a.t: timings must be a list"),
        ("version = 3\n[p.a.t]\ntimings = [inf]\n", "p.a.t: timings must be a list"),
        ("version = 3\n[p.a.t]\ntimings = [true]\n", "p.a.t: timings must be a list"),
        ("version = 3\n[p.'a b'.t]\ntimings = []\noutcome = \"meh\"\n", "unknown outcome 'meh'"),
    ],
)
def test_a_damaged_file_warns_and_resets(tmp_path: Path, content: str, reason: str) -> None:
    path = write(tmp_path / "test-listing.toml", content)
    warnings: list[str] = []
    db = TestDbStore(tmp_path).load(on_warning=warnings.append)
    assert list(db.cases()) == []
    assert len(warnings) == 1
    assert warnings[0].startswith(f"ignoring damaged test DB {path}: ")
    assert reason in warnings[0]
    assert warnings[0].endswith("; starting afresh")
    assert "\n" not in warnings[0]


def test_the_toml_error_names_the_line(tmp_path: Path) -> None:
    write(tmp_path / "test-listing.toml", "version = 3\n\n[p.a.t]\ntimings = [1.0]\nx = = 2\n")
    warnings: list[str] = []
    TestDbStore(tmp_path).load(on_warning=warnings.append)
    assert "(at line 5, column 5)" in warnings[0]


def test_binary_garbage_warns_and_resets(tmp_path: Path) -> None:
    write(tmp_path / "test-listing.toml", b"\xff\xfe\x00garbage")
    warnings: list[str] = []
    assert list(TestDbStore(tmp_path).load(on_warning=warnings.append).cases()) == []
    path = tmp_path / "test-listing.toml"
    assert warnings == [f"ignoring damaged test DB {path}: not UTF-8 text; starting afresh"]


def test_an_unreadable_path_warns_and_resets(tmp_path: Path) -> None:
    (tmp_path / "test-listing.toml").mkdir()
    warnings: list[str] = []
    assert list(TestDbStore(tmp_path).load(on_warning=warnings.append).cases()) == []
    assert warnings[0].startswith(f"cannot read test DB {tmp_path / 'test-listing.toml'}: ")


def test_warnings_are_logged_by_default(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "test-listing.toml", "not toml at all [")
    with caplog.at_level(logging.WARNING, logger="maelstrom_core.testrunner"):
        TestDbStore(tmp_path).load()
    assert any("ignoring damaged test DB" in r.getMessage() for r in caplog.records)


def test_save_is_atomic_and_replaces_the_old_file(tmp_path: Path) -> None:
    state = tmp_path / "target" / "maelstrom" / "state"
    store = TestDbStore(state)
    write(store.path, ORIGINAL_FILE)
    old_inode = store.path.stat().st_ino
    db = store.load(on_warning=pytest.fail)
    db.update_case("package-1", ART, "case-1-1L-1", failed=True, seconds=0.5)
    store.save(db)
    assert sorted(p.name for p in state.iterdir()) == ["test-listing.toml"]
    assert store.path.stat().st_ino != old_inode  # renamed over, not rewritten in place
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o644
    record = store.load(on_warning=pytest.fail).get_case("package-1", ART, "case-1-1L-1")
    assert record == CaseRecord("failure", (0.01, 0.011, 0.5))


def test_save_creates_the_state_dir(tmp_path: Path) -> None:
    store = TestDbStore(tmp_path / "a" / "b")
    store.save(TestDb())
    assert store.path.read_text(encoding="utf-8") == "version = 3\n"


def test_save_failure_is_a_clear_error_and_leaves_no_temp_file(tmp_path: Path) -> None:
    blocker = write(tmp_path / "state", "a file where the directory should be")
    with pytest.raises(MaelstromError, match=r"^cannot write test DB .*state/test-listing.toml: "):
        TestDbStore(blocker).save(TestDb())
    # The rename itself fails when a directory sits where the file goes.
    state = tmp_path / "state2"
    (state / "test-listing.toml" / "inside").mkdir(parents=True)
    with pytest.raises(MaelstromError, match="cannot write test DB"):
        TestDbStore(state).save(TestDb())
    assert sorted(p.name for p in state.iterdir()) == ["test-listing.toml"]


# -- the fast reader for our own layout --------------------------------------------------------

toml_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            toml_text,
            toml_text,
            toml_text,
            st.dictionaries(
                toml_text.filter(lambda k: k not in ("timings", "outcome")),
                st.one_of(
                    toml_text,
                    st.lists(toml_text, max_size=3),
                    st.integers(-(2**63), 2**63 - 1),
                    st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False),
                ),
                max_size=3,
            ),
            st.lists(st.floats(0, 1e9), max_size=3),
        ),
        max_size=6,
    )
)
def test_the_fast_reader_agrees_with_tomllib_on_what_we_write(
    rows: list[tuple[str, str, str, dict[str, TomlValue], list[float]]],
) -> None:
    db = TestDb()
    for package, artifact, case, metadata, timings in rows:
        db.update_artifact_cases(package, artifact, [(case, metadata)])
        for seconds in timings:
            db.update_case(package, artifact, case, failed=False, seconds=seconds)
    text = db.to_toml()
    fast = _parse_our_layout(text)
    assert fast is not None
    assert fast == tomllib.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "version = 3 # a comment\n",
        "version = 3\r\n[p.a.t]\r\ntimings = [1.0]\r\n",
        "version = 3\n[p.a.t]\ntimings = [1.0]\nmeta = { a = 1 }\n",
        "version = 3\n[p.a]\nt.timings = [1.0]\n",
        "version=3\n",
        "version = 3\n[ p.a.t ]\ntimings = [ 1.0 ]\n",
        "version = 3\n[p.a.t]\ntimings = [1.0]\n[p.a]\n",
        "version = 3\n[p.'a b'.t]\ntimings = [1_000.0]\n",
        "version = 3\n[p.a.t]\ntimings = [\n  1.0,\n  2.0,\n]\n",
        'version = 3\n[p.a.t]\ntimings = []\nnode_id = """multi\nline"""\n',
    ],
)
def test_other_toml_goes_to_tomllib(text: str) -> None:
    assert _parse_our_layout(text) is None
    TestDb.from_toml(text)  # still read, through tomllib


@pytest.mark.parametrize(
    "text",
    [
        "version = 3\nversion = 3\n",
        "version = 3\n[p.a.t]\ntimings = []\n[p.a.t]\ntimings = []\n",
        'version = 3\n[p.a.t]\ntimings = []\nx = "\\ud800"\n',
        "version = 3\n[p.a.t]\ntimings = [01.0]\n",
    ],
)
def test_invalid_toml_is_still_reported(text: str) -> None:
    assert _parse_our_layout(text) is None
    with pytest.raises(MaelstromError, match="not valid TOML"):
        TestDb.from_toml(text)
