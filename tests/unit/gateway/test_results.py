"""Job results rendered for download (gateway/jobdata/results.py): CSV's formula neutralising."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from gateway.jobdata.results import csv_lines, ndjson_lines, neutralised
from jobs.record import JobRecord

#: Text cells a spreadsheet runs as formulas (OWASP, "CSV Injection"), and what they become.
FORMULAS = [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("+A1", "'+A1"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("=", "'="),
    ("-", "'-"),
    ("+", "'+"),
    # Not numbers by the rule (a sign, then a JSON number), so neutralised too.
    ("-.5", "'-.5"),
    ("+1_0", "'+1_0"),
    ("-1e", "'-1e"),
    ("--1", "'--1"),
    ("-inf", "'-inf"),
]
#: Cells left as they are: numbers, text that is a number, text that starts otherwise.
LEFT_ALONE: list[Any] = [
    *("-5", "+1", "-0", "-1.5e3", "+2E-3", "-0.25"),
    *("plain", "", " =1", "'=1", "a=b", "1+1", "r0"),
    *(-5, -0.5, 3, 1.5, float("-inf"), True, False, None),
]


@pytest.mark.parametrize(("cell", "written"), FORMULAS)
def test_a_formula_leading_text_cell_gets_a_quote(cell: str, written: str) -> None:
    assert neutralised(cell) == written


@pytest.mark.parametrize("cell", LEFT_ALONE, ids=repr)
def test_numbers_and_other_text_are_left_alone(cell: Any) -> None:
    assert neutralised(cell) is cell


def record(id_columns: list[str], classes: list[Any] | None = None) -> JobRecord:
    return JobRecord(
        "j1", "owner", "m", 1, rows=2, chunks=1, id_columns=id_columns, classes=classes
    )


def download(job: JobRecord, chunks: Any, **kwargs: Any) -> list[list[str]]:
    text = b"".join(csv_lines(job, chunks, **kwargs)).decode()
    return list(csv.reader(io.StringIO(text, newline="")))


#: Two chunks of results, (ids, output) as the job store gives them: ids that are formulas,
#: numbers as text and as numbers, a plain one; text labels and numbers as predictions.
CHUNKS: list[tuple[list[Any] | None, dict[str, Any]]] = [
    (
        [["=cmd|' /C calc'!A0"], ["@SUM(1+1)"], ["\t=1"]],
        {"predictions": ["=HYPERLINK(1)", "-1", 2]},
    ),
    ([["-5"], ["+1"], [-7], ["r0"]], {"predictions": ["@x", "ok", -3.5, "+2"]}),
]


def test_csv_results_neutralise_the_header_ids_and_predictions() -> None:
    assert download(record(["=rid"]), CHUNKS) == [
        ["'=rid", "prediction"],
        ["'=cmd|' /C calc'!A0", "'=HYPERLINK(1)"],
        ["'@SUM(1+1)", "-1"],
        ["'\t=1", "2"],
        ["-5", "'@x"],
        ["+1", "ok"],
        ["-7", "-3.5"],
        ["r0", "+2"],
    ]


def test_csv_results_as_they_are_without_neutralising() -> None:
    rows = download(record(["=rid"]), CHUNKS, neutralise=False)
    assert rows[0] == ["=rid", "prediction"]
    assert rows[1:4] == [
        ["=cmd|' /C calc'!A0", "=HYPERLINK(1)"],
        ["@SUM(1+1)", "-1"],
        ["\t=1", "2"],
    ]


def test_csv_results_probabilities_are_numbers_and_stay_so() -> None:
    chunks = [([["-a"]], {"predictions": [0], "probabilities": [[-0.0, 1.0]]})]
    assert download(record(["id"], classes=["-", "@"]), chunks) == [
        ["id", "prediction", "proba_-", "proba_@"],
        ["'-a", "0", "-0.0", "1.0"],
    ]


@pytest.mark.parametrize("neutralise", [True, False])
def test_a_carriage_return_in_a_cell_is_quoted_so_the_row_stays_whole(neutralise: bool) -> None:
    # Bare, a CR ends the row in a reader or a spreadsheet, and "=1" would start the next one.
    chunks = [([["a\r=1"], ["\r=2"], ["b"]], {"predictions": ["x\r\ny", 1, 2]})]
    text = b"".join(csv_lines(record(["id"]), chunks, neutralise=neutralise)).decode()
    second = '"\'\r=2"' if neutralise else '"\r=2"'
    assert text == f'id,prediction\n"a\r=1","x\r\ny"\n{second},1\nb,2\n'


def test_ndjson_results_are_not_neutralised() -> None:
    lines = b"".join(ndjson_lines(record(["rid"]), CHUNKS[:1])).decode().splitlines()
    assert lines[0] == '{"rid":"=cmd|\' /C calc\'!A0","prediction":"=HYPERLINK(1)"}'
