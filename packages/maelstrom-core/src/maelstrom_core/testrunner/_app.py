"""The test-runner app: one run of the §4.2 pipeline, ``--init``, listing and ``--watch``.

``run_app`` is every front end's entry point. One run:

1. make the front end, create its state and cache dirs, load the spec file (or the default);
2. compile the filter: any include, minus any exclude;
3. list packages, prune the test DB to them, keep the packages the filter may select (unknown
   counts as a match), and estimate the job count from the DB for the progress display;
4. open the client (standalone, or the broker of ``config.broker``), register the spec
   file's containers, and build: each artifact is listed as soon as it is ready, and each
   selected case becomes one job per ``--repeat`` (or an IGNORED line), run concurrently —
   the client's local worker (or the broker) decides how many run at once;
5. map each outcome to a ``CaseResult`` (front end's ``case_status`` and ``strip_output``),
   update the UI and the DB, and stop early after ``--stop-after`` failures: the build is
   killed, every unfinished job cancelled, and the summary says how many tests did not run;
6. print the summary and the build's warnings, save the DB, write ``--junit-xml``.

The exit code is the first failing job's (in completion order: its exit code, or 1 for a
signal, timeout or error), the build tool's status if the build failed, else 0.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

import trio
from rich.console import Console

from .._job import ExitCode, JobCompleted, JobErrorKind, JobOutcome, JobState, JobTimedOut, Output
from ..client import Client, ClientSettings, open_client
from ..config import TestRunnerConfig, TestRunnerOptions
from ..errors import MaelstromError, SpecError, exception_leaves
from ..specs import CollapsedJob, ImageRef, ImageUse
from ..specs import JobSpec as UserJobSpec
from ._directives import SpecFile, TestMetadata, init_spec_file
from ._filter import CaseInfo, Filter, compile_filter
from ._frontend import BuildFailed, Frontend, Package, TestArtifact, TestCase
from ._report import CaseResult, CaseStatus, RunSummary, write_junit_xml
from ._testdb import TestDb, TestDbStore, TomlValue
from ._ui import Ui, UiLogHandler, UiName, choose_ui, make_ui
from ._watch import ChangeWatcher, watch_excludes

__all__ = ["ENQUEUE_STATUS", "FrontendFactory", "run_app"]

FrontendFactory = Callable[[], Awaitable[Frontend]]
ENQUEUE_STATUS = "building artifacts..."
_TICK_SECONDS = 0.1

log = logging.getLogger("maelstrom_core.testrunner")


async def run_app(
    make_frontend: FrontendFactory,
    config: TestRunnerConfig,
    options: TestRunnerOptions,
    *,
    console: Console | None = None,
    err_console: Console | None = None,
) -> int:
    """Run the test runner as its command line asked; returns the exit code.

    ``console``/``err_console`` default to stdout and stderr (tests pass their own).

    Raises:
        MaelstromError: bad configuration, spec file or filter, an unreadable project, a
            broker that cannot be reached (not in watch mode, where the error is printed
            and the runner waits for the next change).
    """
    config.require_tcp()
    out = console if console is not None else Console(highlight=False)
    err = err_console if err_console is not None else Console(stderr=True, highlight=False)
    if options.init:
        frontend = await make_frontend()
        result = init_spec_file(
            frontend.project_dir, frontend.spec_file_name, frontend.default_spec_toml
        )
        (out if result.exit_code == 0 else err).print(result.message, markup=False)
        return result.exit_code
    ui_name = choose_ui(
        config.ui, stdout_is_tty=out.is_terminal, listing=options.list_mode is not None
    )
    if not options.watch:
        return (await _run_once(make_frontend, config, options, ui_name, out, err)).exit_code
    while True:
        try:
            outcome = await _run_once(make_frontend, config, options, ui_name, out, err)
        except MaelstromError as error:
            # A broken spec file or build mid-edit must not end the watch: say so and wait.
            err.print(f"error: {error}", markup=False, highlight=False)
            outcome = _RunOutcome(error.exit_code, None)
        frontend = outcome.frontend if outcome.frontend is not None else await make_frontend()
        excludes = watch_excludes(
            frontend.project_dir,
            [*frontend.watch_excludes, frontend.state_dir, frontend.cache_dir],
        )
        with ChangeWatcher(frontend.project_dir, excludes) as watcher:
            out.print("waiting for changes...", markup=False, highlight=False)
            await watcher.wait()


@dataclass(frozen=True, slots=True)
class _RunOutcome:
    exit_code: int
    frontend: Frontend | None


async def _run_once(
    make_frontend: FrontendFactory,
    config: TestRunnerConfig,
    options: TestRunnerOptions,
    ui_name: UiName,
    out: Console,
    err: Console,
) -> _RunOutcome:
    """One run from scratch: a fresh front end, spec file, filter and test DB."""
    frontend = await make_frontend()
    for directory in (frontend.state_dir, frontend.cache_dir):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MaelstromError(f"cannot create {directory}: {error.strerror or error}") from None
    spec = SpecFile.load(
        frontend.project_dir, frontend.spec_file_name, frontend.default_spec_toml, frontend.dialect
    )
    test_filter = compile_filter(options.include, options.exclude, frontend.dialect)
    ui = make_ui(ui_name, out, err)
    if options.list_mode in ("binaries", "packages"):
        packages = _select_packages(await frontend.packages(), test_filter)
        lines = await frontend.list_other(
            options.list_mode, packages, lambda info: test_filter.evaluate(info) is not False
        )
        for line in lines:
            ui.list_line(line)
        return _RunOutcome(0, frontend)
    run = _Run(frontend, config, options, spec, test_filter, ui)
    with ui, _logging_into(ui):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_tick, ui)
            try:
                code = await run.run()
            except BaseExceptionGroup as group:
                # Errors of the run's tasks arrive grouped; one error is one error.
                single = _single_error(group)
                if single is None:
                    raise
                raise single from None
            finally:
                nursery.cancel_scope.cancel()
    return _RunOutcome(code, frontend)


async def _tick(ui: Ui) -> None:
    while True:
        ui.tick()
        await trio.sleep(_TICK_SECONDS)


@contextmanager
def _logging_into(ui: Ui) -> Iterator[None]:
    """Send the program's log records to the UI (above any live display) while it runs."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "maelstrom", False)]
    handler = UiLogHandler(ui)
    if ours:
        handler.setFormatter(ours[0].formatter)
        handler.setLevel(ours[0].level)
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.WARNING)
    for h in ours:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for h in ours:
            root.addHandler(h)


