"""`LoadedModel`: one registered model version in memory, ready to predict."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import InvalidInput
from registry.signature import Signature
from runtime.base import NativeRuntime, Prediction, Runtime

__all__ = ["LoadedModel", "Prediction"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """An immutable, verified model version; swapped whole, never changed in place.

    `native` is the runtime of the library it was trained with; `twin`, when set, is a verified
    faster runtime that answers instead (`twin_status` says why it is there or not).
    """

    name: str
    version: int
    run_id: str | None
    signature: Signature
    native: NativeRuntime = field(repr=False, compare=False)
    digest: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    twin: Runtime | None = field(default=None, repr=False, compare=False)
    #: Why the version runs on its runtime: "verified", "not converted", a refusal reason...
    twin_status: str = "not converted"
    #: Size of the artifact on disk: the approximate memory the loaded version holds.
    artifact_bytes: int = 0

    @property
    def runtime(self) -> Runtime:
        """The runtime that answers: the twin when there is one, else the native runtime."""
        return self.twin if self.twin is not None else self.native

    def runtime_for(self, rows: Iterable[list[Any]]) -> Runtime:
        """The runtime that answers these rows: the twin, unless a row holds a missing value.
        A twin is verified on complete rows; a converter may send NaN down another branch than
        the library does (skl2onnx's forests do), so missing values go to the native runtime."""
        if self.twin is None or self.signature.has_missing(rows):
            return self.native
        return self.twin

    @property
    def model_type(self) -> str:
        return self.native.model_type

    @property
    def flavor(self) -> str:
        return self.native.flavor

    @property
    def classes(self) -> list[Any] | None:
        return self.native.classes

    @property
    def has_probabilities(self) -> bool:
        return self.native.has_probabilities

    @property
    def estimator(self) -> Any:
        """The native library's model object."""
        return self.native.estimator

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Predict validated rows; CPU-bound, so callers run it off the event loop (or inline
        when the runtime's `inline_rows` allows).

        Values the signature allows can still be out of the model's range (forests work in
        float32): the runtime's ValueError then becomes InvalidInput, never a server error. A
        pyfunc sorts what its author's code raises itself (runtime/pyfunc.py): a refusal of
        the rows is InvalidInput, anything else `ModelRaised`, which the coalescer blames on
        the rows only when they fail alone while the model answers others.
        """
        try:
            return self.runtime_for(rows).predict(rows)
        except (ValueError, OverflowError) as exc:
            logger.info("model %s v%s refused rows: %s", self.name, self.version, type(exc))
            raise InvalidInput(
                "the model cannot score these rows (a value is out of its numeric range)"
            ) from None

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models` tells about this version."""
        return {
            "version": self.version,
            "run_id": self.run_id,
            "model_type": self.model_type,
            "flavor": self.flavor,
            "runtime": self.runtime.name,
            "onnx": self.twin_status,
            "signature": self.signature.as_dict(),
            "classes": self.classes,
            "metrics": dict(self.metrics),
            "sha256": self.digest,
        }
