"""The go side of maelstrom-go-test: module root, go list, go test -c, listing, test output.

Real go commands on copies of the repository's Go projects; the output-handling functions are
checked against what real test binaries print.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from maelstrom_core.errors import UsageError
from maelstrom_go_test._go import (
    GoBuild,
    GoCommandFailed,
    GoPackage,
    binary_path,
    build_stamp,
    build_test_binary,
    find_module_root,
    go_environment,
    go_test_c_args,
    is_skip_output,
    job_arguments,
    list_packages,
    list_test_binary,
    parse_go_list,
    quote_meta,
    reuse_allowed,
    short_name,
    strip_fixture_output,
    toolchain_identity,
)

ENV = go_environment()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def bump_mtime(path: Path) -> None:
    # A later mtime than any build in this test could have recorded, without sleeping.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


# --- module root and packages --------------------------------------------------------------


def test_module_root_is_the_nearest_go_mod(go_module: Path) -> None:
    assert find_module_root(go_module / "internal" / "textutil") == go_module
    assert find_module_root(go_module) == go_module
    nested = write(go_module / "tools" / "go.mod", "module example.com/tools\n\ngo 1.22\n")
    assert find_module_root(nested.parent) == nested.parent


def test_no_module_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no go\.mod in .* or any parent directory"):
        find_module_root(tmp_path)


async def test_packages_of_the_main_module_only(go_module: Path) -> None:
    write(go_module / "tools" / "go.mod", "module example.com/tools\n\ngo 1.22\n")
    write(go_module / "tools" / "t_test.go", "package tools\n")
    write(go_module / "notests" / "n.go", "package nothing\n\nfunc F() {}\n")
    packages = {p.import_path: p for p in await list_packages(go_module, ENV)}
    assert sorted(packages) == [
        "example.com/kvstore/internal/textutil",
        "example.com/kvstore/kv",
        "example.com/kvstore/notests",
    ]
    kv = packages["example.com/kvstore/kv"]
    assert (kv.name, kv.rel_path, kv.dir, kv.has_tests) == ("kv", "kv", go_module / "kv", True)
    assert {p.name for p in kv.own_files} == {"kv.go", "kv_test.go", "main_test.go"}
    assert [p.name for p in kv.build_files] == ["kv.go"]
    assert "example.com/kvstore/internal/textutil" in kv.imports
    nothing = packages["example.com/kvstore/notests"]
    assert (nothing.name, nothing.rel_path, nothing.has_tests) == ("nothing", "notests", False)
    root = write(go_module / "root_test.go", "package kvstore\n")
    packages = {p.import_path: p for p in await list_packages(go_module, ENV)}
    assert packages["example.com/kvstore"].rel_path == ""
    root.unlink()


async def test_go_list_failure_carries_gos_status(go_module: Path) -> None:
    (go_module / "go.mod").write_text("module example.com/kvstore\n\ngo 1.22\nnonsense here\n")
    with pytest.raises(GoCommandFailed, match=r"go list -json \./\.\.\. failed .*exit 1") as info:
        await list_packages(go_module, ENV)
    assert info.value.status == 1
    assert any("go.mod" in line for line in info.value.output)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "unreadable output at offset 0"),
        ("[1]", "expected an object"),
        ('{"Dir": "/x"}', "a package has no ImportPath"),
        ('{"ImportPath": "a", "Dir": "/elsewhere"}', "outside the module"),
        ('{"ImportPath": "a", "Dir": "/m/a", "GoFiles": "a.go"}', "GoFiles is not a list"),
    ],
)
def test_bad_go_list_output_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(GoCommandFailed, match=message):
        parse_go_list(text, Path("/m"))


# --- naming and the job's command line -----------------------------------------------------


@pytest.mark.parametrize(
    ("import_path", "short"),
    [
        ("example.com/m/kv", "kv"),
        ("example.com/m/v2", "m"),
        ("example.com/m/kv/v10", "kv"),
        ("example.com/m/v2x", "v2x"),
        ("kvstore", "kvstore"),
        ("v3", "v3"),
    ],
)
def test_short_name(import_path: str, short: str) -> None:
    assert short_name(import_path) == short


def test_binary_path_follows_the_package_path(tmp_path: Path) -> None:
    def package(import_path: str, rel: str) -> GoPackage:
        return GoPackage(import_path, "p", tmp_path / rel, rel, True, (), (), (), ())

    assert binary_path(tmp_path, package("m/a/b", "a/b")) == tmp_path / "a" / "b" / "b.test"
    assert binary_path(tmp_path, package("m/v2", "")) == tmp_path / "m.test"


@pytest.mark.parametrize(
    "name", ["TestPlain", "Test.Dot", "Test(x)|y", "Test[a]{1}^$*+?", "Test\\back", "ÜTestΩ"]
)
def test_quote_meta_matches_the_name_literally(name: str) -> None:
    # RE2 and Python agree on these escapes; only the name itself may match.
    pattern = re.compile(f"^{quote_meta(name)}$")
    assert pattern.fullmatch(name)
    assert not pattern.fullmatch(name + "x")
    assert not pattern.fullmatch("x" + name)


def test_job_arguments() -> None:
    assert job_arguments("Test.X", short=True, fullpath=False, extra=["-test.count", "2"]) == (
        "-test.run",
        "^Test\\.X$",
        "-test.timeout=0",
        "-test.v",
        "-test.short=true",
        "-test.fullpath=false",
        "-test.count",
        "2",
    )


# --- building ------------------------------------------------------------------------------


async def build_all(
    root: Path, *, vet: str | None = None, reuse: bool = True
) -> dict[str, GoBuild]:
    packages = await list_packages(root, ENV)
    by_path = {p.import_path: p for p in packages}
    toolchain = await toolchain_identity(root, ENV)
    results: dict[str, GoBuild] = {}
    for package in packages:
        stamp = (
            build_stamp(
                package,
                by_path,
                root=root,
                toolchain=toolchain,
                go_args=go_test_c_args(Path(), vet),
            )
            if reuse
            else None
        )
        results[package.import_path] = await build_test_binary(
            package, root / "bins", ENV, vet=vet, stamp=stamp
        )
    return results


async def test_build_places_binaries_and_skips_packages_without_tests(go_module: Path) -> None:
    write(go_module / "notests" / "n.go", "package notests\n\nfunc F() {}\n")
    results = await build_all(go_module)
    kv = results["example.com/kvstore/kv"]
    text = results["example.com/kvstore/internal/textutil"]
    none = results["example.com/kvstore/notests"]
    assert kv.binary == go_module / "bins" / "kv" / "kv.test"
    assert text.binary == go_module / "bins" / "internal" / "textutil" / "textutil.test"
    assert none.binary is None
    assert os.access(go_module / "bins" / "kv" / "kv.test", os.X_OK)
    assert not (go_module / "bins" / "notests").exists()


async def test_build_failure_has_gos_status_and_output(go_module: Path) -> None:
    write(go_module / "kv" / "broken_test.go", "package kv\n\nfunc TestBroken(t *testing.T) {\n")
    with pytest.raises(
        GoCommandFailed, match=r"go test -c failed for example\.com/kvstore/kv"
    ) as info:
        await build_all(go_module)
    assert info.value.status == 1
    assert any("broken_test.go" in line for line in info.value.output)


async def test_vet_setting_is_passed_to_go(go_module: Path) -> None:
    # A Printf with a wrong verb fails go's default vet checks; --vet=off builds anyway.
    write(
        go_module / "kv" / "vet_test.go",
        'package kv\n\nimport "testing"\n\nfunc TestVet(t *testing.T) { t.Logf("%d", "x") }\n',
    )
    with pytest.raises(GoCommandFailed) as info:
        await build_all(go_module)
    assert any("wrong type" in line or "%d" in line for line in info.value.output)
    results = await build_all(go_module, vet="off")
    assert results["example.com/kvstore/kv"].binary is not None


async def test_up_to_date_binaries_are_not_rebuilt(go_module: Path) -> None:
    first = await build_all(go_module)
    assert not any(r.reused for r in first.values())
    again = await build_all(go_module)
    assert all(r.reused for r in again.values())

    # A dependency's file changes: kv (which imports textutil) and textutil rebuild.
    bump_mtime(go_module / "internal" / "textutil" / "textutil.go")
    after_dep = await build_all(go_module)
    assert not after_dep["example.com/kvstore/kv"].reused
    assert not after_dep["example.com/kvstore/internal/textutil"].reused

    # A test file of kv changes: only kv rebuilds.
    bump_mtime(go_module / "kv" / "kv_test.go")
    after_test = await build_all(go_module)
    assert not after_test["example.com/kvstore/kv"].reused
    assert after_test["example.com/kvstore/internal/textutil"].reused

    # A new file in the package, other build flags, go.mod: all rebuild.
    write(go_module / "kv" / "extra_test.go", "package kv\n")
    assert not (await build_all(go_module))["example.com/kvstore/kv"].reused
    assert not any(r.reused for r in (await build_all(go_module, vet="off")).values())
    bump_mtime(go_module / "go.mod")
    assert not any(r.reused for r in (await build_all(go_module, vet="off")).values())

    # A package only kv's tests import, through another in-module package.
    write(go_module / "deep" / "deep.go", 'package deep\n\nconst Word = "deep"\n')
    write(
        go_module / "helper" / "helper.go",
        'package helper\n\nimport "example.com/kvstore/deep"\n\n'
        "func Word() string { return deep.Word }\n",
    )
    write(
        go_module / "kv" / "helper_test.go",
        'package kv\n\nimport (\n\t"testing"\n\n\t"example.com/kvstore/helper"\n)\n\n'
        "func TestHelper(t *testing.T) { _ = helper.Word() }\n",
    )
    assert not (await build_all(go_module, vet="off"))["example.com/kvstore/kv"].reused
    assert (await build_all(go_module, vet="off"))["example.com/kvstore/kv"].reused
    bump_mtime(go_module / "deep" / "deep.go")
    assert not (await build_all(go_module, vet="off"))["example.com/kvstore/kv"].reused

    # A binary replaced behind our back is rebuilt, not trusted.
    binary = go_module / "bins" / "kv" / "kv.test"
    binary.write_bytes(b"not a binary")
    rebuilt = await build_all(go_module, vet="off")
    assert not rebuilt["example.com/kvstore/kv"].reused
    assert binary.read_bytes()[:4] == b"\x7fELF"


def test_reuse_is_off_when_files_from_outside_the_module_can_change(go_module: Path) -> None:
    assert reuse_allowed(go_module)
    gomod = go_module / "go.mod"
    original = gomod.read_text()
    gomod.write_text(original + "\nreplace example.com/other => ../other\n")
    assert not reuse_allowed(go_module)
    gomod.write_text(original + "\nreplace example.com/other => example.com/fork v1.0.0\n")
    assert reuse_allowed(go_module)
    gomod.write_text(original)
    (go_module / "vendor").mkdir()
    assert not reuse_allowed(go_module)
    (go_module / "vendor").rmdir()
    write(go_module / "go.work", "go 1.22\n\nuse .\n")
    assert not reuse_allowed(go_module)


# --- listing and test output ---------------------------------------------------------------


@pytest.fixture
async def odd_binary(go_odd: Path) -> Path:
    # A benchmark and a fuzz target with a seed corpus in testdata, beside the fixture's tests.
    write(
        go_odd / "odd" / "more_test.go",
        'package odd\n\nimport "testing"\n\n'
        "func BenchmarkDouble(b *testing.B) { for i := 0; i < b.N; i++ { Double(i) } }\n\n"
        "func FuzzDouble(f *testing.F) {\n"
        "\tf.Fuzz(func(t *testing.T, x int) {\n"
        '\t\tif x == 21 { t.Fatal("twenty-one") }\n'
        "\t})\n}\n",
    )
    # A TestMain that talks on stdout, even while the binary only lists its cases.
    write(
        go_odd / "odd" / "main_test.go",
        'package odd\n\nimport (\n\t"fmt"\n\t"os"\n\t"testing"\n)\n\n'
        'func TestMain(m *testing.M) {\n\tfmt.Println("setting up")\n\tos.Exit(m.Run())\n}\n',
    )
    write(
        go_odd / "odd" / "testdata" / "fuzz" / "FuzzDouble" / "seed21", "go test fuzz v1\nint(21)\n"
    )
    results = await build_all(go_odd)
    binary = results["example.com/odd/odd"].binary
    assert isinstance(binary, Path)
    return binary


async def test_listing_has_tests_fuzz_targets_and_examples_not_benchmarks(
    odd_binary: Path, go_odd: Path
) -> None:
    names = await list_test_binary(odd_binary, go_odd / "odd")
    assert names == [
        "TestPasses",
        "TestFails",
        "TestSkips",
        "TestPanics",
        "TestSleepsForever",
        "TestExits3",
        "TestSubtests",
        "FuzzDouble",
        "ExampleDouble",
        "ExampleDouble_wrong",
    ]


async def test_listing_a_broken_binary_is_an_error(tmp_path: Path) -> None:
    fake = write(tmp_path / "x.test", "#!/bin/sh\necho oops >&2\nexit 4\n")
    fake.chmod(0o755)
    with pytest.raises(GoCommandFailed, match=r"x\.test -test\.list=\. failed \(exit 4\): oops"):
        await list_test_binary(fake, tmp_path)


def run_case(binary: Path, cwd: Path, name: str) -> tuple[int, list[str]]:
    args = job_arguments(name, short=False, fullpath=False, extra=())
    proc = subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout.splitlines()


async def test_skip_detection_on_real_output(odd_binary: Path, go_odd: Path) -> None:
    code, lines = run_case(odd_binary, go_odd / "odd", "TestSkips")
    assert code == 0
    assert is_skip_output("TestSkips", lines)
    code, lines = run_case(odd_binary, go_odd / "odd", "TestPasses")
    assert code == 0
    assert not is_skip_output("TestPasses", lines)
    # Only the case's own SKIP line counts, and only right before the final PASS.
    assert not is_skip_output("TestSkip", ["--- SKIP: TestSkips (0.00s)", "PASS"])
    assert not is_skip_output("TestSkips", ["--- SKIP: TestSkips (0.00s)", "FAIL"])
    assert is_skip_output("TestSkips", ["--- SKIP: TestSkips (0.00s)", "", "PASS", ""])


async def test_fixture_output_is_stripped_per_kind(odd_binary: Path, go_odd: Path) -> None:
    cwd = go_odd / "odd"
    code, lines = run_case(odd_binary, cwd, "TestFails")
    assert code == 1
    assert strip_fixture_output("TestFails", lines) == [
        "stdout before failing",
        "    odd_test.go:18: Double(2) = 4, want 5",
    ]
    code, lines = run_case(odd_binary, cwd, "TestSubtests")
    assert code == 1
    assert strip_fixture_output("TestSubtests", lines) == [
        "=== RUN   TestSubtests/good",
        "=== RUN   TestSubtests/bad",
        "    odd_test.go:42: this subtest fails",
    ]
    code, lines = run_case(odd_binary, cwd, "ExampleDouble_wrong")
    assert code == 1
    assert strip_fixture_output("ExampleDouble_wrong", lines) == ["got:", "6", "want:", "7"]
    # The fuzz target runs its seed corpus from testdata/fuzz, relative to the package dir.
    code, lines = run_case(odd_binary, cwd, "FuzzDouble")
    assert code == 1
    stripped = strip_fixture_output("FuzzDouble", lines)
    # As the original: only the tail is dropped for fuzz targets, so TestMain's line stays.
    assert stripped[:2] == ["setting up", "=== RUN   FuzzDouble"]
    assert any("twenty-one" in line for line in stripped)
    assert not any(line.startswith("FAIL") for line in stripped)


def test_stripping_leaves_unrecognised_output_alone() -> None:
    lines = ["no harness lines here", "at all"]
    for name in ("TestX", "FuzzX", "ExampleX"):
        assert strip_fixture_output(name, lines) == lines
