"""MkDocs hook: the settings tables of docs/settings.md, generated when the site is built.

The tables come from the settings classes' source, read with `ast` (nothing is imported, so the
build needs none of the services' packages): each field's name, type, default and the
docstring right under it. docs/settings.md holds the line `<!-- settings-tables -->`, which
`on_page_markdown` replaces. Wired in mkdocs.yml (`hooks:`); tests/unit/test_docs_settings.py
checks that every field of every class is on the page with its docstring.
"""

from __future__ import annotations

import ast
import inspect
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "<!-- settings-tables -->"
PAGE = "settings.md"
ENV_PREFIX = "MODELGATE_"


@dataclass(frozen=True)
class Section:
    """One settings class and who reads it."""

    source: str
    cls: str
    title: str
    readers: str


SECTIONS = (
    Section(
        "kernel/settings.py",
        "RegistrySettings",
        "Registry (shared by every process)",
        "The CLI, the gateway and the worker; the base of `SharedSettings`.",
    ),
    Section(
        "kernel/settings.py",
        "SharedSettings",
        "Shared by the gateway and the worker",
        "Both services read these (and the registry settings above) from one class, so they "
        "always agree; the CLI's `keys` commands read the Redis ones.",
    ),
    Section("gateway/settings.py", "GatewaySettings", "Gateway", "`python -m gateway` only."),
    Section("worker/settings.py", "WorkerSettings", "Worker", "`python -m worker` only."),
    Section(
        "registry/server.py",
        "MlflowServerSettings",
        "MLflow server",
        "`python -m registry.server` only; its clients read `MODELGATE_MLFLOW_TRACKING_URI`.",
    ),
)


@dataclass(frozen=True)
class Setting:
    """One field of a settings class, as the page shows it."""

    name: str
    type: str
    default: str
    doc: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _value(node: ast.expr) -> Any:
    """A constant expression's value (`24 * 3600`); anything else raises ValueError."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_value(node.left), _value(node.right))
    raise ValueError(ast.unparse(node))


def shown_default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _default_and_bounds(node: ast.expr | None) -> tuple[str, str]:
    if node is None:
        return "required", ""
    keywords: dict[str, ast.expr] = {}
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("Field", "pydantic.Field"):
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        node = keywords.get("default", node.args[0] if node.args else None)
        if node is None:
            return "required", ""
    bounds = ", ".join(
        f"{symbol} {_value(keywords[k])}" for k, symbol in _BOUNDS.items() if k in keywords
    )
    try:
        return shown_default(_value(node)), bounds
    except ValueError:
        return f"`{ast.unparse(node)}`", bounds


def _type(annotation: ast.expr) -> str:
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Literal":
        options = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else []
        return "one of " + ", ".join(f"`{_value(o)}`" for o in options)
    return f"`{ast.unparse(annotation)}`"


def read_settings(source: Path, cls: str) -> list[Setting]:
    """The fields declared in class `cls` of `source` (not inherited ones), in order."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    found = []
    for statement, following in zip(body, [*body[1:], None], strict=True):
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        name = statement.target.id
        if name == "model_config" or ast.unparse(statement.annotation).startswith("ClassVar"):
            continue
        doc = ""
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            doc = " ".join(inspect.cleandoc(str(following.value.value)).split())
        default, bounds = _default_and_bounds(statement.value)
        kind = _type(statement.annotation) + (f" ({bounds})" if bounds else "")
        found.append(Setting(name, kind, default, doc))
    return found


def cell(text: str) -> str:
    """`text` for a table cell: its pipes escaped, but not those in code spans (Python-Markdown's
    tables read those as text already, and would show the backslash)."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def tables(root: Path) -> str:
    """The markdown of every section: a heading, who reads it, one table."""
    parts = []
    for section in SECTIONS:
        rows = [
            f"| `{s.env}` | {cell(s.type)} | {cell(s.default)} | {cell(s.doc)} |"
            for s in read_settings(root / section.source, section.cls)
        ]
        parts.append(
            f"## {section.title}\n\n{section.readers} Class `{section.cls}` in "
            f"`{section.source}`.\n\n| variable | type | default | description |\n"
            "| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
        )
    return "\n".join(parts)


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put the generated tables in place of the marker of docs/settings.md."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"docs/{PAGE} has lost its {MARKER} line")
    return markdown.replace(MARKER, tables(_root(config)))


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """`mkdocs serve` rebuilds when a settings class changes."""
    for source in sorted({section.source for section in SECTIONS}):
        server.watch(str(_root(config) / source))
    return server
