"""Which Content-Types are read as JSON (gateway/http/payload.py)."""

from __future__ import annotations

import pytest

from gateway.http.media import is_json_media_type


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "  application/json  ;charset=UTF-8",
        "application/vnd.api+json",
        "application/problem+json; charset=utf-8",
    ],
)
def test_json_media_types_are_json(content_type: str) -> None:
    assert is_json_media_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "",
        "text/plain",
        "text/json",
        "text/csv",
        "application/x-ndjson",
        "application/jsonl",
        "application/json-seq",
        "multipart/form-data; boundary=application/json",
        "application/x-www-form-urlencoded",
    ],
)
def test_other_media_types_are_not_json(content_type: str) -> None:
    assert not is_json_media_type(content_type)
