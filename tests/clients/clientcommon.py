"""Shared by the scripts of the outside-client venv (run there, never in the project's venv).

Each script takes one JSON payload in argv[1]:

    {"url": "http://127.0.0.1:PORT", "grpc": "127.0.0.1:PORT", "key": "...", "model": "iris",
     "version": "1", "rows": [[...], ...], "names": ["feature", ...]}

makes every call it knows with the real client library, each call recorded on its own (so that
one failing call never hides the others), and prints one JSON line: {"calls": {name: outcome}},
an outcome being {"ok": true, "value": ...} or {"ok": false, "error": "Type", "message": "...",
"status": "..."} with, where the script knows it, "sent": what the client put on the wire.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np


def payload() -> dict[str, Any]:
    return json.loads(sys.argv[1])


def plain(value: Any) -> Any:
    """`value` as JSON: arrays as lists, bytes as text (or their repr), numpy scalars as Python."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return repr(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def tensor(array: Any, datatype: str | None = None) -> dict[str, Any]:
    """An output as the test compares it: datatype, shape, numpy dtype and values."""
    if array is None:
        return {"datatype": datatype, "shape": None, "dtype": None, "data": None}
    array = np.asarray(array)
    return {
        "datatype": datatype,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "data": plain(array),
    }


def described(sent: Any) -> Any:
    """A request body for the report: its JSON part parsed, and the size of the binary rest."""
    if isinstance(sent, tuple) and len(sent) == 2 and isinstance(sent[0], bytes | str):
        body, json_size = sent
        body = body.encode() if isinstance(body, str) else body
        head = body if json_size is None else body[: int(json_size)]
        try:
            parsed: Any = json.loads(head)
        except ValueError:
            parsed = repr(head[:400])
        return {
            "json": parsed,
            "Inference-Header-Content-Length": json_size,
            "binary_bytes": len(body) - len(head),
        }
    return plain(sent)


class Recorder:
    """Runs calls one by one and keeps each outcome; `describe_error` adds client details."""

    def __init__(self, describe_error: Callable[[BaseException], dict[str, Any]]) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self._describe = describe_error

    def call(self, name: str, fn: Callable[[], Any], sent: Callable[[], Any] | None = None) -> Any:
        try:
            value = fn()
        except Exception as error:  # every client error, recorded for the test to judge
            outcome: dict[str, Any] = {
                "ok": False,
                "error": type(error).__name__,
                "message": str(error)[:2000],
                "traceback": traceback.format_exc(limit=6)[-3000:],
            }
            try:
                outcome.update(self._describe(error))
            except Exception as inner:  # a broken description must not lose the outcome
                outcome["describe_error"] = repr(inner)
            if sent is not None:
                try:
                    outcome["sent"] = described(sent())
                except Exception as inner:
                    outcome["sent"] = f"unavailable: {inner!r}"
            self.calls[name] = outcome
            return None
        self.calls[name] = {"ok": True, "value": plain(value)}
        return value

    def emit(self, **extra: Any) -> None:
        print(json.dumps({"calls": self.calls, **extra}, default=repr))
