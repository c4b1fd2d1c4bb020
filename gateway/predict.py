"""Synchronous prediction: request shapes, row limits, and model calls off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gateway.errors import Overloaded, TooManyRows, UnknownField
from gateway.serving import ModelManager
from registry.errors import InvalidInput, VersionNotFound
from registry.model import LoadedModel, Prediction

_V1_FIELDS = frozenset({"instances", "records", "version"})
#: MLflow versions are 32-bit integers; a larger one cannot exist (and is not sent to MLflow).
MAX_VERSION = 2**31 - 1


class Predictor:
    """Runs model calls in a thread pool behind a bounded queue (full: 503 Overloaded)."""

    def __init__(self, threads: int, max_pending: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="predict")
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()

    async def predict(self, model: LoadedModel, kind: str, rows: Any) -> Prediction:
        """Validate `rows` against the model and predict them, in one job off the event loop."""
        with self._lock:
            if self.pending >= self.max_pending:
                raise Overloaded("too many predictions in progress; retry shortly")
            self.pending += 1
        # Released when the call really ends, even if the awaiting request was cancelled first.
        job = self.executor.submit(_check_and_predict, model, kind, rows)
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, _: Future[Prediction]) -> None:
        with self._lock:
            self.pending -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def parse_version(body: Mapping[str, Any]) -> int | None:
    """The optional pinned version: a positive integer, or a string of digits."""
    raw = body.get("version")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, float) and raw.is_integer():  # JSON has one number type: 2.0 is 2
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise InvalidInput("'version' must be a positive integer")
    if raw > MAX_VERSION:
        raise VersionNotFound(f"no version {raw}")
    return raw


def v1_request(body: Any) -> tuple[str, Any, int | None]:
    """Split a `/v1/.../predict` body into (kind, rows, version) without checking the rows."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with 'instances' or 'records'")
    unknown = sorted(str(k)[:64] for k in body if k not in _V1_FIELDS)
    if unknown:
        raise UnknownField(f"unknown field(s): {', '.join(unknown[:5])}")
    kinds = [k for k in ("instances", "records") if k in body]
    if len(kinds) != 1:
        raise InvalidInput("give exactly one of 'instances' or 'records'")
    return kinds[0], body[kinds[0]], parse_version(body)


def legacy_rows(body: Any) -> Any:
    """The rows of SEED.md's `{"features": [[...], ...]}`."""
    if not isinstance(body, dict) or "features" not in body:
        raise InvalidInput("the body must be a JSON object with 'features', a list of rows")
    return body["features"]


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


def _check_and_predict(model: LoadedModel, kind: str, rows: Any) -> Prediction:
    return model.predict(checked_rows(model, kind, rows))


async def serve(
    models: ModelManager,
    predictor: Predictor,
    ref: str,
    kind: str,
    rows: Any,
    version: int | None,
    max_rows: int,
) -> tuple[LoadedModel, Prediction]:
    """The whole sync path after parsing: row limit, model lookup, validation, model call."""
    check_row_count(rows, max_rows, ref.partition("@")[0])
    model = await models.resolve(ref, version)
    return model, await predictor.predict(model, kind, rows)
