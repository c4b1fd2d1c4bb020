"""Typed errors of the model side; each has a stable `code` that the gateway maps to a status.

ModelgateError
├── InvalidInput            invalid_input       rows that do not fit the signature
├── PredictTimeout          predict_timeout     a pyfunc model overran its time limit
└── RegistryError
    ├── ModelNotFound       model_not_found
    ├── AliasNotFound       alias_not_found
    ├── VersionNotFound     version_not_found
    ├── ArtifactRejected    artifact_rejected   missing or wrong SHA-256, unknown format
    ├── AliasHistoryEmpty   alias_history_empty nothing to roll back to
    └── RegistryUnavailable registry_unavailable
"""

from __future__ import annotations


class ModelgateError(Exception):
    """Base of every error Modelgate raises on purpose; `message` is safe to show a client."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ModelgateError):
    code = "invalid_input"


class PredictTimeout(ModelgateError):
    code = "predict_timeout"


class RegistryError(ModelgateError):
    code = "registry_error"


class ModelNotFound(RegistryError):
    code = "model_not_found"


class AliasNotFound(RegistryError):
    code = "alias_not_found"


class VersionNotFound(RegistryError):
    code = "version_not_found"


class ArtifactRejected(RegistryError):
    code = "artifact_rejected"


class AliasHistoryEmpty(RegistryError):
    code = "alias_history_empty"


class RegistryUnavailable(RegistryError):
    code = "registry_unavailable"
