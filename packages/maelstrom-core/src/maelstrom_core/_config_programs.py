"""The configuration of every maelstrom program, composed from the shared tables.

Table C (every program), Table CL (clients), Table TR (test runners) and the hidden GitHub
cluster-communication keys are declared once here as base classes; each program's config class
composes them and adds its own keys. Key names, env var names and XDG prefixes are the
original Maelstrom's, so existing config files and environments keep working.

The non-config command-line options of each program (filters, list modes, ``--one``...) are
plain frozen dataclasses handed to the program's entry point beside its config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._config import (
    BOOL,
    BROKER_ADDRESS,
    BYTE_SIZE,
    ESCAPE_CHAR,
    PATH,
    STRING,
    STRING_LIST,
    URL,
    BrokerAddress,
    Choice,
    ConfigBase,
    DefaultFactory,
    EscapeChar,
    Integer,
    cache_home,
    key,
)
from .errors import ConfigError

__all__ = [
    "AdminConfig",
    "BrokerConfig",
    "CargoConfig",
    "ClientConfig",
    "CommonConfig",
    "GithubConfig",
    "GoTestConfig",
    "ListMode",
    "NoOptions",
    "RunConfig",
    "RunOptions",
    "TestRunnerConfig",
    "TestRunnerOptions",
    "WorkerConfig",
]

CONFIG_VALUES = "Config Values"
LOCAL_WORKER = "Local Worker Config Values"
CONTAINER_IMAGE = "Container Image Config Values"
CLUSTER = "Cluster Communication Config Values"
TEST_RUNNER = "Test Runner Config Values"

LOG_LEVEL = Choice(("error", "warning", "info", "debug"), "LEVEL")
UI = Choice(("auto", "simple", "fancy", "quiet"), "UI-STYLE")
STRATEGY = Choice(("tcp", "github"), "STRATEGY")
SLOTS = Integer(1, 1000, "N")
PORT = Integer(0, 65535, "PORT")
AT_LEAST_ONE = Integer(1, 2**63 - 1, "N")
U32 = Integer(0, 2**32 - 1, "SECONDS")

DEFAULT_CACHE_SIZE = 1_000_000_000
DEFAULT_INLINE_LIMIT = 1_000_000


def _default_slots(env: Mapping[str, str]) -> int:
    return max(1, min(1000, os.cpu_count() or 1))


def _cache_dir(name: str) -> DefaultFactory:
    def factory(env: Mapping[str, str]) -> Path:
        return cache_home(env) / "maelstrom" / name

    return factory


class CommonConfig(ConfigBase):
    """Table C: what every program has."""

    log_level: str = key(
        LOG_LEVEL,
        "Minimum level of log messages to print: error, warning, info or debug.",
        default="info",
        short="L",
    )


class GithubConfig(ConfigBase):
    """The hidden keys that let a cluster talk through the GitHub Actions artifact store."""

    cluster_communication_strategy: str = key(
        STRATEGY,
        "How to talk to the cluster: tcp, or github (through GitHub Actions artifacts).",
        default="tcp",
        hidden=True,
        heading=CLUSTER,
    )
    github_actions_token: str | None = key(
        STRING,
        "GitHub Actions runtime token (ACTIONS_RUNTIME_TOKEN); needed with the github strategy.",
        hidden=True,
        heading=CLUSTER,
        metavar="TOKEN",
        secret=True,
    )
    github_actions_url: str | None = key(
        URL,
        "GitHub Actions results URL (ACTIONS_RESULTS_URL); needed with the github strategy.",
        hidden=True,
        heading=CLUSTER,
    )

    def validate(self) -> None:
        super().validate()
        if self.cluster_communication_strategy == "github":
            why = "when cluster-communication-strategy is github"
            self.require("github-actions-token", why)
            self.require("github-actions-url", why)

    def require_tcp(self) -> None:
        """Refuse the github strategy: its keys are accepted, so the original's config files
        load, but this build talks to clusters over TCP only."""
        if self.cluster_communication_strategy != "tcp":
            raise ConfigError(
                f"cluster-communication-strategy {self.cluster_communication_strategy} "
                f"(from {self.source('cluster-communication-strategy')}) is not supported by "
                f"this build of {self.program}; use tcp"
            )


class ClientConfig(GithubConfig, CommonConfig):
    """Table CL: what every client (test runners and maelstrom-run) has."""

    cache_size: int = key(
        BYTE_SIZE,
        "Target disk space for the local worker's cache; a soft limit. "
        "SI and binary suffixes are accepted.",
        default=DEFAULT_CACHE_SIZE,
        heading=LOCAL_WORKER,
    )
    inline_limit: int = key(
        BYTE_SIZE,
        "Maximum bytes of a job's stdout, and of its stderr, to keep; the rest is dropped.",
        default=DEFAULT_INLINE_LIMIT,
        heading=LOCAL_WORKER,
    )
    slots: int = key(
        SLOTS,
        "Number of jobs the local worker runs at once (1 to 1000).",
        default_factory=_default_slots,
        default_text="the number of CPUs",
        heading=LOCAL_WORKER,
    )
    container_image_depot_root: Path = key(
        PATH,
        "Directory where downloaded container images are cached.",
        default_factory=_cache_dir("container"),
        heading=CONTAINER_IMAGE,
    )
    accept_invalid_remote_container_tls_certs: bool = key(
        BOOL,
        "Accept invalid or self-signed TLS certificates from container registries.",
        heading=CONTAINER_IMAGE,
    )
    broker: BrokerAddress | None = key(
        BROKER_ADDRESS,
        "Socket address of the broker (host:port). If not set, every job runs on the "
        "local worker (standalone mode).",
        default_text="standalone mode",
        short="b",
        heading=CLUSTER,
    )


class TestRunnerConfig(ClientConfig):
    """Table TR: what every test runner has."""

    __test__ = False  # not a pytest test class, whatever its name says

    ui: str = key(
        UI,
        "UI style: auto, simple, fancy or quiet.",
        default="auto",
        heading=TEST_RUNNER,
    )
    repeat: int = key(
        AT_LEAST_ONE,
        "Number of times to run each selected test (at least 1).",
        default=1,
        short="r",
        aliases=("--loop",),
        heading=TEST_RUNNER,
        metavar="COUNT",
    )
    stop_after: int | None = key(
        AT_LEAST_ONE,
        "Stop running tests after this many failures.",
        default_text="never stop",
        short="s",
        heading=TEST_RUNNER,
        metavar="NUM-FAILURES",
    )
    timeout: int | None = key(
        U32,
        "Timeout in seconds for every test, overriding what the tests specify (0: none).",
        default_text="whatever each test specifies",
        short="t",
        heading=TEST_RUNNER,
    )


class CargoConfig(TestRunnerConfig):
    """``cargo-maelstrom``: Table C + CL + TR + cargo's pass-through options."""

    program = "cargo-maelstrom"
    xdg_prefix = "maelstrom/cargo-maelstrom"
    env_prefix = "CARGO_MAELSTROM_"
    log_to_stdout = True

    features: str | None = key(
        STRING,
        "Comma-separated list of features to activate (cargo --features).",
        default_text="cargo's default",
        short="F",
        heading="Feature Selection Config Values",
        metavar="FEATURES",
    )
    all_features: bool = key(
        BOOL,
        "Activate all features (cargo --all-features).",
        heading="Feature Selection Config Values",
    )
    no_default_features: bool = key(
        BOOL,
        "Do not activate the default feature (cargo --no-default-features).",
        heading="Feature Selection Config Values",
    )
    profile: str | None = key(
        STRING,
        "Build with this profile, e.g. release (cargo --profile).",
        default_text="dev",
        heading="Compilation Config Values",
        metavar="PROFILE-NAME",
    )
    target: str | None = key(
        STRING,
        "Build for this target triple (cargo --target).",
        default_text="the host",
        heading="Compilation Config Values",
        metavar="TRIPLE",
    )
    target_dir: Path | None = key(
        PATH,
        "Directory for all generated artifacts (cargo --target-dir).",
        default_text="cargo's default",
        heading="Compilation Config Values",
        metavar="DIRECTORY",
    )
    manifest_path: Path | None = key(
        PATH,
        "Path to Cargo.toml (cargo --manifest-path).",
        default_text="cargo's default",
        heading="Manifest Config Values",
    )
    frozen: bool = key(
        BOOL,
        "Require Cargo.lock and cache to be up to date (cargo --frozen).",
        heading="Manifest Config Values",
    )
    locked: bool = key(
        BOOL,
        "Require Cargo.lock to be up to date (cargo --locked).",
        heading="Manifest Config Values",
    )
    offline: bool = key(
        BOOL,
        "Run without accessing the network (cargo --offline).",
        heading="Manifest Config Values",
    )
    extra_test_binary_args: tuple[str, ...] = key(
        STRING_LIST,
        "Extra arguments for every test binary, given after --.",
        default_text="none",
        heading="Test Binary Config Values",
        metavar="EXTRA-TEST-BINARY-ARGS",
        var_arg=True,
    )


