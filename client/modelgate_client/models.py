"""The served models: `GET /v1/models` and `GET /v1/models/{model}`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from modelgate_client._wire import Call, Plan, Target, model_path, request_json
from modelgate_client.errors import BadResponse


@dataclass(frozen=True)
class ModelVersion:
    """One loaded version: its signature (`features` are its column names, in order), its
    classes, metrics, the runtime that answers and the artifact digest."""

    version: int
    features: list[str]
    signature: list[dict[str, str]]
    classes: Optional[list[Any]]
    runtime: Optional[str]
    model_type: Optional[str]
    onnx: Optional[str]
    metrics: dict[str, Any]
    run_id: Optional[str]
    sha256: Optional[str]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Model:
    """A configured model: its served alias, whether it is ready, the version the alias
    serves, every loaded version, the last load error; `requested` maps another alias asked
    for with `model("name@alias")` to its version."""

    name: str
    alias: Optional[str]
    ready: bool
    version: Optional[int]
    versions: list[ModelVersion]
    last_error: Optional[str]
    requested: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def served(self) -> Optional[ModelVersion]:
        """The version the alias serves, if it is loaded."""
        return next((v for v in self.versions if v.version == self.version), None)


def parse_version(raw: Mapping[str, Any]) -> ModelVersion:
    signature = [dict(c) for c in raw.get("signature") or []]
    return ModelVersion(
        version=int(raw["version"]),
        features=[str(c.get("name")) for c in signature],
        signature=signature,
        classes=raw.get("classes"),
        runtime=raw.get("runtime"),
        model_type=raw.get("model_type"),
        onnx=raw.get("onnx"),
        metrics=dict(raw.get("metrics") or {}),
        run_id=raw.get("run_id"),
        sha256=raw.get("sha256"),
        raw=dict(raw),
    )


def parse_model(raw: Any) -> Model:
    try:
        version = raw.get("version")
        return Model(
            name=str(raw["name"]),
            alias=raw.get("alias"),
            ready=bool(raw.get("ready")),
            version=int(version) if version is not None else None,
            versions=[parse_version(v) for v in raw.get("versions") or []],
            last_error=raw.get("last_error"),
            requested={str(k): int(v) for k, v in (raw.get("requested") or {}).items()},
            raw=dict(raw),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise BadResponse("a model in the answer lacks its name or has a bad version") from None


def models_plan(target: Target) -> Plan[list[Model]]:
    document = yield from request_json(Call("GET", "/v1/models"), target)
    listed = document.get("models")
    if not isinstance(listed, list):
        raise BadResponse("the answer to GET /v1/models has no 'models' list")
    return [parse_model(m) for m in listed]


def model_plan(target: Target, model: str) -> Plan[Model]:
    return parse_model((yield from request_json(Call("GET", model_path(model)), target)))
