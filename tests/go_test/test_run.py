"""maelstrom-go-test end to end: the installed script builds real Go projects and runs each
case in its own container; statuses are checked against what ``go test`` itself says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest

from tests._helpers.cli import ScriptResult, clean_env, run_script

pytestmark = pytest.mark.requires_userns

SCRIPT = "maelstrom-go-test"
LINE = re.compile(
    r"^(?P<name>\S+ \S+?)\.*\s*(?P<status>OK|FAIL|TIMEOUT|ERR|IGNORED)(\s+[0-9.]+s)?\s*$"
)

DEFAULT_DIRECTIVE = """\
[[directives]]
layers = [{ stubs = [ "/{proc,sys,tmp}/", "/dev/{full,null,random,urandom,zero}" ] }]
mounts = [
    { type = "tmp", mount_point = "/tmp" },
    { type = "proc", mount_point = "/proc" },
    { type = "sys", mount_point = "/sys" },
    { type = "devices", devices = ["full", "null", "random", "urandom", "zero"] },
]
"""


@cache
def go_settings() -> dict[str, str]:
    # The tests run with a scratch HOME; go's caches and settings stay the real ones, so every
    # test shares one warm build cache. A user without a home (the unprivileged test user)
    # gets one per-user cache in the temporary directory instead.
    names = ["GOCACHE", "GOMODCACHE", "GOPATH", "GOENV", "GOFLAGS"]
    out = subprocess.run(["go", "env", "-json", *names], capture_output=True, check=True).stdout
    settings = {k: v for k, v in json.loads(out).items() if v}
    scratch = Path(tempfile.gettempdir()) / f"maelstrom-go-test-go-{os.geteuid()}"
    for name in ("GOCACHE", "GOPATH"):
        if not _writable(Path(settings.get(name, "/nonexistent"))):
            settings[name] = str(scratch / name.lower())
            settings.pop("GOMODCACHE", None)
    return settings


def _writable(path: Path) -> bool:
    while not path.exists():
        path = path.parent
    return os.access(path, os.W_OK)


def run(project: Path, *args: str, timeout: float = 180) -> ScriptResult:
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    env = clean_env(home, **go_settings())
    return run_script(SCRIPT, "--ui", "simple", *args, env=env, cwd=project, timeout=timeout)


def statuses(stdout: str) -> dict[str, list[str]]:
    """``{display name: [status, ...]}`` of the simple UI's case lines, in output order."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            found.setdefault(match["name"], []).append(match["status"])
    return found


def first_failure(stdout: str) -> str | None:
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match and match["status"] in ("FAIL", "TIMEOUT", "ERR"):
            return match["name"]
    return None


