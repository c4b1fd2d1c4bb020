"""The CLI's one error shape: `error: <code>: <message>` on stderr, exit status 1."""

from __future__ import annotations

from typing import Any

import click


class CliError(click.ClickException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def format_message(self) -> str:
        return f"{self.code}: {self.message}"

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)
