"""The click pieces every maelstrom program is built from, and the one place errors become exits.

A program's ``cli.py`` declares its command with ``maelstrom_command`` (which adds Table C, one
option per config key, and the program's own options), and its ``main`` calls ``run_cli``.
``run_cli`` maps errors to exit codes: a ``MaelstromError`` prints ``<program>: error: <message>``
on one line and exits with its ``exit_code``; a click usage error exits 2; Ctrl-C exits 130;
anything else is a bug, reported on one line (with a traceback under ``--log-level debug``) and
exit code 70.

Help is grouped under headings as the original's is: click has no option groups, so
``MaelstromCommand`` renders its own sections from a ``heading`` carried by each parameter.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import click

from ._config import ConfigBase, Key
from ._config_programs import ListMode, RunOptions, TestRunnerOptions
from .errors import InternalError, MaelstromError, UsageError, exception_leaves

__all__ = [
    "CONFIG_FILE",
    "PRINT_AND_EXIT",
    "HeadedArgument",
    "HeadedOption",
    "MaelstromCommand",
    "configure_logging",
    "load_entry_point",
    "maelstrom_command",
    "run_cli",
    "run_entry_point",
    "run_options",
    "run_params",
    "runner_options",
    "runner_params",
]

C = TypeVar("C", bound=ConfigBase)
O = TypeVar("O")  # noqa: E741 - the options type, beside C for the config type

PRINT_AND_EXIT = "Print-and-Exit Options"
CONFIG_FILE = "Config File Options"
TEST_SELECTION = "Test Selection Options"
TEST_METADATA = "Test Metadata Options"
LIST = "List Options"
WATCH = "Watch Options"
REPORT = "Report Options"
JOB = "Job Options"

_VAR_ARGS = "maelstrom.var_args"
# Table C's level names; logging's numeric levels (no import: startup must stay fast).
_LEVELS = {"error": 40, "warning": 30, "info": 20, "debug": 10}


class HeadedOption(click.Option):
    """A click option shown under a help heading."""

    def __init__(self, *args: Any, heading: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heading = heading


class HeadedArgument(click.Argument):
    """A positional argument shown under a help heading, with help text (click gives none)."""

    def __init__(self, *args: Any, heading: str, help: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heading = heading
        self.help_text = help

    def get_help_record(self, ctx: click.Context) -> tuple[str, str]:
        return self.make_metavar(ctx), self.help_text


class _ConfigOption(HeadedOption):
    """The flag of one config key. It takes text; the config layer parses and validates it."""

    def __init__(self, k: Key, config_cls: type[ConfigBase]) -> None:
        decls = [f"-{k.short}"] if k.short else []
        decls += [k.flag, *k.aliases, k.attr]
        common: dict[str, Any] = {"hidden": k.hidden, "heading": k.heading, "help": k.help}
        if k.is_bool:
            super().__init__(decls, is_flag=True, default=False, **common)
        else:
            super().__init__(decls, default=None, metavar=k.metavar, type=click.STRING, **common)
        self.key = k
        self.config_cls = config_cls

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        return record[0], _describe_key(self.key, self.config_cls)


def _write_dl(formatter: click.HelpFormatter, records: Sequence[tuple[str, str]]) -> None:
    """Like ``HelpFormatter.write_dl``, but never breaks a word: env var names stay whole."""
    import textwrap

    first_width = min(max(len(first) for first, _ in records), 30) + 2
    indent = formatter.current_indent
    text_width = max((formatter.width or 80) - indent - first_width, 20)
    for first, second in records:
        lines = textwrap.wrap(
            second, text_width, break_long_words=False, break_on_hyphens=False
        ) or [""]
        if len(first) <= first_width - 2:
            formatter.write(f"{'':>{indent}}{first:<{first_width}}{lines[0]}\n")
            rest = lines[1:]
        else:
            formatter.write(f"{'':>{indent}}{first}\n")
            rest = lines
        for line in rest:
            formatter.write(f"{'':>{indent + first_width}}{line}\n")


def _describe_key(k: Key, config_cls: type[ConfigBase]) -> str:
    env = " or ".join(k.env_names(config_cls.env_prefix))
    return f"{k.help} [default: {k.describe_default(os.environ)}] [env: {env}]"


class MaelstromCommand(click.Command):
    """A click command whose help groups options under headings and ends with the config story.

    A command with a var-arg config key (``extra-test-binary-args``) takes everything after the
    first ``--`` as that list; positional arguments before it are an error, as in the original.
    """

    def __init__(
        self,
        name: str,
        *,
        config_cls: type[ConfigBase],
        distribution: str,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("context_settings", {})
        kwargs["context_settings"].setdefault("help_option_names", ["-h", "--help"])
        super().__init__(name, **kwargs)
        self.config_cls = config_cls
        self.distribution = distribution
        self.var_arg_key = next((k for k in config_cls.config_keys() if k.var_arg), None)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self.var_arg_key is not None and "--" in args:
            split = args.index("--")
            ctx.meta[_VAR_ARGS] = tuple(args[split + 1 :])
            args = args[:split]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        if self.var_arg_key is not None:
            pieces.append(f"[-- {self.var_arg_key.metavar}...]")
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {PRINT_AND_EXIT: [], CONFIG_FILE: []}
        help_option = self.get_help_option(ctx)
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param is help_option:
                sections[PRINT_AND_EXIT].insert(0, record)
            else:
                sections.setdefault(getattr(param, "heading", PRINT_AND_EXIT), []).append(record)
        k = self.var_arg_key
        if k is not None:
            record = (f"-- {k.metavar}...", _describe_key(k, self.config_cls))
            sections.setdefault(k.heading, []).append(record)
        for heading, records in sections.items():
            if records:
                with formatter.section(heading):
                    _write_dl(formatter, records)

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = "Print help and exit."
        return option

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        cls = self.config_cls
        files = ", ".join(str(p) for p in cls.search_path())
        formatter.write_paragraph()
        formatter.write_text(
            "Every config value can be set, from highest to lowest precedence, by its "
            f"command-line option, its {cls.env_prefix}<KEY> environment variable, the generic "
            "MAELSTROM_<KEY> environment variable, and its kebab-case key in a TOML config "
            'file. For example, the value "cache-size" is set by --cache-size, '
            f'{cls.env_prefix}CACHE_SIZE, MAELSTROM_CACHE_SIZE or "cache-size = ..." in a file. '
            "In environment variables booleans are true or false and lists are separated by "
            "spaces; a boolean cannot be set to false on the command line."
        )
        formatter.write_paragraph()
        formatter.write_text(
            f"Config files read, in this order (values set by earlier files override later "
            f"files): {files}."
        )


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    command = ctx.command
    assert isinstance(command, MaelstromCommand)
    # Looked up only when asked: importlib.metadata costs every other run ~40 ms of start-up.
    from importlib.metadata import version

    click.echo(f"{command.config_cls.program} {version(command.distribution)}")
    ctx.exit(0)


def _common_params(config_cls: type[ConfigBase]) -> list[click.Parameter]:
    files = ", ".join(str(p) for p in config_cls.search_path())
    return [
        HeadedOption(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
            heading=PRINT_AND_EXIT,
        ),
        HeadedOption(
            ["-P", "--print-config", "print_config"],
            is_flag=True,
            help="Print every config value, with where it came from, and exit.",
            heading=PRINT_AND_EXIT,
        ),
        HeadedOption(
            ["-c", "--config-file", "config_file"],
            metavar="PATH",
            default=None,
            help=(
                'Read config values only from this TOML file; "-" reads no file. Without this '
                f"option these files are read, earlier files overriding later ones: {files}."
            ),
            heading=CONFIG_FILE,
        ),
    ]


class _RunState:
    """What ``run_cli`` learns from inside the command: whether tracebacks are wanted."""

    def __init__(self) -> None:
        self.debug = False


def maelstrom_command(
    config_cls: type[C],
    *,
    distribution: str,
    params: Sequence[click.Parameter] = (),
    make_options: Callable[[dict[str, Any]], O],
    context_settings: Mapping[str, Any] | None = None,
    help: str | None = None,
) -> Callable[[Callable[[C, O], int | None]], MaelstromCommand]:
    """Build a program's command around ``fn(config, options) -> exit code``.

    The command has Table C (``--help``, ``--version``, ``--print-config``, ``--config-file``),
    one option per key of ``config_cls``, and ``params``. ``make_options`` turns the values of
    ``params`` (by parameter name) into the program's options object, raising ``UsageError``
    for conflicting options. The config is resolved from flags, env and files; with
    ``--print-config`` it is printed and the command exits 0 without calling ``fn``.
    """

    def decorate(fn: Callable[[C, O], int | None]) -> MaelstromCommand:
        def callback(**kwargs: Any) -> int | None:
            ctx = click.get_current_context()
            cli_values: dict[str, object] = {}
            for k in config_cls.config_keys():
                if k.var_arg:
                    cli_values[k.name] = ctx.meta.get(_VAR_ARGS, ())
                else:
                    cli_values[k.name] = kwargs.pop(k.attr)
            config_file = kwargs.pop("config_file")
            print_config = kwargs.pop("print_config")
            options = make_options(kwargs)
            config = config_cls.resolve(cli=cli_values, config_file=config_file)
            state = ctx.find_object(_RunState)
            if state is not None:
                state.debug = getattr(config, "log_level", "info") == "debug"
            if print_config:
                click.echo(config.format())
                return 0
            stream = sys.stdout if config_cls.log_to_stdout else sys.stderr
            configure_logging(getattr(config, "log_level", "info"), stream=stream)
            return fn(config, options)

        config_params: list[click.Parameter] = [
            _ConfigOption(k, config_cls) for k in config_cls.config_keys() if not k.var_arg
        ]
        return MaelstromCommand(
            config_cls.program,
            config_cls=config_cls,
            distribution=distribution,
            callback=callback,
            params=[*_common_params(config_cls), *config_params, *params],
            context_settings=dict(context_settings or {}),
            help=help if help is not None else fn.__doc__,
        )

    return decorate


# ---------------------------------------------------------------------------------------------
# Options shared by program families


def runner_params(list_modes: Sequence[ListMode]) -> list[click.Parameter]:
    """``--include``/``--exclude``, ``--init``, ``--watch`` and the given list options."""
    params: list[click.Parameter] = [
        HeadedOption(
            ["-i", "--include", "include"],
            multiple=True,
            metavar="FILTER-EXPRESSION",
            help="Only run tests matching this filter; repeatable. [default: all]",
            heading=TEST_SELECTION,
        ),
        HeadedOption(
            ["-x", "--exclude", "exclude"],
            multiple=True,
            metavar="FILTER-EXPRESSION",
            help="Do not run tests matching this filter; repeatable. Excludes always win.",
            heading=TEST_SELECTION,
        ),
        HeadedOption(
            ["--init", "init"],
            is_flag=True,
            help="Write a starter test spec file into the project directory, then exit.",
            heading=TEST_METADATA,
        ),
        HeadedOption(
            ["-w", "--watch", "watch"],
            is_flag=True,
            help="Run the tests, then run them again whenever a project file changes.",
            heading=WATCH,
        ),
    ]
    texts: dict[ListMode, tuple[list[str], str]] = {
        "tests": (
            ["-l", "--list-tests", "--list", "list_tests"],
            "Build the test binaries and print the selected tests instead of running them.",
        ),
        "binaries": (
            ["--list-binaries", "list_binaries"],
            "Print the selected test binaries without building anything.",
        ),
        "packages": (
            ["--list-packages", "list_packages"],
            "Print the selected packages without building anything.",
        ),
    }
    for mode in list_modes:
        decls, text = texts[mode]
        params.append(HeadedOption(decls, is_flag=True, help=text, heading=LIST))
    params.append(
        HeadedOption(
            ["--junit-xml", "junit_xml"],
            metavar="PATH",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write the results as a JUnit XML report to PATH.",
            heading=REPORT,
        )
    )
    return params


def _exclusive(flags: Mapping[str, bool]) -> None:
    given = [name for name, on in flags.items() if on]
    if len(given) > 1:
        raise UsageError(f"{given[0]} cannot be used with {given[1]}")


def runner_options(values: dict[str, Any]) -> TestRunnerOptions:
    """The ``TestRunnerOptions`` of the values of ``runner_params``."""
    modes: dict[ListMode, str] = {
        "tests": "--list-tests",
        "binaries": "--list-binaries",
        "packages": "--list-packages",
    }
    chosen = {mode: bool(values.get(f"list_{mode}")) for mode in modes}
    _exclusive({modes[mode]: on for mode, on in chosen.items()})
    list_mode = next((mode for mode, on in chosen.items() if on), None)
    include = tuple(values["include"]) or ("all",)
    return TestRunnerOptions(
        include=include,
        exclude=tuple(values["exclude"]),
        init=bool(values["init"]),
        watch=bool(values["watch"]),
        list_mode=list_mode,
        junit_xml=values.get("junit_xml"),
    )


def run_params() -> list[click.Parameter]:
    """``maelstrom-run``'s ``--file``, ``--one``, ``--tty`` and ``[PROGRAM [ARGS]...]``."""
    return [
        HeadedOption(
            ["-f", "--file", "file"],
            metavar="PATH",
            help="Read job specs from this file instead of standard input.",
            heading=JOB,
        ),
        HeadedOption(
            ["-1", "--one", "one"],
            is_flag=True,
            help="Run only the first job and exit with its exit code.",
            heading=JOB,
        ),
        HeadedOption(
            ["-t", "--tty", "tty"],
            is_flag=True,
            help="Like --one, and give the job a pseudo-terminal connected to this terminal.",
            heading=JOB,
        ),
        HeadedArgument(
            ["command"],
            nargs=-1,
            metavar="[PROGRAM [ARGS]...]",
            help="With --one or --tty: run this instead of the job spec's program and arguments.",
            heading=JOB,
        ),
    ]


