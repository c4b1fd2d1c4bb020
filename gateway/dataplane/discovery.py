"""The served set: explicit entries, the models `*@alias` patterns found, and what each one's
state is; the base of ModelManager (gateway/dataplane/models.py), which loads them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.dataplane.failures import REFUSED, LoadFailure, kind_of, next_failure
from gateway.dataplane.served import Scan, scan
from gateway.dataplane.specs import ModelSpec, default_model, explicit_specs, pattern_aliases
from gateway.http.errors import ModelNotReady, ModelUnavailable
from gateway.metrics import MODEL_LOAD_FAILURES, MODELS_OVER_CAP
from kernel.errors import ModelNotFound, RegistryError
from registry.client import Registry
from registry.model import LoadedModel

logger = logging.getLogger(__name__)


class Discovery:
    """Which models are served, and what is known of each; every method runs on the loop."""

    def __init__(self, specs: list[ModelSpec], max_served: int, default: str | None) -> None:
        self.explicit = {spec.name: spec for spec in explicit_specs(specs)}
        self.patterns = pattern_aliases(specs)
        self.max_served = max_served
        #: The served models now: the explicit entries, then those patterns found.
        self.specs: dict[str, ModelSpec] = dict(self.explicit)
        self.current: dict[str, LoadedModel] = {}
        self.failures: dict[str, LoadFailure] = {}
        self.last_error: dict[str, str | None] = {name: None for name in self.specs}
        #: Found by a pattern but past the cap, in name order.
        self.over_cap: tuple[str, ...] = ()
        #: With patterns, nothing is known before the first scan answers.
        self.listed = not self.patterns
        self.scan_error: str | None = None
        self._default = default_model(specs, default)

    async def discover(self, registry: Registry) -> Scan | None:
        """Scan the registry: serve what patterns newly find, drop what they no longer find.
        None (and nothing changed) when the registry does not answer."""
        try:
            models = await asyncio.to_thread(registry.registered_models)
        except RegistryError as exc:
            if self.scan_error != exc.message:
                logger.warning("model discovery failed, serving what it found before: %s", exc)
            self.scan_error = exc.message
            return None
        found = scan(models, self.explicit, self.patterns, self.specs.keys(), self.max_served)
        for name in [n for n in self.specs if n not in self.explicit and n not in found.served]:
            logger.info("no longer serving %s: it lost the alias or is deleted", name)
            del self.specs[name]
            self.failures.pop(name, None)
            self.last_error.pop(name, None)
            self._forget_model(name)
        for name, spec in found.served.items():
            if name not in self.specs:
                logger.info("found %s@%s", name, spec.alias, extra={"model": name})
                self.last_error[name] = None
            self.specs[name] = spec
        fresh = set(found.over_cap) - set(self.over_cap)
        if fresh:
            logger.warning(
                "not serving %d models past MODELGATE_MAX_SERVED_MODELS=%d: %s",
                len(fresh),
                self.max_served,
                ", ".join(sorted(fresh)[:10]),
            )
        self.over_cap = found.over_cap
        MODELS_OVER_CAP.set(len(found.over_cap))
        self.scan_error = None
        self.listed = True
        return found

    def _settled(self, name: str) -> None:
        self.failures.pop(name, None)
        self.last_error[name] = None
        MODEL_LOAD_FAILURES.labels(name).set(0)

    def _failed(self, spec: ModelSpec, version: int | None, exc: RegistryError) -> None:
        name = spec.name
        if self.last_error.get(name) != exc.message:
            logger.warning(
                "keeping %s version %s: %s",
                name,
                getattr(self.current.get(name), "version", None),
                exc.message,
                extra={"model": name, "error_code": exc.code},
            )
        self.last_error[name] = exc.message
        failure = LoadFailure(version, kind_of(exc), exc.code, exc.message)
        self.failures[name] = next_failure(self.failures.get(name), failure)
        MODEL_LOAD_FAILURES.labels(name).set(1 if self.failures[name].kind == REFUSED else 0)

    def _forget_model(self, name: str) -> None:
        """Drop what is in memory of a model no longer served (ModelManager does)."""
        self.current.pop(name, None)

    @property
    def ready(self) -> bool:
        """True once every served model is loaded or cannot load for now: refused for a lasting
        reason, or missing from the registry (the default model too) while another serves."""
        if not self.listed:
            return False
        for name in self.specs:
            if name in self.current:
                continue
            failure = self.failures.get(name)
            if failure is None or not failure.settled:
                return False
            if failure.kind != REFUSED and not self.current:
                return False
        # A default model no pattern found yet counts as missing (`make up` before training).
        return bool(self.current) or self._default is None or self._default in self.specs

    def report(self) -> dict[str, Any]:
        """What /readyz says of the models: each served one, the failed versions with their
        reasons, and what the patterns found."""
        models = {
            name: {
                "alias": spec.alias,
                "source": "explicit" if name in self.explicit else "pattern",
                "state": self.state_of(name),
                "version": getattr(self.current.get(name), "version", None),
                "loaded": name in self.current,
                "last_error": self.last_error.get(name),
            }
            for name, spec in self.specs.items()
        }
        failed = [
            failure.describe(name, self.specs[name].alias)
            for name, failure in sorted(self.failures.items())
            if failure.settled and name in self.specs
        ]
        report: dict[str, Any] = {
            "models": models,
            "failed": failed,
            "default_model": self._default,
        }
        if self.patterns:
            report["discovery"] = {
                "patterns": [f"*@{alias}" for alias in self.patterns],
                "listed": self.listed,
                "error": self.scan_error,
                "max_served_models": self.max_served,
                "over_cap": list(self.over_cap),
            }
        return report

    def state_of(self, name: str) -> str:
        """`serving`, `refused` (lasting: answers 503 model_unavailable), `missing` (no such
        model or alias in the registry yet) or `loading`."""
        if name in self.current:
            return "serving"
        failure = self.failures.get(name)
        if failure is not None and failure.settled:
            return failure.kind
        return "loading"

    @property
    def default_name(self) -> str:
        """The model of the legacy routes (MODELGATE_DEFAULT_MODEL, else the first explicit
        entry); ModelNotFound when MODELGATE_MODELS holds only patterns and no default is set."""
        if self._default is None:
            raise ModelNotFound(
                "no default model: MODELGATE_MODELS has only patterns; set "
                "MODELGATE_DEFAULT_MODEL to use /predict, /health and /model-info"
            )
        return self._default

    def spec_of(self, ref: str) -> ModelSpec:
        """The served spec of `name` or `name@alias`; else ModelNotFound (ModelNotReady before
        the first scan, ModelUnavailable past the cap)."""
        name = ref.partition("@")[0]
        spec = self.specs.get(name)
        if spec is not None:
            return spec
        if name in self.over_cap:
            raise ModelUnavailable(
                f"model '{name}' is not served: this gateway serves at most {self.max_served} "
                "models (MODELGATE_MAX_SERVED_MODELS)"
            )
        if not self.listed:
            raise ModelNotReady("the gateway has not listed the registry's models yet")
        if name == self._default:
            raise ModelNotReady(f"the default model '{name}' has no served alias yet")
        raise ModelNotFound(f"model '{name[:64]}' is not served here")

    def _current_of(self, name: str) -> LoadedModel:
        model = self.current.get(name)
        if model is None:
            failure = self.failures.get(name)
            if failure is not None and failure.kind == REFUSED:
                raise ModelUnavailable(failure.reason)
            raise ModelNotReady(f"model '{name}' is not loaded yet")
        return model
