"""The pure helpers of alias history (registry/aliases.py)."""

from __future__ import annotations

import json

import pytest

from registry.aliases import HISTORY_LIMIT, history_tag, parse_history, pushed


@pytest.mark.parametrize("raw", [None, ""])
def test_parse_history_of_nothing_is_empty(raw) -> None:
    assert parse_history(raw) == []


@pytest.mark.parametrize("raw", ["[1, 2", "not json", "{", "[1,]"])
def test_parse_history_of_garbage_json_is_empty(raw: str) -> None:
    assert parse_history(raw) == []


@pytest.mark.parametrize("raw", ["5", "null", "true", "1.5"])
def test_parse_history_of_json_that_is_not_a_list_is_empty(raw: str) -> None:
    # "Anything unreadable counts as empty": a hand-edited tag must not break rollback.
    assert parse_history(raw) == []


def test_parse_history_of_a_json_string_is_empty() -> None:
    assert parse_history('"123"') == []


def test_parse_history_keeps_order_oldest_first() -> None:
    assert parse_history("[3, 1, 2]") == [3, 1, 2]


def test_parse_history_of_mixed_entries_keeps_ints_and_digit_strings() -> None:
    raw = json.dumps([1, "2", "x", None, 3.5, {"v": 4}, [5], "", 6])
    assert parse_history(raw) == [1, 2, 6]


def test_parse_history_ignores_non_ascii_digit_strings() -> None:
    # "²".isdigit() is True but int("²") raises.
    assert parse_history(json.dumps([1, "²", 2])) == [1, 2]


def test_parse_history_does_not_read_booleans_as_versions() -> None:
    assert parse_history("[true, 2, false]") == [2]


def test_pushed_appends_the_newest_last() -> None:
    assert pushed([1, 2], 3) == [1, 2, 3]


def test_pushed_does_not_change_its_argument() -> None:
    history = [1, 2]
    pushed(history, 3)
    assert history == [1, 2]


def test_pushed_keeps_at_most_history_limit_dropping_the_oldest() -> None:
    full = list(range(1, HISTORY_LIMIT + 1))
    result = pushed(full, HISTORY_LIMIT + 1)
    assert len(result) == HISTORY_LIMIT
    assert result[0] == 2
    assert result[-1] == HISTORY_LIMIT + 1


def test_pushed_below_the_limit_drops_nothing() -> None:
    history = list(range(HISTORY_LIMIT - 1))
    assert pushed(history, 999) == history + [999]


def test_history_tag_is_per_alias() -> None:
    assert history_tag("production") != history_tag("staging")
    assert history_tag("staging").endswith("staging")
