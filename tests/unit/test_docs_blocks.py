"""The examples of README.md and docs/: every sh and python block is run by the doc test or
says why not, shell is fenced as `sh` (never bash or console), and no example hard-codes the
gateway's port or shows options in brackets that a shell would not take."""

from __future__ import annotations

import re

import pytest

from tests.docblocks import ROOT, Block, all_blocks, page_script, pages, parse
from tests.integration.test_docs_examples import RUNNABLE

BLOCKS, PROBLEMS = all_blocks()
EXAMPLES = [b for b in BLOCKS if b.language in ("sh", "python")]


def test_fences_and_markers_are_well_formed() -> None:
    assert not PROBLEMS, "\n".join(PROBLEMS)


def test_the_docs_have_examples_and_most_run() -> None:
    running = [b for b in EXAMPLES if b.runs]
    assert len(running) > len(EXAMPLES) / 2, "most examples must run against the stack"


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.where)
def test_every_example_runs_or_says_why_not(block: Block) -> None:
    if block.skip is not None:
        assert block.skip.strip(), f"{block.where}: a skip needs its reason"
        return
    path = ROOT / block.page
    assert path in RUNNABLE, f"{block.page} is not run by tests/integration/test_docs_examples.py"
    assert f"{block.where} ({block.language})" in page_script(
        parse(path.read_text(), block.page)[0]
    )


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.where)
def test_examples_use_the_stack_env_not_a_fixed_port(block: Block) -> None:
    assert not re.search(r"(127\.0\.0\.1|localhost):8000\b", block.code), (
        f"{block.where}: use $MODELGATE_GATEWAY_URL (from var/stack.env), not port 8000"
    )


@pytest.mark.parametrize(
    "block", [b for b in EXAMPLES if b.language == "sh"], ids=lambda b: b.where
)
def test_shell_examples_show_no_bracketed_options(block: Block) -> None:
    assert not re.search(r"\[--?\w", block.code), f"{block.where}: write a real command"


def test_readme_and_every_page_are_read() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in pages()}
    assert "README.md" in found and "docs/quickstart.md" in found
    assert {b.page for b in BLOCKS} <= found


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("```bash\nls\n```\n", "fence language 'bash'"),
        ("```console\n$ ls\n```\n", "fence language 'console'"),
        ("```py\nprint(1)\n```\n", "fence language 'py'"),
        ("```\nls\n```\n", "fence language ''"),
        ("<!-- docs-test: skip () -->\n```sh\nls\n```\n", "unknown marker"),
        ("<!-- docs-test: skip -->\n```sh\nls\n```\n", "unknown marker"),
        ("<!-- docs-test: skip (why) -->\n\n```sh\nls\n```\n", "right before a fence"),
        ("<!-- docs-test: skip (why) -->\n```json\n{}\n```\n", "skip marker on a 'json'"),
        ("```sh\nls\n", "never closed"),
        ("- item\n\n    ```sh\n    ls\n    ```\n", "indented fence"),
    ],
)
def test_the_parser_refuses(text: str, problem: str) -> None:
    _, problems = parse(text, "page.md")
    assert any(problem in p for p in problems), problems


def test_the_parser_reads_skips_and_runs_the_rest_in_order() -> None:
    text = (
        "<!-- docs-test: skip (needs Docker) -->\n```sh\ndocker ps\n```\n\n"
        "```sh\nX=1\n```\n\n```python\nprint(2)\n```\n\n```text\nout\n```\n"
    )
    blocks, problems = parse(text, "page.md")
    assert not problems
    assert [(b.line, b.language, b.skip, b.runs) for b in blocks] == [
        (2, "sh", "needs Docker", False),
        (6, "sh", None, True),
        (10, "python", None, True),
        (14, "text", None, False),
    ]
    script = page_script(blocks)
    assert "docker ps" not in script and "out" not in script
    assert script.index("X=1") < script.index("print(2)")
    assert script.startswith("set -euo pipefail\n")
