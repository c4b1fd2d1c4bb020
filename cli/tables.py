"""The CLI's listings: left-aligned columns two spaces apart under a header row."""

from __future__ import annotations

from collections.abc import Sequence

import click


def echo_table(rows: Sequence[Sequence[str]]) -> None:
    """Print `rows`, the first one the header; column widths fit the longest value."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
