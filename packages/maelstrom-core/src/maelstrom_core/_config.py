"""Layered configuration: value types, key declarations, the config base class and its resolver.

A program's configuration is a subclass of ``ConfigBase`` whose class attributes are ``key(...)``
declarations. Every key can be set, from most to least preferred, by a command-line flag, the
``<PROG>_<KEY>`` env var, the generic ``MAELSTROM_<KEY>`` env var, and the XDG config files
(``$XDG_CONFIG_HOME/<prefix>/config.toml`` then each ``$XDG_CONFIG_DIRS`` entry). The resolved
object is immutable and remembers where each value came from, so errors and ``--print-config``
can name the flag, the env var or the file and line.

Nothing here imports click: the CLI layer (``maelstrom_core.cli``) turns flags into the plain
``cli`` mapping that ``ConfigBase.resolve`` takes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from .errors import ConfigError

__all__ = [
    "BOOL",
    "BROKER_ADDRESS",
    "BYTE_SIZE",
    "ESCAPE_CHAR",
    "PATH",
    "STRING",
    "STRING_LIST",
    "URL",
    "BrokerAddress",
    "Choice",
    "ConfigBase",
    "EscapeChar",
    "Integer",
    "Key",
    "Source",
    "ValueType",
    "cache_home",
    "config_search_path",
    "format_byte_size",
    "key",
    "parse_broker_address",
    "parse_byte_size",
    "parse_escape_char",
]

T = TypeVar("T")
C = TypeVar("C", bound="ConfigBase")


class BadValue(ValueError):
    """Raised by a value type's parser; the resolver adds the key and the value's source."""


# ---------------------------------------------------------------------------------------------
# Value types


class ValueType(Generic[T]):
    """How one kind of value is parsed from a flag or env var (text) and from TOML, and shown."""

    metavar: str = "VALUE"
    description: str = "a value"

    def from_str(self, text: str) -> T:
        raise BadValue(f"expected {self.description}")

    def from_toml(self, value: object) -> T:
        if isinstance(value, str):
            return self.from_str(value)
        raise BadValue(f"expected {self.description}, not a TOML {_toml_type_name(value)}")

    def to_toml(self, value: T) -> str:
        return _toml_string(str(value))


def _toml_type_name(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    for typ, name in names.items():
        if isinstance(value, typ):
            return name
    return "table" if isinstance(value, dict) else "date/time"


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class _String(ValueType[str]):
    metavar = "STRING"
    description = "a string"

    def from_str(self, text: str) -> str:
        return text


class _Bool(ValueType[bool]):
    metavar = ""
    description = "true or false"

    def from_str(self, text: str) -> bool:
        # Only the two exact words, as the original's env syntax has it: "1" or "yes" is a typo.
        if text == "true":
            return True
        if text == "false":
            return False
        raise BadValue("expected true or false")

    def from_toml(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        raise BadValue(f"expected a boolean, not a TOML {_toml_type_name(value)}")

    def to_toml(self, value: bool) -> str:
        return "true" if value else "false"


class Integer(ValueType[int]):
    """A whole number in ``minimum..maximum`` (inclusive)."""

    description = "an integer"

    def __init__(self, minimum: int, maximum: int, metavar: str = "N") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.metavar = metavar

    def from_str(self, text: str) -> int:
        if not re.fullmatch(r"-?[0-9]+", text):
            raise BadValue("expected an integer")
        return self._check(int(text))

    def from_toml(self, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return self._check(value)
        raise BadValue(f"expected an integer, not a TOML {_toml_type_name(value)}")

    def _check(self, number: int) -> int:
        if not self.minimum <= number <= self.maximum:
            raise BadValue(f"must be between {self.minimum} and {self.maximum}")
        return number

    def to_toml(self, value: int) -> str:
        return str(value)


class Choice(ValueType[str]):
    """One of a fixed set of lower-case words (matched case-insensitively)."""

    def __init__(self, choices: Sequence[str], metavar: str) -> None:
        self.choices = tuple(choices)
        self.metavar = metavar
        self.description = "one of " + ", ".join(self.choices)

    def from_str(self, text: str) -> str:
        word = text.lower()
        if word not in self.choices:
            raise BadValue(f"must be one of: {', '.join(self.choices)}")
        return word


class _Path(ValueType[Path]):
    metavar = "PATH"
    description = "a path"

    def from_str(self, text: str) -> Path:
        if not text:
            raise BadValue("expected a path, got an empty string")
        if "\0" in text:
            raise BadValue("a path cannot contain a NUL character")
        return Path(text)


class _StringList(ValueType[tuple[str, ...]]):
    metavar = "ARGS"
    description = "a list of strings"

    def from_str(self, text: str) -> tuple[str, ...]:
        # Env syntax: split on ASCII spaces only; runs of spaces and an empty string give nothing.
        return tuple(part for part in text.split(" ") if part)

    def from_toml(self, value: object) -> tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise BadValue("expected an array of strings")

    def to_toml(self, value: tuple[str, ...]) -> str:
        return "[" + ", ".join(_toml_string(item) for item in value) + "]"


_SI_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
_BYTE_MULTIPLIERS = {
    "": 1,
    "b": 1,
    **{p: 1000**i for i, p in enumerate("kmgtpe", 1)},
    **{p + "b": 1000**i for i, p in enumerate("kmgtpe", 1)},
    **{p + "i": 1024**i for i, p in enumerate("kmgtpe", 1)},
    **{p + "ib": 1024**i for i, p in enumerate("kmgtpe", 1)},
}
_MAX_BYTES = 2**64 - 1


def parse_byte_size(text: str) -> int:
    """Parse ``"1 GB"``, ``"10MB"``, ``"1.23 MB"``, ``"1 GiB"`` or ``"1000"`` into bytes.

    Raises:
        ValueError: the text is not a byte size (the message says why).
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*", text)
    if match is None:
        raise BadValue('expected a byte size such as 1000, "10MB", "1.5 GB" or "1 GiB"')
    unit = match.group(2).lower()
    multiplier = _BYTE_MULTIPLIERS.get(unit)
    if multiplier is None:
        raise BadValue(f"unknown byte-size unit {match.group(2)!r}")
    try:
        # Decimal, not float: "1.23 MB" must be exactly 1230000 bytes.
        size = int(Decimal(match.group(1)) * multiplier)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise BadValue("expected a byte size") from None
    if size > _MAX_BYTES:
        raise BadValue("byte size is too large")
    return size


