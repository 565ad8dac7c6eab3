"""The UIs, rendered to rich consoles of a fixed width (a TTY is a forced terminal)."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
from rich.console import Console

from maelstrom_core._broker_client import UploadProgress
from maelstrom_core._job import JobState
from maelstrom_core.errors import UsageError
from maelstrom_core.testrunner import (
    CaseResult,
    CaseStatus,
    FancyUi,
    QuietUi,
    RunSummary,
    SimpleUi,
    choose_ui,
    format_case_line,
    format_summary,
    make_ui,
)
from maelstrom_core.testrunner._ui import JobCounts, UiLogHandler

WIDTH = 50
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

OK = CaseResult("pkg tests::adds", CaseStatus.OK, 0.0123)
FAILED = CaseResult(
    "pkg tests::subtracts",
    CaseStatus.FAIL,
    1.5,
    "killed by signal 9",
    stdout=("assertion failed", "left: 1"),
    stderr=("a warning",),
)
IGNORED = CaseResult("pkg tests::later", CaseStatus.IGNORED)


def consoles(tty: bool) -> tuple[Console, Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    kwargs: dict[str, object] = {"width": WIDTH, "force_terminal": tty}
    if tty:
        kwargs["color_system"] = "standard"
    else:
        kwargs["color_system"] = None
    return Console(file=out, **kwargs), Console(file=err, **kwargs), out, err  # type: ignore[arg-type]


def summary() -> RunSummary:
    result = RunSummary()
    for case in (OK, FAILED, IGNORED):
        result.add(case)
    return result


def drive(ui: SimpleUi | QuietUi | FancyUi) -> None:
    """Two jobs and an ignored case, the way the app reports them."""
    ui.set_status("building artifacts...")
    ui.set_expected(2)
    ui.build_output("   Compiling pkg v0.1.0")
    ui.job_enqueued(1, OK.name)
    ui.job_enqueued(2, FAILED.name)
    ui.case_result(IGNORED)
    ui.job_state(1, JobState.PENDING)
    ui.job_state(1, JobState.RUNNING)
    ui.job_state(2, JobState.RUNNING)
    ui.job_state(2, JobState.PENDING)  # a late report never moves a job back
    ui.tick()
    ui.job_finished(1, OK)
    ui.set_status("")
    ui.tick()


def plain(text: str) -> list[str]:
    return [line.rstrip() for line in ANSI.sub("", text).replace("\r", "\n").split("\n")]


# --- choosing -------------------------------------------------------------------------------


def test_choose_ui() -> None:
    assert choose_ui("auto", stdout_is_tty=True, listing=False) == "fancy"
    assert choose_ui("auto", stdout_is_tty=False, listing=False) == "simple"
    assert choose_ui("auto", stdout_is_tty=True, listing=True) == "simple"
    assert choose_ui("simple", stdout_is_tty=True, listing=True) == "simple"
    assert choose_ui("quiet", stdout_is_tty=False, listing=False) == "quiet"
    for name in ("fancy", "quiet"):
        with pytest.raises(UsageError, match=f"the {name} UI does not support listing"):
            choose_ui(name, stdout_is_tty=True, listing=True)
    with pytest.raises(UsageError, match="unknown UI 'pretty'"):
        choose_ui("pretty", stdout_is_tty=True, listing=False)
    out, err, _, _ = consoles(False)
    assert type(make_ui("quiet", out, err)) is QuietUi
    assert type(make_ui("fancy", out, err)) is FancyUi
    assert type(make_ui("simple", out, err)) is SimpleUi


def test_counts_and_gauge() -> None:
    counts = JobCounts(expected=5)
    counts.by_state[JobState.RUNNING] = 2
    counts.by_state[JobState.COMPLETE] = 1
    counts.failed = 1
    assert counts.reached(JobState.PENDING) == 3
    assert counts.gauge() == "0w 0p 2r 1c (1f) / 5e"
    counts.enqueued = 7
    assert counts.total == 7


# --- simple ---------------------------------------------------------------------------------


def test_simple_without_a_tty_prints_lines_details_and_output() -> None:
    out_console, err_console, out, err = consoles(False)
    with SimpleUi(out_console, err_console) as ui:
        drive(ui)
        ui.job_finished(2, FAILED)
        ui.summary(summary(), ["warning: unused variable"])
    assert out.getvalue().splitlines() == [
        format_case_line(IGNORED, WIDTH),
        format_case_line(OK, WIDTH),
        format_case_line(FAILED, WIDTH),
        "killed by signal 9",
        "assertion failed",
        "left: 1",
        *format_summary(summary(), WIDTH),
        "warning: unused variable",
    ]
    assert err.getvalue() == "a warning\n"
    assert "\x1b" not in out.getvalue()
    assert len(format_case_line(OK, WIDTH)) == WIDTH


def test_simple_on_a_tty_shows_state_bars_and_colour() -> None:
    out_console, err_console, out, _ = consoles(True)
    with SimpleUi(out_console, err_console) as ui:
        ui.set_status("building artifacts...")
        ui.tick()
        assert any(line.startswith("⠋ building artifacts...") for line in plain(out.getvalue()))
        drive(ui)
        bars = plain(out.getvalue())[-4:]
        assert [bar[2:27].rstrip() for bar in bars] == [
            "waiting for artifacts",
            "pending",
            "running",
            "complete (0 failed)",
        ]
        assert [bar.split()[-1] for bar in bars] == ["2/2", "2/2", "2/2", "1/2"]
        ui.job_finished(2, FAILED)
        ui.tick()
        assert plain(out.getvalue())[-1][2:].startswith("complete (1 failed)")
        ui.summary(summary())
    rendered = out.getvalue()
    assert "\x1b[31mFAIL" in rendered  # in red on a TTY
    expected = [ANSI.sub("", line) for line in format_summary(summary(), WIDTH)]
    assert plain(rendered)[-len(expected) - 1 : -1] == expected


# --- quiet ----------------------------------------------------------------------------------


def test_quiet_without_a_tty_prints_only_the_summary() -> None:
    out_console, err_console, out, err = consoles(False)
    with QuietUi(out_console, err_console) as ui:
        drive(ui)
        ui.job_finished(2, FAILED)
        ui.summary(summary())
    assert out.getvalue().splitlines() == format_summary(summary(), WIDTH)
    assert err.getvalue() == ""


def test_quiet_on_a_tty_has_one_bar() -> None:
    out_console, err_console, out, _ = consoles(True)
    with QuietUi(out_console, err_console) as ui:
        drive(ui)
        assert "1/2 tests" in plain(out.getvalue())[-1] or "1/2 tests" in out.getvalue()
        ui.summary(summary())
    text = plain(out.getvalue())
    assert not any(line.startswith("pkg tests::adds.") for line in text)
    assert [line for line in text if line][-1] == ANSI.sub("", format_summary(summary(), WIDTH)[-1])


# --- fancy ----------------------------------------------------------------------------------


def test_fancy_renders_panes_and_ends_with_the_same_summary() -> None:
    out_console, err_console, out, _ = consoles(True)
    with FancyUi(out_console, err_console) as ui:
        drive(ui)
        live = plain(out.getvalue())
        joined = "\n".join(live)
        assert "Running Tests" in joined
        assert "pkg tests::subtracts" in joined
        assert "Build Output" in joined
        assert "Compiling pkg v0.1.0" in joined
        assert "0w 0p 1r 1c (0f) / 2e" in joined
        ui.job_finished(2, FAILED)
        ui.tick()
        assert "Failed Tests" in "\n".join(plain(out.getvalue()))
        ui.summary(summary())
    expected = [ANSI.sub("", s) for s in format_summary(summary(), WIDTH)]
    text = plain(out.getvalue())
    assert text[-len(expected) - 1 : -1] == expected
    assert format_case_line(OK, WIDTH) in text


def test_fancy_restores_the_terminal_on_ctrl_c() -> None:
    out_console, err_console, out, _ = consoles(True)
    ui = FancyUi(out_console, err_console)

    def interrupted() -> None:
        with ui:
            drive(ui)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    rendered = out.getvalue()
    assert rendered.rfind("\x1b[?25h") > rendered.rfind("\x1b[?25l") >= 0  # cursor shown again
    ui.summary(summary())  # printing after the live display is gone still works


# --- logging --------------------------------------------------------------------------------


def test_log_records_go_through_the_ui() -> None:
    out_console, err_console, out, _ = consoles(False)
    ui = SimpleUi(out_console, err_console)
    handler = UiLogHandler(ui)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_ui.routing")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("two\nlines")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == "WARNING two\\nlines\n"


def test_uploads_get_progress_bars_on_a_tty(tmp_path: Path) -> None:
    uploads = UploadProgress()
    active = uploads._start(b"\x01" * 32, tmp_path / "layer.tar", 2_000_000)
    active.sent = 500_000
    for ui_class, marker in ((SimpleUi, "uploading layer.tar"), (FancyUi, "Uploads")):
        out_console, err_console, out, _ = consoles(True)
        with ui_class(out_console, err_console) as ui:
            ui.watch_uploads(uploads)
            ui.tick()
            text = "\n".join(plain(out.getvalue()))
            assert marker in text
            assert "0.5/2.0 MB" in text