def go_test_status(project: Path, package_dir: str, name: str) -> str:
    """What plain ``go test -json -run ^name$`` says of one top-level case, in our words."""
    proc = subprocess.run(
        ["go", "test", "-json", "-count=1", "-run", f"^{name}$", f"./{package_dir}"],
        cwd=project,
        env={**os.environ, **go_settings()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    actions = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    own = [
        a["Action"]
        for a in actions
        if a.get("Test") == name and a["Action"] in ("pass", "fail", "skip")
    ]
    if not own:  # the binary died mid-test (os.Exit): only the package fails
        own = [a["Action"] for a in actions if "Test" not in a and a["Action"] in ("pass", "fail")]
    return {"pass": "OK", "fail": "FAIL", "skip": "IGNORED"}[own[-1]]


def write_spec(project: Path, extra: str = "") -> None:
    (project / "maelstrom-go-test.toml").write_text(DEFAULT_DIRECTIVE + extra)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_outcome_matches_go_test(go_odd: Path, privilege: str) -> None:
    write_spec(go_odd, '\n[[directives]]\nfilter = "name.equals(TestSleepsForever)"\ntimeout = 2\n')
    junit = go_odd / "report" / "junit.xml"
    result = run(go_odd, "--junit-xml", str(junit))
    found = statuses(result.stdout)
    assert found, result.stdout + result.stderr
    assert all(len(v) == 1 for v in found.values()), result.stdout

    expected = {"example.com/odd/odd TestSleepsForever": "TIMEOUT"}
    for name in found:
        package, case = name.split(" ")
        if case != "TestSleepsForever":
            expected[name] = go_test_status(go_odd, package.removeprefix("example.com/odd/"), case)
    assert {k: v[0] for k, v in found.items()} == expected
    # As the fixture's README has it, so go test did not just agree with a broken build.
    assert expected["example.com/odd/odd TestExits3"] == "FAIL"
    assert expected["example.com/odd/odd TestSkips"] == "IGNORED"
    assert expected["example.com/odd/odd ExampleDouble"] == "OK"
    assert expected["example.com/odd/odd ExampleDouble_wrong"] == "FAIL"
    assert expected["example.com/odd/calm TestGreetEmpty"] == "OK"
    assert len(expected) == 11

    # The run exits with the first failing case's code (in completion order).
    codes = {"TestPanics": 2, "TestExits3": 3}
    first = first_failure(result.stdout)
    assert first is not None
    assert result.exit_code == codes.get(first.split(" ")[1], 1), result.stdout

    # Failure output without the testing package's own lines; a panic's trace on stderr.
    out = result.stdout
    assert "stdout before failing\n    odd_test.go:18: Double(2) = 4, want 5\n" in out
    assert "got:\n6\nwant:\n7\n" in out
    assert "=== RUN   TestFails" not in out
    assert "--- FAIL: TestFails" not in out
    assert "panic: assignment to entry in nil map" in result.stderr

    suites = ET.parse(junit).getroot()
    assert (suites.get("tests"), suites.get("failures"), suites.get("skipped")) == ("11", "6", "1")
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert cases["example.com/odd/odd TestSkips"].find("skipped") is not None
    failure = cases["example.com/odd/odd TestSleepsForever"].find("failure")
    assert failure is not None
    assert failure.get("type") == "TIMEOUT"


def test_exit_code_is_the_test_binarys(go_odd: Path) -> None:
    write_spec(go_odd)
    result = run(go_odd, "-i", "name.equals(TestExits3)")
    assert (result.exit_code, statuses(result.stdout)) == (
        3,
        {"example.com/odd/odd TestExits3": ["FAIL"]},
    )
    result = run(go_odd, "-i", "name.equals(TestPanics)")
    assert result.exit_code == 2
    result = run(go_odd, "-i", "package.equals(example.com/odd/calm) | name.equals(TestSkips)")
    assert result.exit_code == 0, result.stdout
    assert statuses(result.stdout) == {
        "example.com/odd/calm TestGreet": ["OK"],
        "example.com/odd/calm TestGreetEmpty": ["OK"],
        "example.com/odd/odd TestSkips": ["IGNORED"],
    }


def test_tests_run_in_their_package_directory_with_testdata(go_module: Path) -> None:
    # No spec file: the embedded default, which has no layer for kv/testdata.
    (go_module / "maelstrom-go-test.toml").unlink()
    write(
        go_module / "kv" / "cwd_test.go",
        'package kv\n\nimport (\n\t"os"\n\t"testing"\n)\n\n'
        "func TestCwdIsThePackageDir(t *testing.T) {\n"
        '\tif wd, _ := os.Getwd(); wd != "/kv" {\n\t\tt.Fatalf("cwd %q", wd)\n\t}\n}\n\n'
        "func FuzzSeeds(f *testing.F) {\n"
        '\tf.Fuzz(func(t *testing.T, s string) {\n\t\tif s != "seeded" {\n'
        '\t\t\tt.Fatalf("seed %q", s)\n\t\t}\n\t})\n}\n',
    )
    write(
        go_module / "kv" / "testdata" / "fuzz" / "FuzzSeeds" / "one",
        'go test fuzz v1\nstring("seeded")\n',
    )
    # A package at the module root runs in "/", with its testdata at /testdata.
    write(
        go_module / "root_test.go",
        'package kvstore\n\nimport (\n\t"os"\n\t"testing"\n)\n\n'
        "func TestRootTestdata(t *testing.T) {\n"
        '\tb, err := os.ReadFile("testdata/root.txt")\n'
        '\tif wd, _ := os.Getwd(); err != nil || string(b) != "root\\n" || wd != "/" {\n'
        '\t\tt.Fatalf("%q %v %q", b, err, wd)\n\t}\n}\n',
    )
    write(go_module / "testdata" / "root.txt", "root\n")
    result = run(go_module)
    assert result.exit_code == 0, result.stdout + result.stderr
    found = statuses(result.stdout)
    assert found["example.com/kvstore/kv TestLoadSeedFile"] == ["OK"]
    assert found["example.com/kvstore/kv TestCwdIsThePackageDir"] == ["OK"]
    assert found["example.com/kvstore/kv FuzzSeeds"] == ["OK"]
    assert found["example.com/kvstore TestRootTestdata"] == ["OK"]
    assert found["example.com/kvstore/kv TestNeedsNetwork"] == ["IGNORED"]
    assert len(found) == 11


def test_directives(go_module: Path) -> None:
    write(
        go_module / "kv" / "env_test.go",
        'package kv\n\nimport (\n\t"os"\n\t"testing"\n)\n\n'
        "func TestEnv(t *testing.T) {\n"
        '\tif os.Getenv("GREETING") != "hi" {\n\t\tt.Fatal("no GREETING")\n\t}\n}\n\n'
        "func TestCwdRoot(t *testing.T) {\n"
        '\tif wd, _ := os.Getwd(); wd != "/" {\n\t\tt.Fatalf("cwd %q", wd)\n\t}\n}\n\n'
        "func TestShortAndExtraArgs(t *testing.T) {\n"
        '\tif !testing.Short() || os.Args[len(os.Args)-1] != "-test.count=1" {\n'
        '\t\tt.Fatalf("short %v, args %q", testing.Short(), os.Args)\n\t}\n}\n',
    )
    write_spec(
        go_module,
        '\n[[directives]]\nfilter = "name.equals(TestEnv)"\n'
        'added_environment = { GREETING = "hi" }\n'
        '\n[[directives]]\nfilter = "name.equals(TestCwdRoot)"\nworking_directory = "/"\n'
        '\n[[directives]]\nfilter = "package_path.equals(kv) && name.starts_with(TestLoad)"\n'
        "ignore = true\n",
    )
    result = run(go_module, "-i", "package_name.equals(kv)", "--short", "--", "-test.count=1")
    assert result.exit_code == 0, result.stdout + result.stderr
    found = statuses(result.stdout)
    assert found["example.com/kvstore/kv TestShortAndExtraArgs"] == ["OK"]
    assert found["example.com/kvstore/kv TestEnv"] == ["OK"]
    assert found["example.com/kvstore/kv TestCwdRoot"] == ["OK"]
    assert found["example.com/kvstore/kv TestLoad"] == ["IGNORED"]
    assert found["example.com/kvstore/kv TestLoadSeedFile"] == ["IGNORED"]
    assert "example.com/kvstore/internal/textutil TestNormalize" not in found


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-i", "name.equals(TestPasses)"], ["odd TestPasses"]),
        (["-i", "n.matches(^Example)"], ["odd ExampleDouble", "odd ExampleDouble_wrong"]),
        (
            ["-i", "package_import_path.equals(example.com/odd/calm)"],
            ["calm TestGreet", "calm TestGreetEmpty"],
        ),
        (["-i", "package.ends_with(/calm) & name.contains(Empty)"], ["calm TestGreetEmpty"]),
        (["-i", "package_path.equals(calm)"], ["calm TestGreet", "calm TestGreetEmpty"]),
        (
            ["-i", "package_name.globs(c*)", "-x", "name.equals(TestGreet)"],
            ["calm TestGreetEmpty"],
        ),
        (
            ["-i", "package_p.starts_with(o) && name.starts_with(TestS)"],
            ["odd TestSkips", "odd TestSleepsForever", "odd TestSubtests"],
        ),
        (["-x", "package_n.equals(odd)"], ["calm TestGreet", "calm TestGreetEmpty"]),
    ],
)
def test_filters_on_every_selector(go_odd: Path, args: list[str], expected: list[str]) -> None:
    result = run(go_odd, "--list-tests", *args)
    assert result.exit_code == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"example.com/odd/{e}" for e in expected]
    # Packages a filter rules out by package fields alone are not even built.
    built = {p.parent.name for p in (go_odd / ".maelstrom-go-test" / "cache").rglob("*.test")}
    if "package" in " ".join(args):
        assert built == {e.split(" ")[0] for e in expected}


