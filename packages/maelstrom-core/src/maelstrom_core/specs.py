"""Container and job specs as users write them: parsing, validation, collapsing, environment.

Front ends parse specs (``parse_job_stream`` for ``maelstrom-run``'s JSON stream,
``parse_container_table``/``parse_containers_table`` for TOML, ``parse_container_keys`` for
test-runner directives), keep named containers in a ``ContainerStore`` and ``collapse`` each
job into a ``CollapsedJob``, whose layer specs the client builds into a resolved ``JobSpec``.
"""

from ._layer_spec import GlobLayer as GlobLayer
from ._layer_spec import LayerSpec as LayerSpec
from ._layer_spec import PathsLayer as PathsLayer
from ._layer_spec import PrefixOptions as PrefixOptions
from ._layer_spec import SharedLibraryDependenciesLayer as SharedLibraryDependenciesLayer
from ._layer_spec import StubsLayer as StubsLayer
from ._layer_spec import SymlinksLayer as SymlinksLayer
from ._layer_spec import SymlinkSpec as SymlinkSpec
from ._layer_spec import TarLayer as TarLayer
from ._specs_collapse import ContainerStore as ContainerStore
from ._specs_collapse import ImageConfigProvider as ImageConfigProvider
from ._specs_env import evaluate_environment as evaluate_environment
from ._specs_env import substitute as substitute
from ._specs_image import DockerImageName as DockerImageName
from ._specs_image import LocalImageName as LocalImageName
from ._specs_image import parse_image_name as parse_image_name
from ._specs_model import BindMountSpec as BindMountSpec
from ._specs_model import CollapsedJob as CollapsedJob
from ._specs_model import ContainerRef as ContainerRef
from ._specs_model import ContainerSpec as ContainerSpec
from ._specs_model import ContainerUse as ContainerUse
from ._specs_model import EnvironmentSpec as EnvironmentSpec
from ._specs_model import ImageConfig as ImageConfig
from ._specs_model import ImageRef as ImageRef
from ._specs_model import ImageUse as ImageUse
from ._specs_model import JobSpec as JobSpec
from ._specs_model import MountSpec as MountSpec
from ._specs_parse import CONTAINER_KEYS as CONTAINER_KEYS
from ._specs_parse import JOB_KEYS as JOB_KEYS
from ._specs_parse import ContainersItem as ContainersItem
from ._specs_parse import JobItem as JobItem
from ._specs_parse import JobStreamParser as JobStreamParser
from ._specs_parse import StreamItem as StreamItem
from ._specs_parse import TomlWhere as TomlWhere
from ._specs_parse import Where as Where
from ._specs_parse import parse_container_keys as parse_container_keys
from ._specs_parse import parse_container_table as parse_container_table
from ._specs_parse import parse_containers_table as parse_containers_table
from ._specs_parse import parse_job_stream as parse_job_stream
from ._specs_parse import reject_unknown_keys as reject_unknown_keys

__all__ = [
    "CONTAINER_KEYS",
    "JOB_KEYS",
    "BindMountSpec",
    "CollapsedJob",
    "ContainerRef",
    "ContainerSpec",
    "ContainerStore",
    "ContainerUse",
    "ContainersItem",
    "DockerImageName",
    "EnvironmentSpec",
    "GlobLayer",
    "ImageConfig",
    "ImageConfigProvider",
    "ImageRef",
    "ImageUse",
    "JobItem",
    "JobSpec",
    "JobStreamParser",
    "LayerSpec",
    "LocalImageName",
    "MountSpec",
    "PathsLayer",
    "PrefixOptions",
    "SharedLibraryDependenciesLayer",
    "StreamItem",
    "StubsLayer",
    "SymlinkSpec",
    "SymlinksLayer",
    "TarLayer",
    "TomlWhere",
    "Where",
    "evaluate_environment",
    "parse_container_keys",
    "parse_container_table",
    "parse_containers_table",
    "parse_image_name",
    "parse_job_stream",
    "reject_unknown_keys",
    "substitute",
]
