"""Whose word an artifact's SHA-256 rests on, and trust on first use.

A version's digest (`modelgate.sha256`) is recorded in one of three ways, named by the
`modelgate.trust` tag:
- `registered`: by Modelgate when it registered the version (`train`, `import`; versions
  registered before this tag existed have a digest and no tag, and count the same);
- `adopted`: by hand, `modelgate adopt NAME VERSION`, which vouches for what the server holds;
- `first-use`: by the first gateway or worker that loaded a version logged the ordinary MLflow
  way (`MODELGATE_TRUST=first-use`, the default).
Every load after that verifies against the digest. `MODELGATE_TRUST=strict` serves only
registered and adopted versions. Formats that run code when loaded (pickle, pyfunc) are never
trusted on first use: they need their own setting and a registered or adopted digest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from kernel.errors import ArtifactRejected
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.digest import DIGEST_TAG, digest_matches, directory_digest

logger = logging.getLogger(__name__)

TRUST_TAG = "modelgate.trust"
REGISTERED = "registered"
ADOPTED = "adopted"
FIRST_USE = "first-use"


def vouched(tags: Mapping[str, str]) -> bool:
    """True when the digest was recorded by Modelgate's registration or by `adopt`."""
    return bool(tags.get(DIGEST_TAG)) and tags.get(TRUST_TAG, REGISTERED) != FIRST_USE


def trust_mark(tags: Mapping[str, str]) -> tuple[str | None, str | None]:
    """What a version is trusted as (its digest and how it was recorded): `adopt` changes it."""
    return tags.get(DIGEST_TAG), tags.get(TRUST_TAG)


def settle_digest(
    registry: Registry,
    name: str,
    version: int,
    local: Path,
    tags: Mapping[str, str],
    options: LoadOptions,
) -> str:
    """Check the downloaded artifact against its recorded digest, recording one first when the
    version has none and the trust mode allows it; returns the digest. Raises ArtifactRejected."""
    expected = tags.get(DIGEST_TAG)
    if expected:
        if options.trust == "strict" and not vouched(tags):
            raise ArtifactRejected(
                f"model '{name}' version {version} was trusted on first use, which "
                f"MODELGATE_TRUST=strict does not accept: vouch for it with "
                f"`modelgate adopt {name} {version}`"
            )
        if not digest_matches(local, expected):
            logger.error("artifact digest mismatch for %s version %s: refused", name, version)
            raise ArtifactRejected(
                f"model '{name}' version {version} does not match its recorded SHA-256"
            )
        return expected
    if options.trust == "strict":
        raise ArtifactRejected(
            f"model '{name}' version {version} has no recorded digest, and MODELGATE_TRUST=strict "
            f"serves only registered or adopted versions: `modelgate adopt {name} {version}`"
        )
    digest = directory_digest(local)
    # Two first loads at once (two gateways) compute the same digest of the same artifact.
    # The trust tag first: a digest seen without it would count as registered (vouched).
    registry.set_version_tag(name, version, TRUST_TAG, FIRST_USE)
    registry.set_version_tag(name, version, DIGEST_TAG, digest)
    logger.warning(
        "model %s version %s had no recorded digest: trusted on first use, recorded %s",
        name,
        version,
        digest[:12],
        extra={"model": name, "model_version": version},
    )
    return digest


def record(registry: Registry, name: str, version: int, digest: str, how: str) -> None:
    """Record a digest and whose word it rests on (`registered` or `adopted`)."""
    registry.set_version_tag(name, version, TRUST_TAG, how)
    registry.set_version_tag(name, version, DIGEST_TAG, digest)
