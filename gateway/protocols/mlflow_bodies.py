"""The bodies of MLflow's scoring protocol, read into the rows of a `PredictCall`.

MLflow's server (`mlflow models serve`, mlflow/pyfunc/scoring_server) takes JSON with exactly
one of `dataframe_split` (`columns`, `data`, `index`), `dataframe_records`, `instances` or
`inputs` (records, or a dict of columns), plus `params`; `text/csv`; and Parquet. Each is read
here into (kind, rows, params): rows positional in the signature's order, whatever order the
body names its columns in. As MLflow's schema enforcement does, columns the signature lacks
are ignored; every column it names must be there (a missing value is a null, or an empty CSV
cell); rows without column names are taken only by a model whose signature names none (f0,
f1, ...), as MLflow refuses them for a model whose schema names its columns. Values are
checked afterwards by the data plane, with the signature's rules (registry/signature.py;
registry/cells.py for CSV cells). CSV and Parquet are read by `mlflow_tables`. Messages never
echo a value.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

from gateway.http.errors import EmptyBody, UnknownField, UnsupportedMediaType
from gateway.http.media import SCORING_FORMATS, essence, is_json_media_type, parameters
from gateway.http.payload import parse_json
from gateway.protocols.mlflow_tables import column_positions, csv_rows, getter, parquet_rows
from kernel.errors import InvalidInput
from registry.signature import Signature, quote_names

MEDIA_TYPES = "application/json, text/csv or application/vnd.apache.parquet"
#: The JSON fields that hold the rows; exactly one is given.
ROW_FIELDS = ("dataframe_split", "dataframe_records", "instances", "inputs")
FIELDS = frozenset({*ROW_FIELDS, "params"})
ACCEPTED = "'dataframe_split', 'dataframe_records', 'instances', 'inputs' and 'params'"
ONE_OF = "exactly one of 'dataframe_split', 'dataframe_records', 'instances' or 'inputs'"
_SPLIT_KEYS = frozenset({"columns", "data", "index"})


class Body(NamedTuple):
    """A parsed body: the rows' kind ("instances": positional), the rows, and `params`."""

    kind: str
    rows: list[Any]
    params: Any


def body_format(content_type: str | None) -> str:
    """The format ("json", "csv" or "parquet") of a Content-Type. UnsupportedMediaType (415)
    for a missing or another type, a charset other than UTF-8, another parameter (MLflow 1.x's
    `format=pandas-split`) or malformed ones, as MLflow answers them, but for a missing type (to
    which MLflow answers a bare 500) and for what RFC 9110 allows and MLflow refuses: an empty
    parameter (`application/json;`) and a quoted charset (`charset="utf-8"`) are taken."""
    if content_type is None:
        raise UnsupportedMediaType(f"the request has no Content-Type: send {MEDIA_TYPES}")
    media = essence(content_type)
    found = "json" if is_json_media_type(media) else SCORING_FORMATS.get(media)
    if found is None:
        raise UnsupportedMediaType(f"send the body as {MEDIA_TYPES}")
    given = parameters(content_type)
    if given is None:
        raise UnsupportedMediaType("the Content-Type's parameters are malformed (RFC 9110)")
    if any(name != "charset" for name in given):
        raise UnsupportedMediaType("Content-Type takes no parameter but charset")
    if given.get("charset", "utf-8").lower() != "utf-8":
        raise UnsupportedMediaType("the body must be UTF-8 (charset=utf-8)")
    return found


def parse_body(form: str, body: bytes, signature: Signature, max_rows: int) -> Body:
    """The rows of a body in `form` ("json", "csv", "parquet") for a model of `signature`; a
    table is read no further than `max_rows` (JSON's rows are counted by the data plane)."""
    if not body.strip():
        raise EmptyBody("No data provided")
    if form == "json":
        return json_body(parse_json(body), signature)
    if form == "csv":
        return Body("instances", csv_rows(body, signature, max_rows), None)
    return Body("instances", parquet_rows(body, signature, max_rows), None)


def json_body(doc: Any, signature: Signature) -> Body:
    """The rows and params of a parsed JSON body."""
    if type(doc) is not dict:
        raise InvalidInput(f"the body must be a JSON object with {ONE_OF}")
    if len(doc) > 2 or any(k not in FIELDS for k in doc):
        unknown = [str(k) for k in doc if k not in FIELDS]
        if unknown:
            raise UnknownField(
                f"unknown field(s) {quote_names(unknown[:5])}: the accepted fields are {ACCEPTED}"
            )
    given = [k for k in ROW_FIELDS if k in doc]
    if len(given) != 1:
        got = f"; got {quote_names(given)}" if given else ""
        raise InvalidInput(f"give {ONE_OF}{got}")
    field = given[0]
    data = doc[field]
    if field == "dataframe_split":
        rows = split_rows(data, signature)
    elif field == "dataframe_records":
        if type(data) is not list:
            raise InvalidInput("'dataframe_records' must be a list of records")
        rows = record_rows(_some(data, field), signature, field)
    else:
        rows = tensor_rows(data, signature, field)
    return Body("instances", rows, doc.get("params"))


