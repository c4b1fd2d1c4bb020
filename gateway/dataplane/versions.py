"""What is in memory: the versions kept besides the served ones, and the gauges of it all.

Each served model holds exactly the version its alias points to (at most
MODELGATE_MAX_SERVED_MODELS of them, never evicted: evicting one would make its next request
wait for a download). Every other version in memory (the one served before a promotion, pinned
versions, other aliases, versions judged for the CLI) lives in one `VersionCache` of
MODELGATE_VERSION_CACHE_SIZE entries, the least recently used dropped first.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

from gateway.metrics import LOADED_MODEL_BYTES, LOADED_VERSIONS
from registry.model import LoadedModel

Key = tuple[str, int]


class VersionCache:
    """Versions besides the served ones, least recently used first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._models: OrderedDict[Key, LoadedModel] = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, key: Key) -> bool:
        return key in self._models

    def get(self, key: Key) -> LoadedModel | None:
        """The version, marked as just used; None when it is not kept."""
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
        return model

    def put(self, model: LoadedModel) -> list[LoadedModel]:
        """Keep `model` (as the most recently used); returns the versions dropped for room."""
        key = (model.name, model.version)
        self._models[key] = model
        self._models.move_to_end(key)
        dropped = []
        while len(self._models) > self.size:
            dropped.append(self._models.popitem(last=False)[1])
        return dropped

    def pop(self, key: Key) -> LoadedModel | None:
        return self._models.pop(key, None)

    def of_model(self, name: str) -> list[LoadedModel]:
        return [model for (n, _), model in self._models.items() if n == name]

    def drop_model(self, name: str) -> list[LoadedModel]:
        dropped = self.of_model(name)
        for model in dropped:
            del self._models[(name, model.version)]
        return dropped


class MemoryGauges:
    """`modelgate_loaded_versions{model}` and `modelgate_loaded_model_bytes{model,version}`,
    with the approximate bytes of each version in memory: its artifact's size on disk."""

    def __init__(self) -> None:
        self.sizes: dict[Key, int] = {}
        self._shown: dict[str, set[int]] = {}

    def publish(self, name: str, loaded: list[LoadedModel]) -> None:
        """Show what of `name` is in memory now, and forget the series of what left it."""
        now = {model.version for model in loaded}
        for version in self._shown.get(name, set()) - now:
            with contextlib.suppress(KeyError):
                LOADED_MODEL_BYTES.remove(name, str(version))
        for model in loaded:
            size = self.sizes.get((name, model.version), 0)
            LOADED_MODEL_BYTES.labels(name, str(model.version)).set(size)
        if now:
            LOADED_VERSIONS.labels(name).set(len(now))
            self._shown[name] = now
        else:
            self._shown.pop(name, None)
            with contextlib.suppress(KeyError):
                LOADED_VERSIONS.remove(name)

    def forget(self, key: Key) -> None:
        self.sizes.pop(key, None)
