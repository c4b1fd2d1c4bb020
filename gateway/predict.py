"""Synchronous prediction: request shapes, row limits, validation, cache, coalesced model calls."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.cache import decode, encode
from gateway.errors import TooManyRows, UnknownField
from registry.errors import InvalidInput, VersionNotFound
from registry.model import LoadedModel, Prediction

if TYPE_CHECKING:
    from gateway.state import GatewayState

_V1_FIELDS = frozenset({"instances", "records", "version"})
#: MLflow versions are 32-bit integers; a larger one cannot exist (and is not sent to MLflow).
MAX_VERSION = 2**31 - 1
#: Requests of at most this many rows are validated on the event loop (microseconds each).
INLINE_VALIDATION_ROWS = 64


class CacheCount(NamedTuple):
    """Rows of one request answered from the cache, and rows predicted."""

    hits: int
    misses: int


def uses_cache(mode: str, runtime: str) -> bool:
    """Whether the prediction cache serves a version on `runtime` under the `cache_mode`."""
    return mode == "on" or (mode == "sklearn" and runtime == "sklearn")


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


async def serve(
    state: GatewayState, ref: str, kind: str, rows: Any, version: int | None
) -> tuple[LoadedModel, Prediction, CacheCount]:
    """The whole sync path after parsing: row limit, model lookup, validation, cache, model.

    Validation runs on the loop for small requests (microseconds) and in a thread otherwise.
    """
    settings = state.settings
    check_row_count(rows, settings.max_sync_rows, ref.partition("@")[0])
    model = await state.models.resolve(ref, version)
    if isinstance(rows, list) and len(rows) <= INLINE_VALIDATION_ROWS:
        checked = checked_rows(model, kind, rows)
    else:
        checked = await asyncio.to_thread(checked_rows, model, kind, rows)
    cache = state.cache if uses_cache(settings.cache_mode, model.runtime) else None
    if cache is None:
        return model, await state.coalescer.predict(model, checked), CacheCount(0, 0)
    keys = cache.keys(model, checked)
    found = await cache.get_many(keys)
    missing = [i for i, value in enumerate(found) if value is None]
    fresh = None
    if missing:
        fresh = await state.coalescer.predict(model, [checked[i] for i in missing])
    labels: list[Any] = [None] * len(checked)
    probabilities: list[Any] = [None] * len(checked)
    for i, value in enumerate(found):
        if value is not None:
            labels[i], probabilities[i] = decode(value)
    if fresh is not None:
        for j, i in enumerate(missing):
            labels[i] = fresh.labels[j]
            probabilities[i] = fresh.probabilities[j] if fresh.probabilities is not None else None
        cache.put_many([(keys[i], encode(labels[i], probabilities[i])) for i in missing])
    result = Prediction(labels, probabilities if model.has_probabilities else None)
    return model, result, CacheCount(len(checked) - len(missing), len(missing))