def split_rows(split: Any, signature: Signature) -> list[Any]:
    """`{"columns": [...], "data": [[...], ...], "index": [...]}` (pandas' split orient)."""
    if type(split) is not dict or "data" not in split or any(k not in _SPLIT_KEYS for k in split):
        raise InvalidInput(
            "'dataframe_split' must be an object with 'data' and optionally 'columns' and 'index'"
        )
    data = split["data"]
    if type(data) is not list:
        raise InvalidInput("'dataframe_split.data' must be a list of rows")
    _some(data, "dataframe_split.data")
    index = split.get("index")
    if index is not None and (type(index) is not list or len(index) != len(data)):
        raise InvalidInput("'dataframe_split.index' must be a list of one label per row")
    columns = split.get("columns")
    if columns is None:
        check_positional(signature, "'dataframe_split' has no 'columns'")
        return data
    if type(columns) is not list:
        raise InvalidInput("'dataframe_split.columns' must be a list of column names")
    if len(columns) == len(signature.names) and tuple(columns) == signature.names:
        return data  # the common case: the signature's columns in order, rows as they came
    positions = column_positions(columns, signature, "'dataframe_split.columns'")
    return project(data, positions, len(columns), "dataframe_split.data")


def record_rows(records: list[Any], signature: Signature, field: str) -> list[list[Any]]:
    """Objects of column name to value, as positional rows."""
    names = signature.names
    get = itemgetter(*names)
    single = len(names) == 1  # itemgetter of one name gives the value, not a tuple
    rows: list[list[Any]] = []
    try:
        for index, record in enumerate(records):
            if type(record) is not dict:
                raise InvalidInput(f"'{field}' row {index}: expected an object of column names")
            rows.append([get(record)] if single else list(get(record)))
    except KeyError:
        missing = [n for n in names if n not in records[len(rows)]]
        raise InvalidInput(
            f"'{field}' row {len(rows)}: missing column(s) {quote_names(missing[:5])}"
        ) from None
    return rows


def tensor_rows(data: Any, signature: Signature, field: str) -> list[Any]:
    """`instances` or `inputs`: records, a dict of columns, positional rows, or the values of a
    model's only column (MLflow's reading of TensorFlow Serving's formats)."""
    if type(data) is dict:
        return column_rows(data, signature, field)
    if type(data) is not list:
        raise InvalidInput(f"'{field}' must be a list of records or an object of columns")
    first = _some(data, field)[0]
    if type(first) is dict:
        return record_rows(data, signature, field)
    if type(first) is list:
        check_positional(signature, f"'{field}' holds rows without column names")
        return data
    if len(signature.names) == 1:  # the values of the only column
        return [[value] for value in data]
    raise InvalidInput(f"'{field}' must be a list of records or an object of columns")


def column_rows(columns: dict[str, Any], signature: Signature, field: str) -> list[list[Any]]:
    """`{"column": [values...], ...}`, or `{"column": value, ...}` for one row."""
    missing = [name for name in signature.names if name not in columns]
    if missing:
        raise InvalidInput(f"'{field}': missing column(s) {quote_names(missing[:5])}")
    values = [columns[name] for name in signature.names]
    if not any(type(v) is list for v in values):  # one value per column: one row
        return [values]
    lengths = {len(v) if type(v) is list else -1 for v in values}
    if len(lengths) != 1 or -1 in lengths:
        raise InvalidInput(f"'{field}': every column must be a list of the same length")
    if not values[0]:
        raise InvalidInput(f"'{field}' has no rows")
    return [list(row) for row in zip(*values, strict=True)]


def check_positional(signature: Signature, why: str) -> None:
    """Rows without column names fit only a signature that names none (as MLflow refuses them
    for a model whose schema names its columns)."""
    names = signature.names
    if names != tuple(f"f{i}" for i in range(len(names))):
        raise InvalidInput(
            f"{why}, and this model's signature names its columns "
            f"({quote_names(names[:8])}{', ...' if len(names) > 8 else ''}): send "
            "'dataframe_split' with 'columns', 'dataframe_records', or 'inputs' as records "
            "or an object of columns"
        )


def project(rows: list[Any], positions: list[int], width: int, field: str) -> list[Any]:
    """Rows of `width` values, reordered to the signature's columns."""
    pick = getter(positions)
    out = []
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            raise InvalidInput(f"'{field}' row {index}: expected a list of {width} values")
        out.append(list(pick(row)))
    return out


def _some(rows: list[Any], field: str) -> list[Any]:
    if not rows:
        raise InvalidInput(f"'{field}' has no rows")
    return rows
