import xml.etree.ElementTree as ET

from maelstrom_core.testrunner._report import (
    CaseResult,
    CaseStatus,
    RunSummary,
    format_case_line,
    format_summary,
    write_junit_xml,
)


def test_case_line_fills_width_with_dots():
    line = format_case_line(CaseResult("pkg test_a", CaseStatus.OK, 0.1234), 40)
    assert line == "pkg test_a" + "." * 19 + "OK   0.123s"
    assert len(line) == 40


def test_case_line_truncates_long_names_from_the_left():
    name = "package_with_a_long_name tests::module::a_very_long_test_name"
    line = format_case_line(CaseResult(name, CaseStatus.FAIL, 12.5), 40)
    assert line.startswith("<")
    assert line.endswith("FAIL  12.500s")
    assert len(line) == 40
    assert name.endswith(line[1:].split(".")[0])


def test_case_line_without_duration_and_narrow_terminal():
    assert format_case_line(CaseResult("a", CaseStatus.IGNORED), 30).endswith("IGNORED         ")
    assert format_case_line(CaseResult("abc", CaseStatus.ERR), 8) == "abc ERR"


def test_colour_only_when_asked():
    plain = format_case_line(CaseResult("a", CaseStatus.OK, 1.0), 30)
    coloured = format_case_line(CaseResult("a", CaseStatus.OK, 1.0), 30, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[32mOK\x1b[0m" in coloured


def test_summary_block():
    summary = RunSummary()
    for result in [
        CaseResult("a ok", CaseStatus.OK),
        CaseResult("b fails", CaseStatus.FAIL),
        CaseResult("c timeout", CaseStatus.TIMEOUT),
        CaseResult("d skip", CaseStatus.IGNORED),
    ]:
        summary.add(result)
    lines = format_summary(summary, 40)
    assert lines == [
        "",
        "============= Test Summary =============",
        "Successful Tests:         1",
        "Failed Tests    :         2",
        "    b fails  : failure",
        "    c timeout: failure",
        "Ignored Tests   :         1",
        "    d skip: ignored",
    ]


def test_summary_reports_tests_not_run():
    summary = RunSummary(succeeded=3, not_run="~7")
    assert format_summary(summary, 30)[-1] == "Tests Not Run   :        ~7"
    assert "Ignored Tests" not in "\n".join(format_summary(summary, 30))


def test_junit_xml(tmp_path):
    results = [
        CaseResult("t1", CaseStatus.OK, 0.5, package="p1"),
        CaseResult(
            "t2", CaseStatus.FAIL, 1.0, "exited with code 101", ("boom\x1b[0m",), package="p1"
        ),
        CaseResult("t3", CaseStatus.ERR, None, "execution error: no such file", package="p2"),
        CaseResult("t4", CaseStatus.IGNORED, package="p2"),
        CaseResult("t5", CaseStatus.TIMEOUT, 3.0, "timed out", package="p2"),
    ]
    out = tmp_path / "reports" / "junit.xml"
    write_junit_xml(out, "cargo-maelstrom", results)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "5",
        "2",
        "1",
        "1",
    )
    p1, p2 = root.findall("testsuite")
    assert (p1.get("name"), p1.get("failures")) == ("p1", "1")
    t2 = p1.findall("testcase")[1]
    assert t2.find("failure").get("message") == "exited with code 101"
    assert t2.find("system-out").text == "boom\\x1b[0m"
    kinds = [[child.tag for child in case] for case in p2.findall("testcase")]
    assert kinds == [["error"], ["skipped"], ["failure"]]