def run_options(values: dict[str, Any]) -> RunOptions:
    """The ``RunOptions`` of the values of ``run_params``."""
    _exclusive({"--one": bool(values["one"]), "--tty": bool(values["tty"])})
    command = tuple(values["command"])
    if command and not (values["one"] or values["tty"]):
        raise UsageError("PROGRAM and ARGS can only be given with --one or --tty")
    file = values["file"]
    if file is not None and not file:
        raise UsageError("--file needs a path")
    return RunOptions(
        file=Path(file) if file is not None else None,
        one=bool(values["one"]),
        tty=bool(values["tty"]),
        command=command,
    )


# ---------------------------------------------------------------------------------------------
# Running: entry points, logging, errors


def load_entry_point(module: str, what: str) -> Callable[..., Any]:
    """Import ``module`` and return its ``main``.

    Only the module itself being absent is "not available in this build" (a ``UsageError``);
    a missing module imported *by* it is a bug and propagates.
    """
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and (module == err.name or module.startswith(err.name + ".")):
            raise UsageError(f"{what} is not available in this build") from None
        raise
    entry: Callable[..., Any] = loaded.main
    return entry


def run_entry_point(module: str, what: str, config: ConfigBase, options: object) -> int | None:
    """Call ``module.main(config, options)``; an ``async def`` main runs under ``trio.run``."""
    import inspect

    entry = load_entry_point(module, what)
    if inspect.iscoroutinefunction(entry):
        import trio

        result: int | None = trio.run(entry, config, options)
        return result
    result = entry(config, options)
    return result