def format_byte_size(size: int) -> str:
    """Show bytes in SI units, exactly: 1000000000 -> ``"1 GB"``, 1048576 -> ``"1.048576 MB"``."""
    exponent = 0
    while exponent + 1 < len(_SI_UNITS) and size >= 1000 ** (exponent + 1):
        exponent += 1
    # Dividing by a power of ten always has a finite decimal form, so nothing is rounded away.
    number = Decimal(size).scaleb(-3 * exponent)
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {_SI_UNITS[exponent]}"


class _ByteSize(ValueType[int]):
    metavar = "BYTES"
    description = "a byte size"

    def from_str(self, text: str) -> int:
        return parse_byte_size(text)

    def from_toml(self, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= _MAX_BYTES:
                raise BadValue("a byte size must be between 0 and 2^64-1")
            return value
        if isinstance(value, str):
            return parse_byte_size(value)
        raise BadValue(f"expected a byte size, not a TOML {_toml_type_name(value)}")

    def to_toml(self, value: int) -> str:
        return _toml_string(format_byte_size(value))


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A broker's socket address. ``host`` is a name, an IPv4 or an IPv6 address (no brackets).

    Names are resolved when connecting, not when the config is parsed.
    """

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")


def parse_broker_address(text: str) -> BrokerAddress:
    """Parse ``host:port``, ``a.b.c.d:port`` or ``[v6]:port``, checking syntax and the port.

    Raises:
        ValueError: the text is not a valid address (the message says why).
    """
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise BadValue("expected [IPv6-address]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadValue(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise BadValue("expected host:port")
        if ":" in host:
            raise BadValue("an IPv6 address must be in brackets: [address]:port")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise BadValue(f"{host!r} is not an IPv4 address") from None
        elif len(host) > 253 or not all(
            _HOST_LABEL.fullmatch(label) for label in host.removesuffix(".").split(".")
        ):
            raise BadValue(f"{host!r} is not a valid host name")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise BadValue(f"port {port_text!r} is not a number from 1 to 65535")
    return BrokerAddress(host, int(port_text))


class _BrokerAddressType(ValueType[BrokerAddress]):
    metavar = "SOCKADDR"
    description = "a broker address"

    def from_str(self, text: str) -> BrokerAddress:
        return parse_broker_address(text)


@dataclass(frozen=True, slots=True)
class EscapeChar:
    """The TTY escape character of ``maelstrom-run --tty``: one ASCII byte."""

    byte: int

    def __str__(self) -> str:
        """Caret notation for control characters (``^]``), the character itself otherwise."""
        if self.byte == 0x7F:
            return "^?"
        if self.byte < 0x20:
            return "^" + chr(self.byte + 0x40)
        return chr(self.byte)


_BYTE_ESCAPES = {"n": 0x0A, "r": 0x0D, "t": 0x09, "\\": 0x5C, "0": 0x00, "'": 0x27, '"': 0x22}


def parse_escape_char(text: str) -> EscapeChar:
    """Parse one ASCII character, caret notation (``^]``, ``^C``) or a byte literal (``\\x1d``).

    Raises:
        ValueError: the text is none of these (the message says why).
    """
    if len(text) == 1:
        byte = ord(text)
    elif len(text) == 2 and text[0] == "^":
        caret = text[1].upper()
        if caret == "?":
            byte = 0x7F
        elif "@" <= caret <= "_":
            byte = ord(caret) - 0x40
        else:
            raise BadValue(f"{text!r} is not a caret-notation control character")
    elif len(text) == 2 and text[0] == "\\" and text[1] in _BYTE_ESCAPES:
        byte = _BYTE_ESCAPES[text[1]]
    elif re.fullmatch(r"\\x[0-9A-Fa-f]{2}", text):
        byte = int(text[2:], 16)
    else:
        raise BadValue("expected one character, caret notation like ^] or a byte like \\x1d")
    if byte > 0x7F:
        raise BadValue("the escape character must be ASCII")
    return EscapeChar(byte)


class _EscapeCharType(ValueType[EscapeChar]):
    metavar = "CHAR"
    description = "an escape character"

    def from_str(self, text: str) -> EscapeChar:
        return parse_escape_char(text)


class _Url(ValueType[str]):
    metavar = "URL"
    description = "a URL"

    def from_str(self, text: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", text):
            raise BadValue("expected an http:// or https:// URL")
        return text


STRING: ValueType[str] = _String()
BOOL: ValueType[bool] = _Bool()
PATH: ValueType[Path] = _Path()
STRING_LIST: ValueType[tuple[str, ...]] = _StringList()
BYTE_SIZE: ValueType[int] = _ByteSize()
BROKER_ADDRESS: ValueType[BrokerAddress] = _BrokerAddressType()
ESCAPE_CHAR: ValueType[EscapeChar] = _EscapeCharType()
URL: ValueType[str] = _Url()


# ---------------------------------------------------------------------------------------------
# Key declarations

DefaultFactory = Callable[[Mapping[str, str]], object]


class Key:
    """One configuration value of a program. Declared as a class attribute with ``key(...)``."""

    attr: str
    name: str

    def __init__(
        self,
        type: ValueType[Any],
        help: str,
        *,
        default: object,
        default_factory: DefaultFactory | None,
        default_text: str | None,
        short: str | None,
        aliases: tuple[str, ...],
        hidden: bool,
        heading: str,
        metavar: str | None,
        var_arg: bool,
        secret: bool,
    ) -> None:
        self.type = type
        self.help = help
        self.default = default
        self.default_factory = default_factory
        self.default_text = default_text
        self.short = short
        self.aliases = aliases
        self.hidden = hidden
        self.heading = heading
        self.metavar = metavar if metavar is not None else type.metavar
        self.var_arg = var_arg
        self.secret = secret

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr
        self.name = attr.replace("_", "-")

    @property
    def flag(self) -> str:
        return "--" + self.name

    @property
    def is_bool(self) -> bool:
        return self.type is BOOL

    def env_names(self, env_prefix: str) -> tuple[str, str]:
        """The program's own env var and the generic ``MAELSTROM_`` one, most preferred first."""
        upper = self.name.upper().replace("-", "_")
        return env_prefix + upper, "MAELSTROM_" + upper

    def default_value(self, env: Mapping[str, str]) -> object:
        if self.default_factory is not None:
            return self.default_factory(env)
        return self.default

    def describe_default(self, env: Mapping[str, str]) -> str:
        """The default as ``--help`` shows it."""
        if self.default_text is not None:
            return self.default_text
        value = self.default_value(env)
        if value is None:
            return "not set"
        shown = self.type.to_toml(value)
        return shown[1:-1] if shown.startswith('"') else shown

    def __repr__(self) -> str:
        return f"<Key {getattr(self, 'name', '?')}>"


