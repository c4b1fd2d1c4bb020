"""SHA-256 of a model artifact directory, recorded at registration and checked before loading."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

#: Model version tag that holds the digest recorded at registration.
DIGEST_TAG = "modelgate.sha256"


def directory_digest(root: Path) -> str:
    """Digest over every file's relative path and content, independent of listing order."""
    outer = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        outer.update(path.relative_to(root).as_posix().encode())
        outer.update(b"\0")
        outer.update(inner.hexdigest().encode())
        outer.update(b"\n")
    return outer.hexdigest()


def digest_matches(root: Path, expected: str) -> bool:
    """True when the directory's digest equals the recorded one (constant-time comparison)."""
    return hmac.compare_digest(directory_digest(root), expected)