def configure_logging(level: str, *, stream: TextIO) -> None:
    """Send stdlib logging to ``stream``, one line per record, at ``level`` (Table C names)."""
    import logging

    class OneLineFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            # One record, one line: a multi-line message must not look like several records.
            return super().format(record).replace("\r", "\\r").replace("\n", "\\n")

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "maelstrom", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.maelstrom = True  # type: ignore[attr-defined]
    handler.setFormatter(
        OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def run_cli(command: MaelstromCommand, argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``command`` as a program and exit, mapping every error to a one-line message.

    Exit codes: the command's return value (``None`` is 0); a ``MaelstromError``'s
    ``exit_code``; 2 for click usage errors; 130 for Ctrl-C; 70 for anything unexpected.
    """
    program = command.config_cls.program
    args = list(sys.argv[1:] if argv is None else argv)
    state = _RunState()

    def fail(message: str, code: int) -> NoReturn:
        sys.stdout.flush()
        print(f"{program}: error: {_one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(code)

    try:
        result = command.main(args, prog_name=program, standalone_mode=False, obj=state)
    except click.exceptions.Exit as exit_:
        code = exit_.exit_code
    except click.Abort as abort:
        if isinstance(abort.__context__, KeyboardInterrupt):
            sys.exit(130)
        fail("aborted", 1)
    except click.ClickException as err:
        fail(f"{err.format_message()} (see --help)", err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # Whoever read our output went away (`| head`): not an error worth a message.
        _silence_stdout()
        sys.exit(1)
    except BaseException as exc:  # the one place that maps them all
        if isinstance(exc, SystemExit):
            raise
        leaves = exception_leaves(exc)
        error = leaves[0] if len(leaves) == 1 else None
        if isinstance(error, KeyboardInterrupt):
            sys.exit(130)
        if isinstance(error, MaelstromError) and not isinstance(error, InternalError):
            fail(str(error) or type(error).__name__, error.exit_code)
        detail = str(error) if isinstance(error, InternalError) else f"{type(exc).__name__}: {exc}"
        if state.debug:
            import traceback

            traceback.print_exception(exc)
            fail(f"internal error: {detail}", InternalError.exit_code)
        fail(
            f"internal error: {detail} (run with --log-level debug for a traceback)",
            InternalError.exit_code,
        )
    else:
        code = 0 if result is None else result
    _flush_stdout()
    sys.exit(code)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
