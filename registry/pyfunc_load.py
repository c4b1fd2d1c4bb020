"""Load a `python_function` model in the gateway's own environment.

A model's own `requirements.txt` is never installed: a module it needs and that is missing here
is named in the refusal.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kernel.errors import ArtifactRejected
from runtime.pyfunc import PyfuncRuntime

logger = logging.getLogger(__name__)


def load_pyfunc(local: Path, timeout_seconds: float) -> PyfuncRuntime:
    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(str(local))
    except ModuleNotFoundError as exc:
        raise ArtifactRejected(
            f"the pyfunc model needs the module '{exc.name}', which is not installed here "
            "(a model's own requirements.txt is never installed)"
        ) from None
    return PyfuncRuntime(model, timeout_seconds)