def test_list_modes(go_odd: Path) -> None:
    write(go_odd / "notests" / "n.go", "package notests\n")
    result = run(go_odd, "--list-packages")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "example.com/odd/calm",
        "example.com/odd/notests",
        "example.com/odd/odd",
    ]
    assert not (go_odd / ".maelstrom-go-test" / "cache" / "test-binaries").exists()
    result = run(go_odd, "--list-packages", "-x", "package_path.equals(odd)")
    assert result.stdout.splitlines() == ["example.com/odd/calm", "example.com/odd/notests"]
    result = run(go_odd, "-l")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 11
    assert "example.com/odd/odd TestSleepsForever" in result.stdout.splitlines()


def test_repeat_and_stop_after(go_odd: Path) -> None:
    write_spec(go_odd)
    result = run(go_odd, "--repeat", "3", "-i", "package.equals(example.com/odd/calm)")
    assert result.exit_code == 0, result.stdout
    assert statuses(result.stdout) == {
        "example.com/odd/calm TestGreet": ["OK"] * 3,
        "example.com/odd/calm TestGreetEmpty": ["OK"] * 3,
    }
    result = run(go_odd, "--repeat", "40", "--stop-after", "1", "-i", "name.equals(TestFails)")
    assert result.exit_code == 1
    failed = statuses(result.stdout)["example.com/odd/odd TestFails"]
    assert 1 <= len(failed) < 40
    assert re.search(r"Tests Not Run\s*:\s*\d+", result.stdout), result.stdout