def key(
    type: ValueType[Any],
    help: str,
    *,
    default: object = None,
    default_factory: DefaultFactory | None = None,
    default_text: str | None = None,
    short: str | None = None,
    aliases: Iterable[str] = (),
    hidden: bool = False,
    heading: str = "Config Values",
    metavar: str | None = None,
    var_arg: bool = False,
    secret: bool = False,
) -> Any:
    """Declare a configuration value as a class attribute of a ``ConfigBase`` subclass.

    ``default=None`` (and no factory) means "unset": the attribute is ``None`` unless some layer
    sets it. Booleans default to ``False`` and lists to ``()``. Returns ``Any`` so that the
    attribute's annotation is the resolved value's type.
    """
    if type is BOOL and default is None:
        default = False
    if type is STRING_LIST and default is None:
        default = ()
    return Key(
        type,
        help,
        default=default,
        default_factory=default_factory,
        default_text=default_text,
        short=short,
        aliases=tuple(aliases),
        hidden=hidden,
        heading=heading,
        metavar=metavar,
        var_arg=var_arg,
        secret=secret,
    )


# ---------------------------------------------------------------------------------------------
# Where values come from


@dataclass(frozen=True, slots=True)
class Source:
    """Where a resolved value came from: a flag, an env var, a config file line, or the default."""

    kind: Literal["default", "flag", "env", "file", "override"]
    name: str = ""
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "flag":
            return self.name
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "file":
            return f"{self.name}:{self.line}" if self.line is not None else self.name
        return self.kind


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    if home:
        return Path(home)
    import pwd

    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def _xdg_dir(env: Mapping[str, str], name: str, fallback: str) -> Path:
    value = env.get(name, "")
    # The XDG spec says relative paths in these variables are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return _home(env) / fallback


