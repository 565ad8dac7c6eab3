"""Layered configuration: precedence, value syntax, error sources, and every program's keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maelstrom_core.config import (
    BrokerAddress,
    BrokerConfig,
    CargoConfig,
    ConfigBase,
    EscapeChar,
    GoTestConfig,
    RunConfig,
    WorkerConfig,
    config_search_path,
    format_byte_size,
    parse_broker_address,
    parse_byte_size,
    parse_escape_char,
)
from maelstrom_core.errors import ConfigError


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "home"
    sys_a = tmp_path / "xdg-a"
    sys_b = tmp_path / "xdg-b"
    for d in (home, sys_a, sys_b):
        d.mkdir()
    return {"home": home, "sys_a": sys_a, "sys_b": sys_b}


def env_for(dirs: dict[str, Path], **extra: str) -> dict[str, str]:
    return {
        "HOME": str(dirs["home"]),
        "XDG_CONFIG_DIRS": f"{dirs['sys_a']}:{dirs['sys_b']}",
        **extra,
    }


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def worker_file(root: Path, text: str) -> Path:
    return write(root / "maelstrom" / "worker" / "config.toml", text)


# --- precedence -------------------------------------------------------------------------------

LAYERS = ["flag", "prog-env", "generic-env", "home-file", "system-file-a", "system-file-b"]


@pytest.mark.parametrize("top", range(len(LAYERS)), ids=LAYERS)
def test_each_layer_beats_every_lower_one(dirs: dict[str, Path], top: int) -> None:
    # Every layer at or below `top` sets slots to its own number; the highest of them must win.
    present = LAYERS[top:]
    extra: dict[str, str] = {}
    cli: dict[str, object] = {"broker": "localhost:1"}
    if "flag" in present:
        cli["slots"] = "1"
    if "prog-env" in present:
        extra["MAELSTROM_WORKER_SLOTS"] = "2"
    if "generic-env" in present:
        extra["MAELSTROM_SLOTS"] = "3"
    if "home-file" in present:
        worker_file(dirs["home"] / ".config", "slots = 4\n")
    if "system-file-a" in present:
        worker_file(dirs["sys_a"], "slots = 5\n")
    worker_file(dirs["sys_b"], "# a comment\nslots = 6\n")
    config = WorkerConfig.resolve(cli=cli, env=env_for(dirs, **extra))
    assert config.slots == top + 1
    source = config.source("slots")
    expected = {
        0: "--slots",
        1: "environment variable MAELSTROM_WORKER_SLOTS",
        2: "environment variable MAELSTROM_SLOTS",
        3: f"{dirs['home']}/.config/maelstrom/worker/config.toml:1",
        4: f"{dirs['sys_a']}/maelstrom/worker/config.toml:1",
        5: f"{dirs['sys_b']}/maelstrom/worker/config.toml:2",
    }[top]
    assert str(source) == expected


def test_files_merge_key_by_key(dirs: dict[str, Path]) -> None:
    worker_file(dirs["home"] / ".config", 'cache-size = "2 GB"\n')
    worker_file(dirs["sys_a"], 'broker = "b:9"\ncache-size = 5\nslots = 7\n')
    config = WorkerConfig.resolve(env=env_for(dirs))
    assert (config.cache_size, config.slots, config.broker) == (
        2_000_000_000,
        7,
        BrokerAddress("b", 9),
    )


def test_default_when_nothing_sets_a_key(dirs: dict[str, Path]) -> None:
    config = WorkerConfig.resolve(cli={"broker": "h:1"}, env=env_for(dirs))
    assert config.source("slots").kind == "default"
    assert config.slots == max(1, min(1000, os.cpu_count() or 1))
    assert config.cache_root == dirs["home"] / ".cache" / "maelstrom" / "worker"
    assert config.cache_size == 1_000_000_000
    assert config.inline_limit == 1_000_000
    assert config.log_level == "info"


def test_config_file_option_reads_only_that_file(dirs: dict[str, Path], tmp_path: Path) -> None:
    worker_file(dirs["home"] / ".config", "slots = 4\ninline-limit = 10\n")
    only = write(tmp_path / "only.toml", 'broker = "x:1"\nslots = 9\n')
    config = WorkerConfig.resolve(env=env_for(dirs), config_file=only)
    assert config.slots == 9
    assert config.inline_limit == 1_000_000
    assert str(config.source("slots")) == f"{only}:2"


def test_config_file_dash_reads_no_file(dirs: dict[str, Path]) -> None:
    worker_file(dirs["home"] / ".config", "slots = 4\n")
    config = WorkerConfig.resolve(cli={"broker": "h:1"}, env=env_for(dirs), config_file="-")
    assert config.source("slots").kind == "default"


def test_missing_config_file_option_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml"):
        WorkerConfig.resolve(env={}, config_file=tmp_path / "nope.toml")


def test_xdg_variables_move_the_search_path(tmp_path: Path) -> None:
    env = {
        "HOME": "/h",
        "XDG_CONFIG_HOME": str(tmp_path / "conf"),
        "XDG_CONFIG_DIRS": f"{tmp_path}/one:relative/ignored::{tmp_path}/two",
    }
    assert config_search_path("maelstrom/run", env) == [
        tmp_path / "conf/maelstrom/run/config.toml",
        tmp_path / "one/maelstrom/run/config.toml",
        tmp_path / "two/maelstrom/run/config.toml",
    ]
    assert config_search_path("maelstrom/run", {"HOME": "/h"}) == [
        Path("/h/.config/maelstrom/run/config.toml"),
        Path("/etc/xdg/maelstrom/run/config.toml"),
    ]


def test_xdg_config_home_file_is_read(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write(conf / "maelstrom/broker/config.toml", "port = 4321\n")
    config = BrokerConfig.resolve(env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(conf)})
    assert config.port == 4321


def test_xdg_cache_home_moves_cache_defaults(tmp_path: Path) -> None:
    env = {"HOME": "/h", "XDG_CACHE_HOME": str(tmp_path / "c")}
    assert RunConfig.resolve(env=env, config_file="-").cache_root == tmp_path / "c/maelstrom/run"
    assert (
        CargoConfig.resolve(env=env, config_file="-").container_image_depot_root
        == tmp_path / "c/maelstrom/container"
    )


# --- env syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a b", ("a", "b")), ("  a   b  ", ("a", "b")), ("", ()), ("   ", ()), ("one", ("one",))],
)
def test_list_env_splits_on_spaces(text: str, expected: tuple[str, ...]) -> None:
    env = {"CARGO_MAELSTROM_EXTRA_TEST_BINARY_ARGS": text}
    config = CargoConfig.resolve(env=env, config_file="-")
    assert config.extra_test_binary_args == expected


def test_list_from_flag_and_file(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", 'extra-test-binary-args = ["-test.v", "x y"]\n')
    assert GoTestConfig.resolve(env={}, config_file=file).extra_test_binary_args == (
        "-test.v",
        "x y",
    )
    cli = {"extra-test-binary-args": ["--nocapture"]}
    config = GoTestConfig.resolve(cli=cli, env={}, config_file=file)
    assert config.extra_test_binary_args == ("--nocapture",)
    # An empty list on the command line means "not given": the file's value stands.
    config = GoTestConfig.resolve(cli={"extra-test-binary-args": []}, env={}, config_file=file)
    assert config.extra_test_binary_args == ("-test.v", "x y")


def test_bool_env_true_false_and_file_false(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", "frozen = true\nlocked = false\n")
    config = CargoConfig.resolve(env={"MAELSTROM_FROZEN": "false"}, config_file=file)
    assert config.frozen is False
    assert str(config.source("frozen")) == "environment variable MAELSTROM_FROZEN"
    config = CargoConfig.resolve(env={"CARGO_MAELSTROM_LOCKED": "true"}, config_file=file)
    assert config.locked is True
    assert config.frozen is True


def test_bool_flag_false_means_not_given(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", "offline = true\n")
    config = CargoConfig.resolve(cli={"offline": False}, env={}, config_file=file)
    assert config.offline is True
    config = CargoConfig.resolve(cli={"all_features": True}, env={}, config_file=file)
    assert config.all_features is True
    assert str(config.source("all-features")) == "--all-features"


@pytest.mark.parametrize("text", ["1", "yes", "True", "", " true"])
def test_bool_env_rejects_anything_but_true_false(text: str) -> None:
    with pytest.raises(ConfigError, match=r"environment variable CARGO_MAELSTROM_OFFLINE"):
        CargoConfig.resolve(env={"CARGO_MAELSTROM_OFFLINE": text}, config_file="-")


def test_strings_are_verbatim_in_env() -> None:
    env = {"CARGO_MAELSTROM_FEATURES": ' a,"b" '}
    assert CargoConfig.resolve(env=env, config_file="-").features == ' a,"b" '


def test_env_of_another_program_is_ignored() -> None:
    env = {"MAELSTROM_BROKER_PORT": "7", "MAELSTROM_WORKER_BROKER": "h:1"}
    config = WorkerConfig.resolve(env=env, config_file="-")
    assert config.broker == BrokerAddress("h", 1)
    assert BrokerConfig.resolve(env={"MAELSTROM_WORKER_PORT": "7"}, config_file="-").port == 0


# --- value types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1 GB", 1_000_000_000),
        ("10MB", 10_000_000),
        ("1.23 MB", 1_230_000),
        ("1 GiB", 1 << 30),
        ("1000", 1000),
        ("0", 0),
        ("512 kB", 512_000),
        ("2KiB", 2048),
        ("3k", 3000),
        ("1.5 b", 1),
        (".5 KB", 500),
        ("1 TB", 10**12),
        ("16 EiB", None),
    ],
)
def test_byte_size_parsing(text: str, size: int | None) -> None:
    if size is None:
        with pytest.raises(ValueError, match="too large"):
            parse_byte_size(text)
    else:
        assert parse_byte_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "1 XB", "-1 MB", "1.2.3 MB", "1 G B", "one"])
def test_byte_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"byte size|unit"):
        parse_byte_size(text)


def test_byte_size_displays_in_si() -> None:
    assert format_byte_size(1_000_000_000) == "1 GB"
    assert format_byte_size(1_000_000) == "1 MB"
    assert format_byte_size(999) == "999 B"
    assert format_byte_size(1 << 20) == "1.048576 MB"
    assert format_byte_size(0) == "0 B"


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_byte_size_display_round_trips(size: int) -> None:
    assert parse_byte_size(format_byte_size(size)) == size


def test_byte_size_from_toml_integer_and_string(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", 'broker = "h:1"\ncache-size = 1000\ninline-limit = "2 MiB"\n')
    config = WorkerConfig.resolve(env={}, config_file=file)
    assert (config.cache_size, config.inline_limit) == (1000, 2 << 20)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("localhost:9000", BrokerAddress("localhost", 9000)),
        ("10.0.0.1:1", BrokerAddress("10.0.0.1", 1)),
        ("[::1]:65535", BrokerAddress("::1", 65535)),
        ("[fe80::1%eth0]:80", BrokerAddress("fe80::1%eth0", 80)),
        ("broker.example.org:443", BrokerAddress("broker.example.org", 443)),
        ("my_host-1:22", BrokerAddress("my_host-1", 22)),
    ],
)
def test_broker_address_parsing(text: str, address: BrokerAddress) -> None:
    parsed = parse_broker_address(text)
    assert parsed == address
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("localhost", "host:port"),
        (":80", "host:port"),
        ("host:", "port"),
        ("host:0", "port"),
        ("host:65536", "port"),
        ("host:http", "port"),
        ("::1:80", "brackets"),
        ("[::1]", r"\[IPv6-address\]:port"),
        ("[nonsense]:80", "not an IPv6 address"),
        ("300.1.1.1:80", "not an IPv4 address"),
        ("bad host:80", "not a valid host name"),
        ("-lead:80", "not a valid host name"),
    ],
)
def test_broker_address_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_broker_address(text)


@pytest.mark.parametrize(
    ("text", "byte", "shown"),
    [
        ("^]", 0x1D, "^]"),
        ("^C", 0x03, "^C"),
        ("^c", 0x03, "^C"),
        ("^?", 0x7F, "^?"),
        ("\\x1d", 0x1D, "^]"),
        ("\\n", 0x0A, "^J"),
        ("~", 0x7E, "~"),
        ("a", 0x61, "a"),
    ],
)
def test_escape_char_parsing(text: str, byte: int, shown: str) -> None:
    parsed = parse_escape_char(text)
    assert parsed == EscapeChar(byte)
    assert str(parsed) == shown


@pytest.mark.parametrize("text", ["", "ab", "^1", "é", "\\xff", "\\q", "\\x1"])
def test_escape_char_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"escape|character|caret|ASCII"):
        parse_escape_char(text)


def test_run_escape_char_default_and_env() -> None:
    assert RunConfig.resolve(env={}, config_file="-").escape_char == EscapeChar(0x1D)
    env = {"MAELSTROM_RUN_ESCAPE_CHAR": "^A"}
    assert RunConfig.resolve(env=env, config_file="-").escape_char == EscapeChar(1)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("slots", "0", "between 1 and 1000"),
        ("slots", "1001", "between 1 and 1000"),
        ("slots", "x", "expected an integer"),
        ("repeat", "0", "between 1 and"),
        ("stop-after", "0", "between 1 and"),
        ("timeout", "4294967296", "between 0 and 4294967295"),
        ("ui", "pretty", "one of: auto, simple, fancy, quiet"),
        ("log-level", "trace", "one of: error, warning, info, debug"),
        ("cluster-communication-strategy", "udp", "one of: tcp, github"),
        ("github-actions-url", "ftp://x", "URL"),
        ("cache-size", "lots", "byte size"),
        ("broker", "nowhere", "host:port"),
        ("container-image-depot-root", "", "empty"),
    ],
)
def test_bad_value_names_key_and_flag(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        CargoConfig.resolve(cli={key: value}, env={}, config_file="-")
    assert f"for {key} (from --{key})" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_value_names_env_var() -> None:
    with pytest.raises(
        ConfigError, match=r"'big' for port \(from environment variable MAELSTROM_PORT\)"
    ):
        BrokerConfig.resolve(env={"MAELSTROM_PORT": "big"}, config_file="-")


def test_bad_value_names_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", '# ports\n\nhttp-port = 1\n"port" = -5\n')
    with pytest.raises(ConfigError) as info:
        BrokerConfig.resolve(env={}, config_file=file)
    assert str(info.value) == (
        f"invalid value -5 for port (from {file}:4): must be between 0 and 65535"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = true\n", "expected an integer, not a TOML boolean"),
        ("port = 1.5\n", "expected an integer, not a TOML float"),
        ("cache-root = 3\n", "expected a path, not a TOML integer"),
        ("log-level = [1]\n", "not a TOML array"),
        ("cache-size = true\n", "expected a byte size, not a TOML boolean"),
    ],
)
def test_wrong_toml_type_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    file = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=message):
        BrokerConfig.resolve(env={}, config_file=file)


def test_unknown_file_key_names_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", "port = 1\n\nslots = 3\n")
    with pytest.raises(ConfigError) as info:
        BrokerConfig.resolve(env={}, config_file=file)
    assert str(info.value) == f"{file}:3: unknown config key 'slots' for maelstrom-broker"


@pytest.mark.parametrize("text", ["cache_size = 5\n", "[port]\nx = 1\n"])
def test_snake_case_and_tables_are_not_keys(tmp_path: Path, text: str) -> None:
    file = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=rf"{file}:1\b.*(unknown config key|not a TOML table)"):
        BrokerConfig.resolve(env={}, config_file=file)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", "port = 1\nhttp-port = = 2\n")
    with pytest.raises(ConfigError, match=rf"^{file}:2: invalid TOML: "):
        BrokerConfig.resolve(env={}, config_file=file)


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_bytes(b"port = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        BrokerConfig.resolve(env={}, config_file=file)


def test_bad_system_file_is_named_even_when_searched(dirs: dict[str, Path]) -> None:
    path = worker_file(dirs["sys_b"], "slots = 0\n")
    with pytest.raises(ConfigError, match=rf"from {path}:1"):
        WorkerConfig.resolve(cli={"broker": "h:1"}, env=env_for(dirs))


def test_unknown_cli_key_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match="no config key 'nope'"):
        BrokerConfig.resolve(cli={"nope": "1"}, env={}, config_file="-")


# --- cross-key rules --------------------------------------------------------------------------


def test_worker_needs_a_broker_over_tcp() -> None:
    with pytest.raises(ConfigError, match=r"broker must be set .*MAELSTROM_WORKER_BROKER"):
        WorkerConfig.resolve(env={}, config_file="-")


def test_github_strategy_needs_token_and_url_but_no_broker() -> None:
    env = {"MAELSTROM_CLUSTER_COMMUNICATION_STRATEGY": "github"}
    with pytest.raises(ConfigError, match="github-actions-token must be set"):
        WorkerConfig.resolve(env=env, config_file="-")
    env |= {
        "MAELSTROM_GITHUB_ACTIONS_TOKEN": "secret-token",
        "MAELSTROM_GITHUB_ACTIONS_URL": "https://results.example/",
    }
    config = WorkerConfig.resolve(env=env, config_file="-")
    assert config.broker is None
    assert config.github_actions_token == "secret-token"
    assert "secret-token" not in config.format()
    assert "secret-token" not in repr(config)


# --- the resolved object ----------------------------------------------------------------------


def test_config_is_immutable_and_replaceable() -> None:
    config = BrokerConfig.resolve(env={}, config_file="-")
    with pytest.raises(AttributeError, match="immutable"):
        config.port = 5
    changed = config.replace(port=5)
    assert (config.port, changed.port) == (0, 5)
    assert changed.source("port").kind == "override"
    assert changed != config
    assert config == BrokerConfig.resolve(env={}, config_file="-")


def test_print_format_names_sources_and_round_trips(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", 'ui = "simple"\ntimeout = 0\n')
    env = {"CARGO_MAELSTROM_CACHE_SIZE": "1 GiB", "MAELSTROM_FEATURES": "a,b", "HOME": "/h"}
    cli = {"broker": "[::1]:5", "all-features": True, "extra-test-binary-args": ["-x", "y"]}
    config = CargoConfig.resolve(cli=cli, env=env, config_file=file)
    text = config.format()
    assert (
        'cache-size = "1.073741824 GB"  # environment variable CARGO_MAELSTROM_CACHE_SIZE' in text
    )
    assert 'features = "a,b"  # environment variable MAELSTROM_FEATURES' in text
    assert 'broker = "[::1]:5"  # --broker' in text
    assert f'ui = "simple"  # {file}:1' in text
    assert f"timeout = 0  # {file}:2" in text
    assert 'extra-test-binary-args = ["-x", "y"]  # --extra-test-binary-args' in text
    assert "# stop-after is not set (never stop)" in text
    assert 'log-level = "info"  # default' in text
    # The printed lines are valid TOML that reproduce the same configuration.
    again = write(tmp_path / "again.toml", text)
    assert CargoConfig.resolve(env={"HOME": "/h"}, config_file=again) == config


@pytest.mark.parametrize(
    ("cls", "names"),
    [
        (BrokerConfig, {"port", "http-port", "cache-root", "cache-size"}),
        (WorkerConfig, {"broker", "slots", "cache-root", "cache-size", "inline-limit"}),
        (RunConfig, {"cache-root", "escape-char"}),
        (
            CargoConfig,
            {
                "features", "all-features", "no-default-features", "profile", "target",
                "target-dir", "manifest-path", "frozen", "locked", "offline",
                "extra-test-binary-args",
            },
        ),
        (GoTestConfig, {"vet", "short", "fullpath", "extra-test-binary-args"}),
    ],
)  # fmt: skip
def test_every_program_has_its_tables(cls: type[ConfigBase], names: set[str]) -> None:
    table_c = {"log-level"}
    github = {"cluster-communication-strategy", "github-actions-token", "github-actions-url"}
    table_cl = {
        "broker", "cache-size", "inline-limit", "slots", "container-image-depot-root",
        "accept-invalid-remote-container-tls-certs",
    }  # fmt: skip
    table_tr = {"ui", "repeat", "stop-after", "timeout"}
    expected = table_c | github | names
    if cls in (RunConfig, CargoConfig, GoTestConfig):
        expected |= table_cl
    if cls in (CargoConfig, GoTestConfig):
        expected |= table_tr
    assert {k.name for k in cls.config_keys()} == expected
    assert {k.name for k in cls.config_keys() if k.hidden} == github