def test_build_failure_exits_with_gos_status(go_odd: Path) -> None:
    write(go_odd / "calm" / "broken_test.go", "package calm\n\nfunc TestBroken(t *testing.T) {\n")
    result = run(go_odd)
    assert result.exit_code == 1
    assert "broken_test.go" in result.stdout + result.stderr
    assert not any(LINE.match(line) for line in result.stdout.splitlines())


def test_outside_a_module_is_a_clear_error(tmp_path: Path) -> None:
    project = tmp_path / "nothing"
    project.mkdir()
    result = run(project)
    assert result.exit_code == 2
    assert "no go.mod in" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_go_is_a_clear_error(go_odd: Path) -> None:
    home = go_odd.parent / "home"
    home.mkdir()
    env = clean_env(home, PATH="/nonexistent")
    result = run_script(SCRIPT, env=env, cwd=go_odd, timeout=60)
    assert result.exit_code == 2
    assert "cannot run go: no go command on PATH" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_init_writes_the_default_spec(go_odd: Path) -> None:
    from maelstrom_go_test._frontend import DEFAULT_SPEC_TOML

    result = run(go_odd, "--init")
    assert result.exit_code == 0, result.stderr
    assert (go_odd / "maelstrom-go-test.toml").read_text() == DEFAULT_SPEC_TOML
    result = run(go_odd, "--init")
    assert result.exit_code == 1