class GoTestConfig(TestRunnerConfig):
    """``maelstrom-go-test``: Table C + CL + TR + go's test options."""

    program = "maelstrom-go-test"
    xdg_prefix = "maelstrom/maelstrom-go-test"
    env_prefix = "MAELSTROM_GO_TEST_"
    log_to_stdout = True

    vet: str | None = key(
        STRING,
        "Checks for go vet to run while building tests (go test -vet).",
        default_text="go's default",
        heading="Go Test Config Values",
        metavar="VET-ARGS",
    )
    short: bool = key(
        BOOL,
        "Tell long-running tests to shorten their run time (-test.short).",
        heading="Go Test Config Values",
    )
    fullpath: bool = key(
        BOOL,
        "Show full file names in error messages (-test.fullpath).",
        heading="Go Test Config Values",
    )
    extra_test_binary_args: tuple[str, ...] = key(
        STRING_LIST,
        "Extra arguments for every test binary, given after --.",
        default_text="none",
        heading="Go Test Config Values",
        metavar="EXTRA-TEST-BINARY-ARGS",
        var_arg=True,
    )


class RunConfig(ClientConfig):
    """``maelstrom-run``: Table C + CL + its cache root and TTY escape character."""

    program = "maelstrom-run"
    xdg_prefix = "maelstrom/run"
    env_prefix = "MAELSTROM_RUN_"

    cache_root: Path = key(
        PATH,
        "Directory for the local worker's cache and cached layers.",
        default_factory=_cache_dir("run"),
    )
    escape_char: EscapeChar = key(
        ESCAPE_CHAR,
        "Escape character for --tty mode: a character, caret notation (^]) or a byte (\\x1d).",
        default=EscapeChar(0x1D),
    )