def _select_packages(packages: list[Package], test_filter: Filter) -> list[Package]:
    return [p for p in packages if test_filter.evaluate(p.case_info) is not False]


@dataclass(slots=True)
class _Job:
    number: int
    artifact: TestArtifact
    case: TestCase
    name: str
    spec: CollapsedJob


@dataclass(slots=True)
class _Run:
    """The state of one run; ``run()`` drives it."""

    frontend: Frontend
    config: TestRunnerConfig
    options: TestRunnerOptions
    spec: SpecFile
    test_filter: Filter
    ui: Ui
    summary: RunSummary = field(default_factory=RunSummary)
    results: list[CaseResult] = field(default_factory=list)
    exit_code: int = 0
    failures: int = 0
    expected: int | None = None  # jobs the DB predicts, before listing ends
    enqueued: int = 0  # cases accounted for: jobs enqueued plus cases reported ignored
    ignored: int = 0
    all_enqueued: bool = False
    stopped: bool = False
    build_failure: BuildFailed | None = None
    build_lines: list[str] = field(default_factory=list)
    db: TestDb = field(default_factory=TestDb)
    client: Client | None = None
    jobs: trio.Nursery | None = None

    @property
    def listing(self) -> bool:
        return self.options.list_mode == "tests"

    async def run(self) -> int:
        frontend = self.frontend
        store = TestDbStore(frontend.state_dir)
        self.db = store.load(on_warning=log.warning)
        packages = await frontend.packages()
        self._prune_db(packages)
        selected = _select_packages(packages, self.test_filter)
        if not self.listing:
            self._estimate(packages)
        try:
            if self.listing:
                await self._build_and_enqueue(selected)
            else:
                await self._run_jobs(selected)
        finally:
            store.save(self.db)
        if self.listing:
            if self.build_failure is not None:
                return self._report_build_failure()
            return 0
        self._finish()
        if self.build_failure is not None:
            return self._report_build_failure()
        return self.exit_code

    # -- preparation -----------------------------------------------------------------------

    def _prune_db(self, packages: list[Package]) -> None:
        known: dict[str, set[str]] = {}
        for package, artifact_key, _ in self.db.cases():
            known.setdefault(package, set()).add(artifact_key)
        self.db.retain_packages_and_artifacts(
            {
                p.name: p.artifact_keys if p.artifact_keys is not None else known.get(p.name, ())
                for p in packages
            }
        )

    def _estimate(self, packages: list[Package]) -> None:
        by_name = {p.name: p for p in packages}

        def describe(
            package: str, artifact_key: str, case: str, metadata: Mapping[str, TomlValue]
        ) -> CaseInfo | None:
            known = by_name.get(package)
            if known is None:
                return None
            return self.frontend.db_case_info(known, artifact_key, case, metadata)

        count = self.db.count_matching_cases(self.test_filter, describe)
        if count:
            self.expected = count * self.config.repeat
            self.ui.set_expected(self.expected)

    # -- the run ---------------------------------------------------------------------------

    async def _run_jobs(self, selected: list[Package]) -> None:
        settings = ClientSettings(
            project_dir=self.frontend.project_dir,
            cache_dir=self.frontend.cache_dir,
            slots=self.config.slots,
            cache_size=self.config.cache_size,
            inline_limit=self.config.inline_limit,
            template_vars=dict(self.frontend.template_vars),
        )
        async with open_client(settings, broker=self.config.broker) as client:
            self.client = client
            self.ui.watch_uploads(client.uploads)
            client.add_containers(self.spec.containers)
            async with trio.open_nursery() as jobs:
                self.jobs = jobs
                jobs.start_soon(self._build_and_enqueue, selected)

    async def _build_and_enqueue(self, selected: list[Package]) -> None:
        self.ui.set_status(ENQUEUE_STATUS)
        failure: BuildFailed | None = None
        try:
            async with self.frontend.build(selected, self._on_build_line) as artifacts:
                try:
                    async for artifact in artifacts:
                        await self._enqueue_artifact(artifact)
                finally:
                    # An async generator left early must be closed here, inside the build's
                    # context, not later by the garbage collector.
                    aclose = getattr(artifacts, "aclose", None)
                    if aclose is not None:
                        await aclose()
        except* BuildFailed as group:
            # Front ends build inside nurseries, so the failure may come wrapped in a group.
            failure = cast(BuildFailed, exception_leaves(group)[0])
        finally:
            self.ui.set_status("")
        if failure is not None:
            # Nothing else runs after a failed build: running jobs are cancelled too.
            self.build_failure = failure
            if self.jobs is not None:
                self.jobs.cancel_scope.cancel()
            return
        self.all_enqueued = True
        self.ui.set_expected(self.enqueued - self.ignored)

    def _on_build_line(self, line: str) -> None:
        self.build_lines.append(line)
        self.ui.build_output(line)

    async def _enqueue_artifact(self, artifact: TestArtifact) -> None:
        cases = await self.frontend.list_cases(artifact)
        self.db.update_artifact_cases(
            artifact.package.name,
            artifact.key,
            [(case.name, case.metadata) for case in cases],
        )
        for case in cases:
            if self.stopped:
                return
            info = self.frontend.case_info(artifact, case)
            if not self.test_filter.matches(info):
                continue
            name = f"{artifact.display_prefix}{case.name}"
            if self.listing:
                self.ui.list_line(name)
                continue
            metadata = self.spec.metadata_for(info)
            if case.ignored or metadata.ignore:
                self.enqueued += 1
                self.ignored += 1
                self._record(
                    CaseResult(name, CaseStatus.IGNORED, package=artifact.package.name),
                    counted=False,
                )
                continue
            job_spec = self._job_spec(artifact, case, name, metadata)
            for _ in range(self.config.repeat):
                self.enqueued += 1
                job = _Job(self.enqueued, artifact, case, name, job_spec)
                self.ui.job_enqueued(job.number, name)
                assert self.jobs is not None
                self.jobs.start_soon(self._run_job, job)

    def _job_spec(
        self, artifact: TestArtifact, case: TestCase, name: str, metadata: TestMetadata
    ) -> CollapsedJob:
        assert self.client is not None
        program, arguments = self.frontend.job(artifact, case)
        priority, estimate = self.db.scheduling_hint(artifact.package.name, artifact.key, case.name)
        timeout = metadata.timeout
        if self.config.timeout is not None:
            timeout = self.config.timeout or None
        # The binary layers (always present) go in before collapsing, so a container without
        # layers of its own is still valid; the shared-library layer joins once collapsing
        # has said whether the layers come from an image.
        base_layers = tuple(self.frontend.binary_layers(artifact, False))
        container = metadata.container
        container = dataclasses.replace(container, layers=(container.layers or ()) + base_layers)
        # The front end's working directory (go: the package's directory, as `go test` runs
        # tests) applies when neither the directives nor an image's ``use`` give one.
        working_directory = self.frontend.working_directory(artifact)
        parent = container.parent
        if (
            working_directory is not None
            and container.working_directory is None
            and (
                parent is None
                or (isinstance(parent, ImageRef) and ImageUse.WORKING_DIRECTORY not in parent.use)
            )
        ):
            container = dataclasses.replace(container, working_directory=working_directory)
        user_job = UserJobSpec(
            program=program,
            container=container,
            arguments=arguments,
            timeout=timeout,
            priority=priority,
            estimated_duration=estimate,
        )
        try:
            collapsed = self.client.collapse(user_job)
        except SpecError as error:
            raise SpecError(f"{self.spec.source}: test {name}: {error}") from None
        if metadata.resolve_include_shared_libraries(collapsed.uses_image_layers):
            full = tuple(self.frontend.binary_layers(artifact, True))
            own = collapsed.layers[: len(collapsed.layers) - len(base_layers)]
            collapsed = dataclasses.replace(collapsed, layers=own + full)
        return collapsed

    async def _run_job(self, job: _Job) -> None:
        assert self.client is not None

        def on_state(state: JobState) -> None:
            self.ui.job_state(job.number, state)

        try:
            outcome: JobOutcome | MaelstromError = await self.client.run_job(
                job.spec, label=job.name, on_state=on_state
            )
        except MaelstromError as error:
            # A layer that cannot be built fails this case, not the run.
            outcome = error
        except trio.Cancelled:
            self.ui.job_dropped(job.number)
            raise
        result, code = self._result(job, outcome)
        self._update_db(job, result)
        self.ui.job_finished(job.number, result)
        self._record(result, counted=True)
        if result.status.failed:
            if self.exit_code == 0:
                self.exit_code = code
            self.failures += 1
            stop_after = self.config.stop_after
            if stop_after is not None and self.failures >= stop_after and not self.stopped:
                self._stop()

    def _stop(self) -> None:
        """``--stop-after`` fired: no more jobs; the build is killed by leaving its context."""
        self.stopped = True
        if self.jobs is not None:
            self.jobs.cancel_scope.cancel()

    def _record(self, result: CaseResult, *, counted: bool) -> None:
        if not counted:
            self.ui.case_result(result)
        self.summary.add(result)
        self.results.append(result)

    # -- outcomes --------------------------------------------------------------------------

    def _result(self, job: _Job, outcome: JobOutcome | MaelstromError) -> tuple[CaseResult, int]:
        package = job.artifact.package.name
        if isinstance(outcome, MaelstromError):
            return CaseResult(job.name, CaseStatus.ERR, detail=str(outcome), package=package), 1
        if isinstance(outcome, JobCompleted):
            status = self.frontend.case_status(job.artifact, job.case, outcome)
            if not status.failed:
                return CaseResult(job.name, status, outcome.duration, package=package), 0
            detail = None
            code = 1
            if isinstance(outcome.status, ExitCode):
                code = outcome.status.code or 1
            else:
                detail = f"killed by signal {outcome.status.signal}"
            stdout, stderr = self._output(job, outcome.stdout, outcome.stderr)
            result = CaseResult(
                job.name, status, outcome.duration, detail, stdout, stderr, package=package
            )
            return result, code
        if isinstance(outcome, JobTimedOut):
            stdout, stderr = self._output(job, outcome.stdout, outcome.stderr)
            result = CaseResult(
                job.name, CaseStatus.TIMEOUT, outcome.duration, None, stdout, stderr, package
            )
            return result, 1
        kind = "execution error" if outcome.kind is JobErrorKind.EXECUTION else "system error"
        return CaseResult(
            job.name, CaseStatus.ERR, detail=f"{kind}: {outcome.message}", package=package
        ), 1

    def _output(
        self, job: _Job, stdout: Output, stderr: Output
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        out_lines = self.frontend.strip_output(job.artifact, job.case, _lines(stdout.data))
        err_lines = _lines(stderr.data)
        if stdout.truncated:
            out_lines.append(f"job {job.number}: stdout truncated, {stdout.truncated} bytes lost")
        if stderr.truncated:
            err_lines.append(f"job {job.number}: stderr truncated, {stderr.truncated} bytes lost")
        return tuple(out_lines), tuple(err_lines)

    def _update_db(self, job: _Job, result: CaseResult) -> None:
        package, key, case = job.artifact.package.name, job.artifact.key, job.case.name
        seconds = result.duration
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            # An error has no run time; keep the estimate as it was, but remember the failure.
            record = self.db.get_case(package, key, case)
            seconds = record.estimated_duration if record is not None else 0.0
        self.db.update_case(package, key, case, failed=result.status.failed, seconds=seconds)

    # -- the end ---------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.stopped:
            self.summary.not_run = self._not_run()
        trailer = self.frontend.build_warnings(self.build_lines)
        if self.build_failure is not None:
            trailer = [*trailer, *self.build_failure.output]
        self.ui.summary(self.summary, trailer)
        if self.options.junit_xml is not None:
            try:
                write_junit_xml(self.options.junit_xml, self.frontend.name, self.results)
            except OSError as error:
                raise MaelstromError(
                    f"cannot write JUnit report {self.options.junit_xml}: {error.strerror or error}"
                ) from None

    def _not_run(self) -> str:
        """How many tests did not run: exact, ``~N`` from the DB, ``>N``, or unknown."""
        done = len(self.results)
        if self.all_enqueued:
            return str(self.enqueued - done)
        if self.expected is not None and self.expected > done:
            return f"~{self.expected - done}"
        if self.enqueued > done:
            return f">{self.enqueued - done}"
        return "unknown number of"

    def _report_build_failure(self) -> int:
        failure = self.build_failure
        assert failure is not None
        if self.listing:
            for line in [*self.frontend.build_warnings(self.build_lines), *failure.output]:
                self.ui.list_line(line)
        self.ui.error(f"{self.frontend.name}: error: {failure}")
        return failure.status


def _single_error(group: BaseExceptionGroup[BaseException]) -> MaelstromError | None:
    """The one ``MaelstromError`` a group of task errors holds, if it holds just that."""
    leaves = exception_leaves(group)
    if len(leaves) == 1 and isinstance(leaves[0], MaelstromError):
        return leaves[0]
    return None


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
