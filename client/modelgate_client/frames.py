"""pandas conversions. pandas is imported only inside these functions, never with the package:
`pip install 'modelgate-client[pandas]'` adds it.

A DataFrame of predictions (from `predict(model, frame)` and `jobs.results_frame`) has the
column `prediction` and, when the model gives probabilities, one `proba_<class>` column per
class (the columns of the gateway's CSV results); job results also carry their id columns
first. A predict frame keeps the input frame's index.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import pandas as pd

#: Rows of a DataFrame upload rendered per block.
ROWS_PER_BLOCK = 10_000


def is_frame(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame (without importing pandas: a caller holding a
    DataFrame has imported it)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("this needs pandas: pip install 'modelgate-client[pandas]'") from None
    return pandas


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as records, column names as feature names (the index is not sent)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def prediction_frame(
    labels: Sequence[Any],
    probabilities: Optional[Sequence[Sequence[float]]],
    classes: Optional[Sequence[Any]],
    index: Any = None,
) -> pd.DataFrame:
    """Predictions as a DataFrame: `prediction`, then `proba_<class>` columns."""
    pandas = _pandas()
    columns: dict[str, Any] = {"prediction": list(labels)}
    if probabilities is not None:
        names = (
            list(classes) if classes else list(range(len(probabilities[0]) if probabilities else 0))
        )
        for position, name in enumerate(names):
            columns[f"proba_{name}"] = [row[position] for row in probabilities]
    return pandas.DataFrame(columns, index=index)


def csv_blocks(frame: pd.DataFrame, rows: int = ROWS_PER_BLOCK) -> Iterator[bytes]:
    """The frame as CSV with a header row, `rows` rows per block (the index is not sent)."""
    if len(frame) == 0:
        yield frame.to_csv(index=False, lineterminator="\n").encode()
        return
    for start in range(0, len(frame), rows):
        part = frame.iloc[start : start + rows]
        yield part.to_csv(index=False, header=start == 0, lineterminator="\n").encode()


def ndjson_blocks(frame: pd.DataFrame, rows: int = ROWS_PER_BLOCK) -> Iterator[bytes]:
    """The frame as one JSON record per line, `rows` rows per block."""
    for start in range(0, len(frame), rows):
        text = frame.iloc[start : start + rows].to_json(orient="records", lines=True)
        yield text.encode() if text.endswith("\n") else (text + "\n").encode()


def read_results_csv(source: IO[bytes]) -> pd.DataFrame:
    """Job results downloaded as CSV (see the module's docstring for the columns)."""
    return _pandas().read_csv(source)