class BrokerConfig(GithubConfig, CommonConfig):
    """``maelstrom-broker``: Table C + its listeners and artifact cache."""

    program = "maelstrom-broker"
    xdg_prefix = "maelstrom/broker"
    env_prefix = "MAELSTROM_BROKER_"

    port: int = key(
        PORT,
        "Port for clients, workers and monitors (0: the OS picks one).",
        default=0,
        short="p",
    )
    http_port: int = key(
        PORT,
        "Port for the web UI (0: the OS picks one).",
        default=0,
        short="H",
    )
    cache_root: Path = key(
        PATH,
        "Directory for the artifact cache.",
        default_factory=_cache_dir("broker"),
    )
    cache_size: int = key(
        BYTE_SIZE,
        "Target disk space for the artifact cache; a soft limit. "
        "SI and binary suffixes are accepted.",
        default=DEFAULT_CACHE_SIZE,
    )


class WorkerConfig(GithubConfig, CommonConfig):
    """``maelstrom-worker``: Table C + its broker, slots and cache."""

    program = "maelstrom-worker"
    xdg_prefix = "maelstrom/worker"
    env_prefix = "MAELSTROM_WORKER_"

    broker: BrokerAddress | None = key(
        BROKER_ADDRESS,
        "Socket address of the broker (host:port).",
        default_text="no default, must be set",
        short="b",
        heading=CLUSTER,
    )
    slots: int = key(
        SLOTS,
        "Number of jobs to run at once (1 to 1000).",
        default_factory=_default_slots,
        default_text="the number of CPUs",
    )
    cache_root: Path = key(
        PATH,
        "Directory for the cache.",
        default_factory=_cache_dir("worker"),
    )
    cache_size: int = key(
        BYTE_SIZE,
        "Target disk space for the cache; a soft limit. SI and binary suffixes are accepted.",
        default=DEFAULT_CACHE_SIZE,
    )
    inline_limit: int = key(
        BYTE_SIZE,
        "Maximum bytes of a job's stdout, and of its stderr, to keep; the rest is dropped.",
        default=DEFAULT_INLINE_LIMIT,
    )

    def validate(self) -> None:
        super().validate()
        if self.cluster_communication_strategy == "tcp":
            self.require("broker", "to connect over tcp")


class AdminConfig(GithubConfig, CommonConfig):
    """``maelstrom-admin``: Table C + the broker to talk to."""

    program = "maelstrom-admin"
    xdg_prefix = "maelstrom/admin"
    env_prefix = "MAELSTROM_ADMIN_"

    broker: BrokerAddress | None = key(
        BROKER_ADDRESS,
        "Socket address of the broker (host:port).",
        default_text="no default, must be set",
        short="b",
        heading=CLUSTER,
    )

    def validate(self) -> None:
        super().validate()
        if self.cluster_communication_strategy == "tcp":
            self.require("broker", "to connect over tcp")


# ---------------------------------------------------------------------------------------------
# Non-config command-line options

ListMode = Literal["tests", "binaries", "packages"]


@dataclass(frozen=True, slots=True)
class NoOptions:
    """The options of a program that has only config values (broker, worker)."""


@dataclass(frozen=True, slots=True)
class TestRunnerOptions:
    """A test runner's non-config options."""

    __test__ = False

    include: tuple[str, ...] = ("all",)
    exclude: tuple[str, ...] = ()
    init: bool = False
    watch: bool = False
    list_mode: ListMode | None = None
    junit_xml: Path | None = None  # --junit-xml: write a JUnit XML report here (not a config key)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """``maelstrom-run``'s non-config options.

    ``command`` is the positional PROGRAM and ARGS, given only with ``one`` or ``tty``; it
    replaces the job spec's program and arguments.
    """

    file: Path | None = None
    one: bool = False
    tty: bool = False
    command: tuple[str, ...] = ()
