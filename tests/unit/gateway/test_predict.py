"""Request shapes, row limits and cache policy (gateway/dataplane/plane.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gateway.dataplane.plane import check_row_count, uses_cache
from gateway.http.errors import TooManyRows, UnknownField
from gateway.protocols.legacy import legacy_rows
from gateway.protocols.v1 import v1_request
from kernel.errors import InvalidInput

ROWS = [[1.0, 2.0]]

# -- v1_request ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], [[1.0]], "instances", 3])
def test_v1_body_that_is_not_an_object_is_refused(body: Any) -> None:
    with pytest.raises(InvalidInput):
        v1_request(body)


def test_v1_instances_are_split_out() -> None:
    assert v1_request({"instances": ROWS}) == ("instances", ROWS, None)


def test_v1_records_are_split_out() -> None:
    records = [{"a": 1.0}]
    assert v1_request({"records": records}) == ("records", records, None)


def test_v1_unknown_fields_are_refused_and_named() -> None:
    with pytest.raises(UnknownField) as caught:
        v1_request({"instances": ROWS, "features": ROWS, "zeta": 1})
    assert caught.value.message == "unknown field(s): features, zeta"


def test_v1_unknown_field_names_are_cut_short() -> None:
    with pytest.raises(UnknownField) as caught:
        v1_request({"instances": ROWS, "y" * 500: 1})
    assert "y" * 64 in caught.value.message
    assert "y" * 65 not in caught.value.message


def test_v1_both_instances_and_records_are_refused() -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        v1_request({"instances": ROWS, "records": [{"a": 1.0}]})


@pytest.mark.parametrize("body", [{}, {"version": 3}])
def test_v1_neither_instances_nor_records_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        v1_request(body)


@pytest.mark.parametrize(("raw", "version"), [(3, 3), ("3", 3), ("12", 12), (None, None)])
def test_v1_version_is_parsed(raw: Any, version: int | None) -> None:
    assert v1_request({"instances": ROWS, "version": raw})[2] == version


@pytest.mark.parametrize("raw", [0, -1, "0", "-1", True, False, "x", "", 3.5, "3.0", [3]])
def test_v1_bad_version_is_refused(raw: Any) -> None:
    with pytest.raises(InvalidInput, match="'version' must be a positive integer"):
        v1_request({"instances": ROWS, "version": raw})


def test_v1_version_of_non_ascii_digits_is_refused_not_a_crash() -> None:
    # "³".isdigit() is True, yet int("³") raises ValueError (an HTTP 500).
    with pytest.raises(InvalidInput, match="'version' must be a positive integer"):
        v1_request({"instances": ROWS, "version": "³"})


# -- legacy_rows -----------------------------------------------------------------------------


def test_legacy_rows_are_the_features() -> None:
    assert legacy_rows({"features": ROWS}) == ROWS


@pytest.mark.parametrize("body", [None, ROWS, {"instances": ROWS}, "features"])
def test_legacy_body_without_features_is_refused(body: Any) -> None:
    with pytest.raises(InvalidInput, match="'features'"):
        legacy_rows(body)


# -- check_row_count -------------------------------------------------------------------------


def test_row_count_at_the_limit_passes() -> None:
    check_row_count([[0.0]] * 3, limit=3, model="iris")


def test_row_count_over_the_limit_points_to_jobs() -> None:
    with pytest.raises(TooManyRows) as caught:
        check_row_count([[0.0]] * 4, limit=3, model="iris")
    assert "/v1/models/iris/jobs" in caught.value.message
    assert "4 rows" in caught.value.message
    assert "3" in caught.value.message


def test_row_count_ignores_what_is_not_a_list() -> None:
    # Not a list is the signature's to refuse, with its own message.
    check_row_count({"a": 1}, limit=0, model="iris")


@pytest.mark.parametrize(
    ("mode", "worth_caching", "expected"),
    [
        ("on", False, True),
        ("on", True, True),
        ("sklearn", True, True),
        ("sklearn", False, False),
        ("off", True, False),
        ("off", False, False),
    ],
)
def test_cache_use_follows_the_mode_and_runtime(
    mode: str, worth_caching: bool, expected: bool
) -> None:
    runtime = SimpleNamespace(worth_caching=worth_caching)
    assert uses_cache(mode, runtime) is expected  # type: ignore[arg-type]
