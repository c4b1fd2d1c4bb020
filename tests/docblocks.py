"""The fenced code blocks of README.md and docs/, as the doc tests see them.

Every ```sh and ```python block is an example a user types after `make up`, and the doc test
(tests/integration/test_docs_examples.py) runs it, unless an HTML comment on the line right
before its fence says why not:

    <!-- docs-test: skip (needs Docker) -->

Other fences name a language that is not run (text, json, yaml): output, configuration. Shell
commands are fenced as `sh` and Python as `python`, never bash, console or py, so that no
example escapes the test; an unnamed fence is refused too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Fences whose blocks the doc test runs.
RUN_LANGUAGES = frozenset({"sh", "python"})
#: Fences shown, never run: output and configuration.
SHOWN_LANGUAGES = frozenset({"text", "json", "yaml"})

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")
_SKIP = re.compile(r"^skip \((?P<reason>.*\S.*)\)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language, its code and why it is not run."""

    page: str
    line: int
    language: str
    code: str
    skip: str | None = None

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.skip is None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages(root: Path = ROOT) -> list[Path]:
    """The documentation: README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def parse(text: str, page: str) -> tuple[list[Block], list[str]]:
    """The blocks of one page, and what is wrong with its fences and markers."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    marker: tuple[int, str | None] | None = None  # (line, skip reason) of a pending marker
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if found := _MARKER.match(line):
            body = found["body"].strip()
            skip = _SKIP.match(body)
            if skip is None:
                problems.append(f"{page}:{number}: unknown marker {body!r}: use 'skip (reason)'")
            marker = (number, skip["reason"].strip() if skip else None)
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if marker is not None:
                problems.append(f"{page}:{marker[0]}: a marker must be right before a fence")
                marker = None
            continue
        start, language = number, fence["info"].strip().split(" ")[0]
        if fence["indent"]:
            problems.append(f"{page}:{start}: indented fence; start fences at the margin")
        body_lines: list[str] = []
        while number < len(lines) and not lines[number].strip().startswith(fence["fence"]):
            body_lines.append(lines[number])
            number += 1
        if number == len(lines):
            problems.append(f"{page}:{start}: fence never closed")
        number += 1
        if language not in RUN_LANGUAGES | SHOWN_LANGUAGES:
            known = ", ".join(sorted(RUN_LANGUAGES | SHOWN_LANGUAGES))
            problems.append(f"{page}:{start}: fence language {language!r}; use one of {known}")
        reason = marker[1] if marker is not None else None
        if marker is not None and language not in RUN_LANGUAGES:
            problems.append(f"{page}:{marker[0]}: a skip marker on a {language!r} block")
        blocks.append(Block(page, start, language, "\n".join(body_lines) + "\n", reason))
        marker = None
    if marker is not None:
        problems.append(f"{page}:{marker[0]}: a marker must be right before a fence")
    return blocks, problems


def page_blocks(path: Path, root: Path = ROOT) -> tuple[list[Block], list[str]]:
    return parse(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())


def all_blocks(root: Path = ROOT) -> tuple[list[Block], list[str]]:
    """Every block of the documentation, and every problem found."""
    blocks: list[Block] = []
    problems: list[str] = []
    for path in pages(root):
        found, wrong = page_blocks(path, root)
        blocks += found
        problems += wrong
    return blocks, problems


#: Echoed before each block by the page script, so that a failure names the block.
BLOCK_MARK = "::docs-block"
_PY_END = "MODELGATE_DOCS_PYTHON_EOF"


def page_script(blocks: list[Block]) -> str:
    """One bash script running a page's blocks in order: sh as typed, python through the
    venv's interpreter; shell variables of a block are seen by the next one."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        if not block.runs:
            continue
        # On a line of its own, also after output without a final newline (curl's).
        parts.append(
            f'echo; echo "{BLOCK_MARK} {block.where} ({block.language}) at ${{SECONDS}} s"'
        )
        if block.language == "sh":
            parts.append(block.code)
        else:
            parts.append(f"python - <<'{_PY_END}'\n{block.code}{_PY_END}")
    parts.append(f'echo; echo "{BLOCK_MARK} end at ${{SECONDS}} s"')
    return "\n".join(parts) + "\n"


def failed_block(output: str) -> str:
    """The block that was running when a page script stopped (from its last mark)."""
    marks = re.findall(rf"{BLOCK_MARK} (.+)", output)
    return marks[-1].strip() if marks else "before the first block"
