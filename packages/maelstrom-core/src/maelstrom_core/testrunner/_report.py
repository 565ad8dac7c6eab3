"""What a test run reports: per-case results, the simple UI's lines, the summary, JUnit XML.

Plain functions over plain values, so every front end and UI prints the same thing and tests
can check the text without a terminal.
"""

from __future__ import annotations

import enum
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CaseResult",
    "CaseStatus",
    "RunSummary",
    "format_case_line",
    "format_summary",
    "write_junit_xml",
]


class CaseStatus(enum.Enum):
    OK = "OK"
    FAIL = "FAIL"
    TIMEOUT = "TIMEOUT"
    ERR = "ERR"
    IGNORED = "IGNORED"

    @property
    def failed(self) -> bool:
        return self in (CaseStatus.FAIL, CaseStatus.TIMEOUT, CaseStatus.ERR)


_STYLE = {
    CaseStatus.OK: "green",
    CaseStatus.FAIL: "red",
    CaseStatus.TIMEOUT: "red",
    CaseStatus.ERR: "red",
    CaseStatus.IGNORED: "yellow",
}


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One finished (or ignored) test case, as the UI and reports see it."""

    name: str
    status: CaseStatus
    duration: float | None = None
    detail: str | None = None  # "killed by signal 9", "execution error: ...", truncation notes
    stdout: tuple[str, ...] = ()  # failure output, fixture noise already stripped
    stderr: tuple[str, ...] = ()
    package: str = ""  # for JUnit's classname


@dataclass(slots=True)
class RunSummary:
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    not_run: str | None = None  # "5", "~5", ">5" or "unknown number of", after an early stop

    def add(self, result: CaseResult) -> None:
        if result.status is CaseStatus.OK:
            self.succeeded += 1
        elif result.status is CaseStatus.IGNORED:
            self.ignored.append(result.name)
        else:
            self.failed.append(result.name)


def _styled(text: str, style: str, color: bool) -> str:
    if not color:
        return text
    codes = {"green": "32", "red": "31", "yellow": "33", "bold": "1"}
    return f"\x1b[{codes[style]}m{text}\x1b[0m"


def format_case_line(result: CaseResult, width: int, *, color: bool = False) -> str:
    """``<name>.......<STATUS> <secs>s`` filling ``width`` columns; long names lose their start."""
    status = result.status.value
    duration = f"{result.duration:.3f}s" if result.duration is not None else ""
    trailer = f"{_styled(status, _STYLE[result.status], color)} {duration:>8}"
    trailer_width = len(status) + 1 + max(len(duration), 8)
    name = result.name
    if width <= 10:
        return f"{name} {_styled(status, _STYLE[result.status], color)}"
    if len(name) + trailer_width < width:
        dots = "." * (width - trailer_width - len(name))
        return f"{_styled(name, 'bold', color)}{dots}{trailer}"
    keep = max(width - 2 - trailer_width, 0)
    name = name[len(name) - keep :] if keep else ""
    dots = "." * max(width - trailer_width - len(name) - 1, 0)
    return f"<{_styled(name, 'bold', color)}{dots}{trailer}"


def format_summary(summary: RunSummary, width: int, *, color: bool = False) -> list[str]:
    """The block printed after every run, as the original prints it."""
    heading = " Test Summary "
    pad = "=" * max((width - len(heading)) // 2, 0)
    lines = ["", f"{pad}{heading}{pad}"]
    labels = ["Successful Tests", "Failed Tests"]
    if summary.ignored:
        labels.append("Ignored Tests")
    if summary.not_run is not None:
        labels.append("Tests Not Run")
    column = max(len(label) for label in labels)

    def count_line(label: str, style: str, value: object) -> str:
        return f"{_styled(label.ljust(column), style, color)}: {value!s:>9}"

    lines.append(count_line("Successful Tests", "green", summary.succeeded))
    lines.append(count_line("Failed Tests", "red", len(summary.failed)))
    lines.extend(_name_lines(summary.failed, "failure", "red", color))
    if summary.ignored:
        lines.append(count_line("Ignored Tests", "yellow", len(summary.ignored)))
        lines.extend(_name_lines(summary.ignored, "ignored", "yellow", color))
    if summary.not_run is not None:
        lines.append(count_line("Tests Not Run", "yellow", summary.not_run))
    return lines


def _name_lines(names: Sequence[str], word: str, style: str, color: bool) -> list[str]:
    name_width = max((len(name) for name in names), default=0)
    return [f"    {name.ljust(name_width)}: {_styled(word, style, color)}" for name in names]


def write_junit_xml(path: Path, suite_name: str, results: Iterable[CaseResult]) -> None:
    """A JUnit XML report (the schema CI systems read), written atomically."""
    results = list(results)
    suites = ET.Element("testsuites", name=suite_name)
    by_package: dict[str, list[CaseResult]] = {}
    for result in results:
        by_package.setdefault(result.package or suite_name, []).append(result)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for package, cases in by_package.items():
        counts = {
            "tests": len(cases),
            "failures": sum(c.status in (CaseStatus.FAIL, CaseStatus.TIMEOUT) for c in cases),
            "errors": sum(c.status is CaseStatus.ERR for c in cases),
            "skipped": sum(c.status is CaseStatus.IGNORED for c in cases),
        }
        time = sum(c.duration or 0.0 for c in cases)
        suite = ET.SubElement(
            suites, "testsuite", {"name": package, "time": f"{time:.3f}", **_str_values(counts)}
        )
        for case in cases:
            _junit_case(suite, package, case)
        for key, value in counts.items():
            totals[key] += value
        total_time += time
    suites.attrib.update(_str_values(totals))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    data = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data + b"\n")
    os.replace(f.name, path)


def _junit_case(suite: ET.Element, package: str, case: CaseResult) -> None:
    element = ET.SubElement(
        suite, "testcase", name=case.name, classname=package, time=f"{case.duration or 0.0:.3f}"
    )
    message = case.detail or case.status.value.lower()
    if case.status is CaseStatus.IGNORED:
        ET.SubElement(element, "skipped")
    elif case.status is CaseStatus.ERR:
        ET.SubElement(element, "error", message=message)
    elif case.status in (CaseStatus.FAIL, CaseStatus.TIMEOUT):
        ET.SubElement(element, "failure", message=message, type=case.status.value)
    if case.stdout:
        ET.SubElement(element, "system-out").text = _xml_safe("\n".join(case.stdout))
    if case.stderr:
        ET.SubElement(element, "system-err").text = _xml_safe("\n".join(case.stderr))


def _str_values(counts: dict[str, int]) -> dict[str, str]:
    return {key: str(value) for key, value in counts.items()}


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot hold most control characters; test output often has them (colours)."""
    return "".join(ch if ch in "\t\n\r" or ord(ch) >= 0x20 else f"\\x{ord(ch):02x}" for ch in text)