def cache_home(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME``, or ``~/.cache``."""
    return _xdg_dir(env, "XDG_CACHE_HOME", ".cache")


def config_search_path(prefix: str, env: Mapping[str, str]) -> list[Path]:
    """The config files a program reads, most preferred first (whether or not they exist)."""
    dirs = [_xdg_dir(env, "XDG_CONFIG_HOME", ".config")]
    system = env.get("XDG_CONFIG_DIRS", "")
    entries = [d for d in system.split(":") if d and os.path.isabs(d)] or ["/etc/xdg"]
    dirs.extend(Path(d) for d in entries)
    paths: list[Path] = []
    for directory in dirs:
        path = directory / prefix / "config.toml"
        if path not in paths:
            paths.append(path)
    return paths


class _ConfigFile:
    def __init__(self, path: Path) -> None:
        import tomllib

        self.path = path
        try:
            self.text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        try:
            self.table: dict[str, Any] = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as err:
            message = str(err)
            match = re.search(r"\(at line (\d+), column \d+\)", message)
            where = f"{path}:{match.group(1)}" if match else str(path)
            reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
            raise ConfigError(f"{where}: invalid TOML: {reason}") from None

    def line_of(self, name: str) -> int | None:
        """The line that sets top-level key ``name`` (tomllib keeps no positions)."""
        quoted = re.escape(name)
        pattern = re.compile(
            rf"""^\s*(?:{quoted}|"{quoted}"|'{quoted}')\s*[=.]|^\s*\[+\s*{quoted}\s*[\].]"""
        )
        for number, line in enumerate(self.text.splitlines(), 1):
            if pattern.match(line):
                return number
        return None

    def source(self, name: str) -> Source:
        return Source("file", str(self.path), self.line_of(name))


def _shorten(raw: object) -> str:
    shown = repr(raw)
    return shown if len(shown) <= 80 else shown[:77] + "..."


# ---------------------------------------------------------------------------------------------
# The config base class


class ConfigBase:
    """Base of every program's resolved configuration.

    Subclasses declare keys with ``key(...)`` and set the class variables naming the program.
    Instances are immutable; ``source(name)`` tells where a value came from.
    """

    program: ClassVar[str] = ""
    xdg_prefix: ClassVar[str] = ""
    env_prefix: ClassVar[str] = ""
    log_to_stdout: ClassVar[bool] = False
    _keys: ClassVar[dict[str, Key]] = {}

    _values: dict[str, object]
    _sources: dict[str, Source]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        keys: dict[str, Key] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, Key):
                    keys[value.attr] = value
        cls._keys = keys

    def __init__(self, values: Mapping[str, object], sources: Mapping[str, Source]) -> None:
        missing = set(self._keys) - set(values)
        extra = set(values) - set(self._keys)
        if missing or extra:
            raise TypeError(f"{type(self).__name__}: missing {missing or '{}'}, unknown {extra}")
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_sources", dict(sources))
        for attr, value in values.items():
            object.__setattr__(self, attr, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ConfigBase)
        return self._values == other._values

    def __hash__(self) -> int:
        return hash((type(self), tuple(repr(v) for v in self._values.values())))

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k.attr}={'***' if k.secret and self._values[k.attr] else repr(self._values[k.attr])}"
            for k in self._keys.values()
        )
        return f"{type(self).__name__}({fields})"

    @classmethod
    def config_keys(cls) -> tuple[Key, ...]:
        """Every key of this program, in declaration order (shared tables first)."""
        return tuple(cls._keys.values())

    @classmethod
    def key_named(cls, name: str) -> Key:
        """The key called ``name`` (kebab-case or snake_case)."""
        try:
            return cls._keys[name.replace("-", "_")]
        except KeyError:
            raise KeyError(f"{cls.program or cls.__name__} has no config key {name!r}") from None

    def source(self, name: str) -> Source:
        """Where the value of key ``name`` (kebab-case or snake_case) came from."""
        return self._sources[self.key_named(name).attr]

    def as_dict(self) -> dict[str, object]:
        """Values by kebab-case key name."""
        return {k.name: self._values[k.attr] for k in self._keys.values()}

    def replace(self: C, **changes: object) -> C:
        """A copy with some values replaced (by snake_case name); their source is "override"."""
        values = dict(self._values)
        sources = dict(self._sources)
        for attr, value in changes.items():
            self.key_named(attr)
            values[attr] = value
            sources[attr] = Source("override")
        return type(self)(values, sources)

    def validate(self) -> None:
        """Check rules that span several keys. Subclasses extend it; raises ``ConfigError``."""

    @classmethod
    def search_path(cls, env: Mapping[str, str] | None = None) -> list[Path]:
        """This program's XDG config files, most preferred first."""
        return config_search_path(cls.xdg_prefix, os.environ if env is None else env)

    @classmethod
    def resolve(
        cls: type[C],
        *,
        cli: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
    ) -> C:
        """Resolve every key from its layers and validate the result.

        Args:
            cli: values given on the command line, by kebab- or snake-case key name: the text
                of a value option, ``True`` for a given boolean flag, a sequence of strings for
                a var-arg list. ``None``, ``False`` and empty lists count as "not given".
            env: the environment (default ``os.environ``).
            config_file: ``None`` searches the XDG paths, ``"-"`` reads no file, anything else
                reads only that file.

        Raises:
            ConfigError: a bad value, file or key; the message names where it came from.
        """
        env = os.environ if env is None else env
        cli = {} if cli is None else {name.replace("_", "-"): v for name, v in cli.items()}
        for name in cli:
            cls.key_named(name)
        files = cls._read_files(env, config_file)
        values: dict[str, object] = {}
        sources: dict[str, Source] = {}
        for k in cls._keys.values():
            values[k.attr], sources[k.attr] = cls._resolve_key(k, cli.get(k.name), env, files)
        config = cls(values, sources)
        config.validate()
        return config

    @classmethod
    def _read_files(
        cls, env: Mapping[str, str], config_file: str | os.PathLike[str] | None
    ) -> list[_ConfigFile]:
        if config_file is None:
            paths = [p for p in cls.search_path(env) if p.is_file()]
        elif os.fspath(config_file) == "-":
            paths = []
        else:
            paths = [Path(config_file)]
        files = [_ConfigFile(path) for path in paths]
        for file in files:
            for name in file.table:
                if name.replace("-", "_") not in cls._keys or "_" in name:
                    where = file.source(name)
                    raise ConfigError(f"{where}: unknown config key {name!r} for {cls.program}")
        return files

    @classmethod
    def _resolve_key(
        cls, k: Key, given: object, env: Mapping[str, str], files: Sequence[_ConfigFile]
    ) -> tuple[object, Source]:
        if given is not None and given is not False and given != () and given != []:
            source = Source("flag", k.flag)
            if k.is_bool:
                return True, source
            if k.var_arg:
                assert isinstance(given, Sequence)
                return tuple(str(item) for item in given), source
            return cls._parse(k, str(given), source, k.type.from_str)
        for env_name in k.env_names(cls.env_prefix):
            if env_name in env:
                return cls._parse(k, env[env_name], Source("env", env_name), k.type.from_str)
        for file in files:
            if k.name in file.table:
                return cls._parse(k, file.table[k.name], file.source(k.name), k.type.from_toml)
        return k.default_value(env), Source("default")

    @classmethod
    def _parse(
        cls, k: Key, raw: Any, source: Source, parser: Callable[[Any], object]
    ) -> tuple[object, Source]:
        try:
            return parser(raw), source
        except BadValue as err:
            shown = "(hidden)" if k.secret else _shorten(raw)
            raise ConfigError(
                f"invalid value {shown} for {k.name} (from {source}): {err}"
            ) from None

    def require(self, name: str, why: str) -> None:
        """Raise ``ConfigError`` unless key ``name`` is set; ``why`` says why it is needed."""
        k = self.key_named(name)
        if self._values[k.attr] is None:
            prog_env, generic_env = k.env_names(self.env_prefix)
            raise ConfigError(
                f"{k.name} must be set {why}: use {k.flag}, {prog_env}, {generic_env} "
                f"or {k.name} in a config file"
            )

    def format(self) -> str:
        """Every key as a TOML-ish ``key = value`` line commented with its source."""
        lines = [f"# {self.program} configuration (source of each value after '#')"]
        for k in self._keys.values():
            value = self._values[k.attr]
            source = self._sources[k.attr]
            if value is None:
                default = k.describe_default(os.environ)
                detail = "" if default == "not set" else f" ({default})"
                lines.append(f"# {k.name} is not set{detail}")
                continue
            shown = '"***"' if k.secret else k.type.to_toml(value)
            lines.append(f"{k.name} = {shown}  # {source}")
        return "\n".join(lines)
