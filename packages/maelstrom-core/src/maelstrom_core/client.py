"""The client library: submit jobs, follow their progress, get their outcomes."""

from ._broker_client import Upload as Upload
from ._broker_client import UploadProgress as UploadProgress
from ._broker_client import UploadStatistics as UploadStatistics
from ._client import Client as Client
from ._client import ClientSettings as ClientSettings
from ._client import JobRunner as JobRunner
from ._client import open_client as open_client

__all__ = [
    "Client",
    "ClientSettings",
    "JobRunner",
    "Upload",
    "UploadProgress",
    "UploadStatistics",
    "open_client",
]
