"""Verdicts the CLI asked for: once per refresh, the gateway looks for versions whose
`modelgate.verdict.request` tag is set and that carry no verdict of its loader policy yet,
tries a few of them as bounded pinned loads and records its verdict (registry/verdicts.py).

A version already in memory is `ok` at once; one refused lately is refused again without a
download. A judged version of a served model stays in the version cache (a promotion that
follows then swaps it in without a download); any other is dropped after the verdict.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.dataplane.failures import REFUSED
from kernel.errors import RegistryError
from registry.verdicts import OK, refused

if TYPE_CHECKING:
    from gateway.dataplane.models import ModelManager

logger = logging.getLogger(__name__)

#: Versions loaded for a verdict per refresh round (each is a download and a deserialisation).
MAX_JUDGED_PER_ROUND = 2


async def judge_requested(models: ModelManager) -> None:
    """Record this gateway's verdict on a few requested versions; a registry error waits for
    the next round."""
    try:
        wanted = await models.loader.requested()
    except RegistryError:
        return
    loads = 0
    for name, version in wanted:
        known = _known_verdict(models, name, version)
        if known is not None:
            await models.loader.record(name, version, known)
        elif loads < MAX_JUDGED_PER_ROUND and not models.pinned_failure(name, version):
            # One that failed lately for a passing reason waits a later round; a refused one is
            # loaded again when asked (`adopt` asks once it changed what it is trusted as).
            loads += 1
            await _judge(models, name, version)


def _known_verdict(models: ModelManager, name: str, version: int) -> str | None:
    """The verdict this gateway already knows: loaded, or refused as the served version."""
    if any(m.version == version for m in models.loaded_versions(name)):
        return OK
    failure = models.failures.get(name)
    if failure is not None and failure.kind == REFUSED and failure.version == version:
        return refused(failure.reason)
    return None


async def _judge(models: ModelManager, name: str, version: int) -> None:
    async with models.pinned_loads:
        try:
            model = await models.load_for_verdict(name, version)  # records the verdict
        except RegistryError as exc:
            models.remember_pinned_failure(name, version, exc)
            logger.info("verdict on %s version %s: %s", name, version, exc.message)
            return
    models.keep(model)
    logger.info("verdict on %s version %s: ok", name, version)
