"""`LoadOptions`: how every service loads a model version, read once from the shared settings.

The gateway and the worker build it the same way, so a job runs on exactly what the gateway
would serve: the same pickle policy, trusted skops types, scratch directory and runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kernel.settings import SharedSettings

#: Modules whose types a skops artifact may ask to trust (scikit-learn's own tree, numpy dtypes).
DEFAULT_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


@dataclass(frozen=True)
class LoadOptions:
    """The loader's policy: what may be deserialised, where, and whether twins may answer."""

    allow_pickle: bool = False
    trusted_prefixes: tuple[str, ...] = DEFAULT_TRUSTED_PREFIXES
    work_dir: Path | None = None
    #: Serve a version's verified twin (ONNX) when it has one.
    use_twin: bool = True

    @classmethod
    def from_settings(cls, settings: SharedSettings) -> LoadOptions:
        prefixes = tuple(p.strip() for p in settings.trusted_type_prefixes.split(",") if p.strip())
        return cls(
            allow_pickle=settings.allow_pickle,
            trusted_prefixes=prefixes,
            work_dir=Path(settings.model_dir) if settings.model_dir else None,
            use_twin=settings.runtime == "auto",
        )
