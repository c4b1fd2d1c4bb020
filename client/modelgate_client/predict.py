"""Synchronous predictions: `POST /v1/models/{model}/predict`, its body and its answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import httpx

from modelgate_client import frames
from modelgate_client._wire import Call, Plan, Target, exchange, json_call, json_object, model_path
from modelgate_client.errors import BadResponse

#: Rows as lists of values in signature order, or as records (feature name to value).
Rows = Union[Sequence[Sequence[Any]], Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class Prediction:
    """The gateway's answer to one predict call.

    `labels` are the predictions (class labels, or values for a regressor), one per row in
    input order; `probabilities` one list per row, in the order of `classes` (None when the
    model gives none). `runtime` is the runtime that answered (`X-Model-Runtime`), `cache_hits`
    and `cache_misses` how many rows the gateway's cache answered; `raw` is the answer's JSON.
    """

    model: str
    version: int
    labels: list[Any]
    probabilities: Optional[list[list[float]]]
    classes: Optional[list[Any]]
    runtime: Optional[str] = None
    request_id: Optional[str] = None
    cache_hits: Optional[int] = None
    cache_misses: Optional[int] = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)


def _is_rows(data: Any) -> bool:
    return isinstance(data, (list, tuple))


def predict_body(data: Any, version: Optional[int] = None) -> dict[str, Any]:
    """The v1 body for `data`: a DataFrame or a list of dicts as `records` (named features),
    a list of lists (or a 2-D array) as `instances` (values in signature order)."""
    if frames.is_frame(data):
        body: dict[str, Any] = {"records": frames.frame_records(data)}
    else:
        rows = data.tolist() if hasattr(data, "tolist") and not _is_rows(data) else data
        if isinstance(rows, (Mapping, str, bytes)) or not _is_rows(rows):
            raise TypeError(
                "data must be a list of rows (lists of values), a list of records (dicts) "
                "or a pandas DataFrame"
            )
        rows = list(rows)
        kind = "records" if rows and isinstance(rows[0], Mapping) else "instances"
        body = {kind: [dict(r) if kind == "records" else list(r) for r in rows]}
    if version is not None:
        body["version"] = int(version)
    return body


def _count(headers: httpx.Headers, name: str) -> Optional[int]:
    value = headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def parse_prediction(response: httpx.Response) -> Prediction:
    document = json_object(response)
    try:
        return Prediction(
            model=str(document["model"]),
            version=int(document["version"]),
            labels=list(document["predictions"]),
            probabilities=document.get("probabilities"),
            classes=document.get("classes"),
            runtime=response.headers.get("x-model-runtime"),
            request_id=response.headers.get("x-request-id"),
            cache_hits=_count(response.headers, "x-cache-hits"),
            cache_misses=_count(response.headers, "x-cache-misses"),
            raw=document,
        )
    except (KeyError, TypeError, ValueError):
        raise BadResponse("the predict answer lacks model, version or predictions") from None


def predict_plan(target: Target, model: str, data: Any, version: Optional[int] = None) -> Plan[Any]:
    """A Prediction, or for a DataFrame a DataFrame (see `frames.prediction_frame`)."""
    call: Call = json_call(
        "POST", model_path(model, "/predict"), predict_body(data, version), idempotent=True
    )
    prediction = parse_prediction((yield from exchange(call, target)))
    if frames.is_frame(data):
        return frames.prediction_frame(
            prediction.labels, prediction.probabilities, prediction.classes, data.index
        )
    return prediction
