"""Model readiness for the V2 protocol, the same over REST and gRPC."""

from __future__ import annotations

from gateway.dataplane.models import ModelManager
from gateway.http.errors import STATUS_BY_CODE
from kernel.errors import ModelgateError


async def ready_version(models: ModelManager, ref: str, version: int | None) -> int | None:
    """The version that would answer `ref` (`name` or `name@alias`), pinned to `version` when
    given, if it is loaded here; else None. An unknown model is an error (404).

    A pinned version is ready only if it is in memory already: a probe never loads one. Another
    alias than the served one resolves (a bounded load, as a prediction would), and is not
    ready while that version cannot load."""
    spec = models.spec_of(ref)  # ModelNotFound for a model not served
    alias = ref.partition("@")[2]
    if version is not None:
        loaded = {m.version for m in models.loaded_versions(spec.name)}
        return version if version in loaded else None
    if not alias or alias == spec.alias:
        serving = models.current.get(spec.name)
        return serving.version if serving is not None else None
    try:
        return (await models.resolve(ref)).version
    except ModelgateError as exc:
        if STATUS_BY_CODE.get(exc.code) == 503:
            return None
        raise
