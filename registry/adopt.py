"""`modelgate adopt`: vouch by hand for a version logged the ordinary MLflow way.

It records the SHA-256 of what the server holds now as the version's digest, trusted as
`adopted` (see `registry.trust`): strict gateways then serve it, and pickle or pyfunc versions
become loadable where their settings allow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kernel.errors import ArtifactRejected
from registry.client import Registry
from registry.digest import DIGEST_TAG, directory_digest
from registry.loader import downloaded
from registry.trust import ADOPTED, REGISTERED, TRUST_TAG, record


@dataclass(frozen=True)
class Adopted:
    digest: str
    #: How the version was trusted before: "none", "first-use", "registered" or "adopted".
    was: str


def adopt(
    registry: Registry, name: str, version: int, force: bool = False, work_dir: Path | None = None
) -> Adopted:
    """Record the artifact's digest as adopted. A version whose artifact no longer matches the
    digest recorded for it is refused unless `force`: adopting would hide that change."""
    tags = dict(registry.version(name, version).tags or {})
    recorded = tags.get(DIGEST_TAG)
    was = tags.get(TRUST_TAG, REGISTERED) if recorded else "none"
    with downloaded(registry, name, version, work_dir) as local:
        digest = directory_digest(local)
    if recorded and recorded != digest and not force:
        raise ArtifactRejected(
            f"model '{name}' version {version} no longer matches the SHA-256 recorded for it "
            f"({was}): its artifact changed since; --force adopts what the server holds now"
        )
    record(registry, name, version, digest, ADOPTED)
    return Adopted(digest=digest, was=was)
