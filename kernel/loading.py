"""`LoadOptions`: how every service loads a model version, read once from the shared settings.

The gateway and the worker build it the same way, so a job runs on exactly what the gateway
would serve: the same trust mode, pickle and pyfunc policy, trusted skops types, scratch
directory and runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kernel.settings import SharedSettings

#: Modules whose types a skops artifact may ask to trust: scikit-learn's own tree, numpy dtypes,
#: and each supported flavor's package.
DEFAULT_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "xgboost.", "lightgbm.", "catboost.")
#: Standard-library types trusted by exact name, never by prefix (LightGBM's skops files).
DEFAULT_TRUSTED_TYPES = ("collections.OrderedDict",)


@dataclass(frozen=True)
class LoadOptions:
    """The loader's policy: what may be deserialised, where, and whether twins may answer."""

    allow_pickle: bool = False
    trusted_prefixes: tuple[str, ...] = DEFAULT_TRUSTED_PREFIXES
    trusted_types: tuple[str, ...] = DEFAULT_TRUSTED_TYPES
    work_dir: Path | None = None
    #: Serve a version's verified twin (ONNX) when it has one.
    use_twin: bool = True
    #: "first-use" records the digest of a version that has none; "strict" refuses it.
    trust: str = "first-use"
    allow_pyfunc: bool = False
    pyfunc_timeout_seconds: float = 10.0

    def trusts_type(self, name: str) -> bool:
        """Whether a skops artifact may have `name` (a dotted type name) trusted."""
        return name in self.trusted_types or name.startswith(self.trusted_prefixes)

    @classmethod
    def from_settings(cls, settings: SharedSettings) -> LoadOptions:
        return cls(
            allow_pickle=settings.allow_pickle,
            trusted_prefixes=_split(settings.trusted_type_prefixes),
            trusted_types=_split(settings.trusted_types),
            work_dir=Path(settings.model_dir) if settings.model_dir else None,
            use_twin=settings.runtime == "auto",
            trust=settings.trust,
            allow_pyfunc=settings.allow_pyfunc,
            pyfunc_timeout_seconds=settings.pyfunc_timeout_seconds,
        )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
