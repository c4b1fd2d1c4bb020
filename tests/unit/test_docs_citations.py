"""The repository cites only files it has: no tracked file names the two notes kept outside it
(the hand-written app's description and the first design notes), whose content lives in
docs/legacy-api.md and docs/design.md."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Spelled in two halves, so that this file does not name them itself.
ABSENT = ("SEED" + ".md", "DESIGN" + ".md")


def _tracked() -> list[Path]:
    listing = subprocess.run(
        # Tracked files, and new ones not yet added (not ignored ones).
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / name for name in listing.split("\0") if name]


def test_no_tracked_file_cites_files_outside_the_repository() -> None:
    hits = []
    for path in _tracked():
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except (FileNotFoundError, IsADirectoryError):  # deleted in the work tree, a submodule
            continue
        for number, line in enumerate(text.splitlines(), 1):
            hits += [
                f"{path.relative_to(ROOT)}:{number}: {name}" for name in ABSENT if name in line
            ]
    assert not hits, "cite docs/legacy-api.md or docs/design.md instead:\n" + "\n".join(hits)
