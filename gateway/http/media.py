"""The one table of media types the gateway reads; media types compare case-insensitively.

A Content-Type's parameters are read as RFC 9110 (section 5.6.6) writes them: `;`-separated
`name=value` pairs, names compared case-insensitively, a value a token or a quoted string
(`charset="utf-8"` is `charset=utf-8`), and an empty parameter (`application/json;`) is
nothing. Whitespace around `=`, which the RFC does not allow, is tolerated.
"""

from __future__ import annotations

import re

CSV = "text/csv"
NDJSON = "application/x-ndjson"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
#: Batch-job upload types (parameters such as charset are ignored) and the format each means.
UPLOAD_FORMATS = {CSV: CSV, NDJSON: NDJSON, "application/jsonl": NDJSON, JSON: JSON}
#: MLflow's scoring bodies (`/invocations`) and the format each means.
SCORING_FORMATS = {JSON: "json", CSV: "csv", PARQUET: "parquet"}

#: One parameter after its `;`: a token name, `=`, a token or a quoted string (RFC 9110).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAMETER = re.compile(rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*({_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*(?:;|$)')
_EMPTY = re.compile(r"[ \t]*(?:;|$)")
_ESCAPE = re.compile(r"\\(.)")


def essence(content_type: str) -> str:
    """`type/subtype` of a Content-Type, lower-cased, without its parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def parameters(content_type: str) -> dict[str, str] | None:
    """The parameters of a Content-Type by lower-cased name, unquoted; None when one is
    malformed or given twice."""
    found: dict[str, str] = {}
    _, semicolon, rest = content_type.partition(";")
    position, end = 0, len(rest)
    while semicolon and position < end:
        empty = _EMPTY.match(rest, position)
        if empty is not None and empty.end() > position:
            position = empty.end()
            continue
        match = _PARAMETER.match(rest, position)
        if match is None:
            return None
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        if name in found:
            return None
        found[name] = value
        position = match.end()
    return found


def is_json_media_type(content_type: str) -> bool:
    media = essence(content_type)
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def result_format(accept: str) -> str:
    """The format (CSV, NDJSON or JSON, the default) job results are sent in for an Accept."""
    wanted = accept.lower()
    if CSV in wanted:
        return CSV
    if "ndjson" in wanted or "jsonl" in wanted:
        return NDJSON
    return JSON


def upload_format(content_type: str) -> str | None:
    """The format (CSV, NDJSON or JSON) of a Content-Type, or None when it is not an upload type."""
    return UPLOAD_FORMATS.get(essence(content_type))
