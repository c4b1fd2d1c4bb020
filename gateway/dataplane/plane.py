"""`DataPlane`: the one synchronous prediction path, whatever protocol a request came in by.

A protocol adapter (gateway/protocols/) parses its request into a `PredictCall` and renders the
`Answer`; between the two, the plane does the row limit, resolves the model version, validates
the rows against its signature, looks them up in the cache, predicts the misses in a coalesced
model call, fills the cache and calls its answer hooks (the prediction log will be one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from gateway.dataplane.cache import PredictionCache, decode, encode
from gateway.dataplane.coalescer import Coalescer
from gateway.dataplane.models import ModelManager
from gateway.http.errors import TooManyRows
from registry.model import LoadedModel
from runtime.base import SCORES, Prediction, Runtime

logger = logging.getLogger(__name__)

#: Requests of at most this many rows are validated on the event loop (microseconds each).
INLINE_VALIDATION_ROWS = 64


class CacheCount(NamedTuple):
    """Rows of one request answered from the cache, and rows predicted."""

    hits: int
    misses: int


class Caller(NamedTuple):
    """Who asks: the key's id and owner, and a route key when the client sends one.

    The call types are named tuples: immutable, and built per request at a fraction of a frozen
    dataclass's cost."""

    key_id: str
    owner: str
    route_key: str | None = None


class PredictCall(NamedTuple):
    """One synchronous prediction, as a protocol adapter parsed it.

    `model` is `name` or `name@alias`; `kind` says how `rows` are laid out ("instances":
    positional rows, "records": objects of feature name to value); `version` pins a version.
    """

    model: str
    kind: str
    rows: Any
    version: int | None
    caller: Caller
    request_id: str
    protocol: str


class Answer(NamedTuple):
    """What the plane answered a call: the version that answered, its prediction, the cache."""

    call: PredictCall
    model: LoadedModel
    prediction: Prediction
    cache: CacheCount


#: Called on the event loop after each answer; must be quick (hand work off) and never raise.
AnswerHook = Callable[[Answer], None]


def uses_cache(mode: str, runtime: Runtime) -> bool:
    """Whether the prediction cache serves a version on `runtime` under the `cache_mode`:
    `on` always, `off` never, `sklearn` when the runtime is worth a cache round trip."""
    return mode == "on" or (mode in ("native", "sklearn") and runtime.worth_caching)


def check_row_count(rows: Any, limit: int, model: str) -> None:
    if isinstance(rows, list) and len(rows) > limit:
        raise TooManyRows(
            f"{len(rows)} rows exceed the synchronous limit of {limit}; "
            f"submit them as a batch job (POST /v1/models/{model}/jobs)"
        )


def checked_rows(model: LoadedModel, kind: str, rows: Any) -> list[list[Any]]:
    if kind == "records":
        return model.signature.check_records(rows)
    return model.signature.check_instances(rows)


class DataPlane:
    """Every method runs on the event loop; validation of large requests and model calls that
    are not cheap enough for the loop run in threads."""

    def __init__(
        self,
        models: ModelManager,
        coalescer: Coalescer,
        cache: PredictionCache,
        *,
        max_rows: int,
        cache_mode: str,
    ) -> None:
        self.models = models
        self.coalescer = coalescer
        self.cache = cache
        self.max_rows = max_rows
        self.cache_mode = cache_mode
        self._hooks: list[AnswerHook] = []

    def add_hook(self, hook: AnswerHook) -> None:
        """Call `hook` after every answer (not after errors)."""
        self._hooks.append(hook)

    async def predict(self, call: PredictCall) -> Answer:
        check_row_count(call.rows, self.max_rows, call.model.partition("@")[0])
        model = await self.models.resolve(call.model, call.version)
        rows = call.rows
        if isinstance(rows, list) and len(rows) <= INLINE_VALIDATION_ROWS:
            checked = checked_rows(model, call.kind, rows)
        else:
            checked = await asyncio.to_thread(checked_rows, model, call.kind, rows)
        if uses_cache(self.cache_mode, model.runtime):
            prediction, count = await self._cached(model, checked)
        else:
            prediction, count = await self.coalescer.predict(model, checked), CacheCount(0, 0)
        answer = Answer(call, model, prediction, count)
        for hook in self._hooks:
            try:
                hook(answer)
            except Exception:  # a hook never fails the request it observes
                logger.exception("answer hook %r failed", hook)
        return answer

    async def _cached(
        self, model: LoadedModel, checked: list[list[Any]]
    ) -> tuple[Prediction, CacheCount]:
        cache = self.cache
        keys = cache.keys(model, checked)
        found = await cache.get_many(keys)
        missing = [i for i, value in enumerate(found) if value is None]
        fresh = None
        if missing:
            fresh = await self.coalescer.predict(model, [checked[i] for i in missing])
        labels: list[Any] = [None] * len(checked)
        probabilities: list[Any] = [None] * len(checked)
        scores: list[Any] = [None] * len(checked)
        for i, value in enumerate(found):
            if value is not None:
                labels[i], probabilities[i], scores[i] = decode(value)
        if fresh is not None:
            proba, fresh_scores = fresh.probabilities, fresh.scores
            for j, i in enumerate(missing):
                labels[i] = fresh.labels[j]
                probabilities[i] = proba[j] if proba is not None else None
                scores[i] = fresh_scores[j] if fresh_scores is not None else None
            cache.put_many(
                [(keys[i], encode(labels[i], probabilities[i], scores[i])) for i in missing]
            )
        kept = scores if model.native.mlflow_output in SCORES and None not in scores else None
        result = Prediction(labels, probabilities if model.has_probabilities else None, kept)
        return result, CacheCount(len(checked) - len(missing), len(missing))
