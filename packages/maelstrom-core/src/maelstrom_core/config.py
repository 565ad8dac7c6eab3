"""Layered configuration of every maelstrom program.

Each program's config class resolves its keys from, most preferred first: a command-line flag,
``<PROG>_<KEY>``, ``MAELSTROM_<KEY>``, and the XDG config files. See docs/configuration.md.

>>> config = WorkerConfig.resolve(cli={"broker": "localhost:9000"}, env={}, config_file="-")
>>> config.broker, str(config.source("broker"))
(BrokerAddress(host='localhost', port=9000), '--broker')
"""

from ._config import BrokerAddress as BrokerAddress
from ._config import ConfigBase as ConfigBase
from ._config import EscapeChar as EscapeChar
from ._config import Key as Key
from ._config import Source as Source
from ._config import cache_home as cache_home
from ._config import config_search_path as config_search_path
from ._config import format_byte_size as format_byte_size
from ._config import parse_broker_address as parse_broker_address
from ._config import parse_byte_size as parse_byte_size
from ._config import parse_escape_char as parse_escape_char
from ._config_programs import AdminConfig as AdminConfig
from ._config_programs import BrokerConfig as BrokerConfig
from ._config_programs import CargoConfig as CargoConfig
from ._config_programs import ClientConfig as ClientConfig
from ._config_programs import CommonConfig as CommonConfig
from ._config_programs import GithubConfig as GithubConfig
from ._config_programs import GoTestConfig as GoTestConfig
from ._config_programs import ListMode as ListMode
from ._config_programs import NoOptions as NoOptions
from ._config_programs import RunConfig as RunConfig
from ._config_programs import RunOptions as RunOptions
from ._config_programs import TestRunnerConfig as TestRunnerConfig
from ._config_programs import TestRunnerOptions as TestRunnerOptions
from ._config_programs import WorkerConfig as WorkerConfig

__all__ = [
    "AdminConfig",
    "BrokerAddress",
    "BrokerConfig",
    "CargoConfig",
    "ClientConfig",
    "CommonConfig",
    "ConfigBase",
    "EscapeChar",
    "GithubConfig",
    "GoTestConfig",
    "Key",
    "ListMode",
    "NoOptions",
    "RunConfig",
    "RunOptions",
    "Source",
    "TestRunnerConfig",
    "TestRunnerOptions",
    "WorkerConfig",
    "cache_home",
    "config_search_path",
    "format_byte_size",
    "parse_broker_address",
    "parse_byte_size",
    "parse_escape_char",
]
