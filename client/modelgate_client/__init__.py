"""The Python client of a Modelgate gateway: predictions, models and batch jobs.

    from modelgate_client import Client

    with Client() as client:  # the URL and key from the environment, var/stack.env, ...
        answer = client.predict("iris", [[5.1, 3.5, 1.4, 0.2]])
        job = client.jobs.submit("iris", "rows.csv")
        client.jobs.wait(job, progress=lambda j: print(j.rows_done, "/", j.rows))
        client.jobs.download(job, "predictions.csv")

`AsyncClient` has the same methods, awaited. Importing this package imports neither pandas
nor httpx: the clients and the types of their answers load (with httpx) on first use, and
pandas only in the DataFrame functions.
"""

import importlib
from typing import TYPE_CHECKING, Any

from modelgate_client._version import __version__
from modelgate_client.config import Connection, Found, find_connection, find_setting
from modelgate_client.errors import (
    AuthenticationError,
    BadRequest,
    BadResponse,
    Conflict,
    ConnectionFailed,
    Gone,
    InvalidInput,
    JobCancelled,
    JobError,
    JobFailed,
    ModelgateError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unavailable,
    UnsupportedFormat,
    UnsupportedMediaType,
    WaitTimeout,
)
from modelgate_client.retry import Retry

if TYPE_CHECKING:
    from modelgate_client.aio import AsyncClient, AsyncJobs
    from modelgate_client.client import Client, Jobs
    from modelgate_client.jobs import Job
    from modelgate_client.models import Model, ModelVersion
    from modelgate_client.predict import Prediction
    from modelgate_client.uploads import format_for_path

#: Names imported on first use, with httpx: `import modelgate_client` alone stays light (the
#: configuration, errors and retry policy import only the standard library).
_LAZY = {
    "AsyncClient": "aio",
    "AsyncJobs": "aio",
    "Client": "client",
    "Jobs": "client",
    "Job": "jobs",
    "Model": "models",
    "ModelVersion": "models",
    "Prediction": "predict",
    "format_for_path": "uploads",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AsyncClient",
    "AsyncJobs",
    "AuthenticationError",
    "BadRequest",
    "BadResponse",
    "Client",
    "Conflict",
    "Connection",
    "ConnectionFailed",
    "Found",
    "Gone",
    "InvalidInput",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "Jobs",
    "Model",
    "ModelVersion",
    "ModelgateError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Prediction",
    "RateLimited",
    "Retry",
    "ServerError",
    "Unavailable",
    "UnsupportedFormat",
    "UnsupportedMediaType",
    "WaitTimeout",
    "__version__",
    "find_connection",
    "find_setting",
    "format_for_path",
]
