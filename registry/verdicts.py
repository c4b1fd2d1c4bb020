"""Load verdicts: whether the gateways can load a model version, recorded in the registry.

A gateway records a verdict after every load attempt that ends in success or a lasting refusal,
as the version tag `modelgate.verdict.<fp>` = `ok` or `refused: <reason>`. `<fp>` is a short
hash of its loader policy (`LoadOptions`, the fields that decide whether a version loads), so
gateways with the same settings share one tag and the verdict is theirs, never the CLI's
environment. Before moving an alias the CLI reads the verdicts; for a version no gateway has
tried, it sets `modelgate.verdict.request` = `1`, and every gateway looks for requested versions
once per refresh, loads them (a bounded, pinned load) and records its verdict. Nothing clears
the request tag; a gateway looks only at the newest requested versions (`REQUESTS_SEEN`).

A verdict stays until its tag is deleted: one recorded under settings no gateway runs any more
still counts (`--force` moves an alias past it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping

from mlflow.exceptions import MlflowException

from kernel.errors import AliasNotFound, ArtifactRejected, RegistryError, RegistryUnavailable
from kernel.loading import LoadOptions
from registry.client import Registry

logger = logging.getLogger(__name__)

VERDICT_PREFIX = "modelgate.verdict."
REQUEST_TAG = VERDICT_PREFIX + "request"
OK = "ok"
REFUSED = "refused: "
#: MLflow limits tag values (5000 characters); a reason is cut well before.
MAX_REASON_CHARS = 500
#: Loader fields that never decide whether a version loads (where it is unpacked, whether a
#: twin answers), left out of the fingerprint.
NOT_JUDGED = frozenset({"work_dir", "use_twin"})
#: Requested versions a gateway looks at per refresh, newest first.
REQUESTS_SEEN = 100
#: How often `wait_for_verdict` reads the tags again.
POLL_SECONDS = 0.5


class VerdictMissing(RegistryError):
    """No gateway recorded a verdict on the version within the wait."""

    code = "verdict_missing"


def fingerprint(options: LoadOptions) -> str:
    """A short hash of the loader fields that decide whether a version loads."""
    judged = sorted(
        (field.name, getattr(options, field.name))
        for field in dataclasses.fields(options)
        if field.name not in NOT_JUDGED
    )
    return hashlib.sha256(repr(judged).encode()).hexdigest()[:12]


def verdict_tag(fp: str) -> str:
    return VERDICT_PREFIX + fp


def refused(reason: str) -> str:
    """The tag value of a refusal."""
    return REFUSED + " ".join(reason.split())[:MAX_REASON_CHARS]


def verdicts_in(tags: Mapping[str, str]) -> dict[str, str]:
    """The verdicts among a version's tags, by fingerprint."""
    return {
        key.removeprefix(VERDICT_PREFIX): value
        for key, value in tags.items()
        if key.startswith(VERDICT_PREFIX) and key != REQUEST_TAG
    }


def refusal(verdicts: Mapping[str, str]) -> str | None:
    """The reason of a refusal among `verdicts` (the first by fingerprint), else None."""
    for _, value in sorted(verdicts.items()):
        if value.startswith(REFUSED.rstrip()):
            return value.removeprefix(REFUSED.rstrip()).strip() or "no reason given"
    return None


def record_verdict(registry: Registry, name: str, version: int, fp: str, verdict: str) -> None:
    """Write one gateway's verdict (`ok` or `refused(reason)`) on the version."""
    registry.set_version_tag(name, version, verdict_tag(fp), verdict)


def read_verdicts(registry: Registry, name: str, version: int) -> dict[str, str]:
    """The verdicts recorded on a version, by fingerprint (empty: no gateway tried it)."""
    return verdicts_in(registry.version(name, version).tags or {})


def request_verdict(registry: Registry, name: str, version: int) -> None:
    """Ask the gateways to try the version and record their verdicts."""
    registry.set_version_tag(name, version, REQUEST_TAG, "1")


def wait_for_verdict(
    registry: Registry, name: str, version: int, timeout_s: float
) -> dict[str, str]:
    """The verdicts once at least one is recorded, or whatever is there (maybe nothing) when
    `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = read_verdicts(registry, name, version)
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def check_loadable(registry: Registry, name: str, version: int, force: bool, wait: float) -> None:
    """Return when the gateways can load the version (or `force`); else raise ArtifactRejected
    with a gateway's reason, or VerdictMissing when no verdict arrives within `wait` seconds.
    A version no gateway tried yet is requested first, then waited for."""
    if force:
        return
    verdicts = read_verdicts(registry, name, version)
    if not verdicts:
        request_verdict(registry, name, version)
        try:
            verdicts = wait_for_verdict(registry, name, version, wait)
        finally:
            # Answered or not, the request is dropped: gateways search only the newest requests,
            # and a stale one would push a later request of this version out of their sight.
            with contextlib.suppress(RegistryError):
                registry.delete_version_tag(name, version, REQUEST_TAG)
    reason = refusal(verdicts)
    if reason is not None:
        raise ArtifactRejected(f"the gateways refuse model '{name}' version {version}: {reason}")
    if not verdicts:
        raise VerdictMissing(
            f"no gateway judged model '{name}' version {version} within {wait:g} s "
            "(gateways look once per MODELGATE_REFRESH_SECONDS; is one running?)"
        )


def requested_versions(
    registry: Registry, fp: str, limit: int = REQUESTS_SEEN
) -> list[tuple[str, int]]:
    """The newest versions the CLI asked about that carry no verdict of `fp` yet."""
    query = f"tags.`{REQUEST_TAG}` = '1'"
    try:
        found = registry.client.search_model_versions(
            query, max_results=limit, order_by=["creation_timestamp DESC"]
        )
    except (MlflowException, OSError) as exc:
        logger.warning("search of requested verdicts failed: %s", type(exc).__name__)
        raise RegistryUnavailable("the model registry did not answer") from exc
    return [(mv.name, int(mv.version)) for mv in found if verdict_tag(fp) not in (mv.tags or {})]


def set_alias_if_loadable(
    registry: Registry, name: str, alias: str, version: int, wait: float | None
) -> bool:
    """Point `alias` at `version` when the alias is not set yet, once the gateways can load the
    version (`check_loadable`; `wait` None skips the check); returns whether it was set."""
    try:
        registry.alias_version(name, alias)
    except AliasNotFound:
        if wait is not None:
            check_loadable(registry, name, version, False, wait)
        registry.set_alias(name, alias, version)
        return True
    return False


def forget_verdicts(registry: Registry, name: str, version: int) -> int:
    """Delete the version's verdicts (after `adopt` changed what it is trusted as, they are
    stale); returns how many were deleted."""
    stale = [
        key
        for key in registry.version(name, version).tags or {}
        if key.startswith(VERDICT_PREFIX) and key != REQUEST_TAG
    ]
    for key in stale:
        registry.delete_version_tag(name, version, key)
    return len(stale)
