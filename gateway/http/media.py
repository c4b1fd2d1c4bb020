"""The one table of media types the gateway reads; media types compare case-insensitively."""

from __future__ import annotations

CSV = "text/csv"
NDJSON = "application/x-ndjson"
JSON = "application/json"
#: Batch-job upload types (parameters such as charset are ignored) and the format each means.
UPLOAD_FORMATS = {CSV: CSV, NDJSON: NDJSON, "application/jsonl": NDJSON, JSON: JSON}


def essence(content_type: str) -> str:
    """`type/subtype` of a Content-Type, lower-cased, without its parameters."""
    return content_type.split(";", 1)[0].strip().lower()


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
