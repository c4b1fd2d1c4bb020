"""Job intake speed: rows per second read from a spooled upload into validated chunks.

`python -m bench.job_intake` reads the same uploads (iris rows, 4 float features) with the
readers of gateway/jobdata as they are and as they were before they streamed every format
(issue 14: JSON was parsed whole with orjson, CSV and NDJSON lines had no bound), each taken
from git at `BEFORE` into a temporary module. Each upload is spooled as the route spools it
(on disk past 8 MiB), and each reader's best of `--repeat` runs is kept. Results: a table on
stdout and bench/results/job_intake.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import orjson

from gateway.jobdata.chunks import Chunk, UploadLimits
from gateway.jobdata.csv_rows import csv_chunks
from gateway.jobdata.json_rows import json_chunks
from gateway.jobdata.ndjson_rows import ndjson_chunks
from gateway.jobdata.records import RowChecker
from registry.signature import Feature, Signature
from registry.train import FEATURES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
#: The last commit whose readers parsed a JSON upload whole.
BEFORE = "19c76674a1c7ed2ee24c3f52cca0d4568c800e68"
#: As the gateway's route spools an upload (gateway/routes/jobs.py).
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
CHUNK_SIZE = 10_000
SIGNATURE = Signature(tuple(Feature(name, "double") for name in FEATURES))

Reader = Callable[[IO[bytes]], Iterator[Chunk]]


def iris_rows(rows: int) -> list[list[float]]:
    """`rows` rows of iris-like measurements, one decimal each (as iris is measured)."""
    return [
        [4.3 + (i % 37) / 10, 2.0 + (i % 25) / 10, 1.0 + (i % 59) / 10, 0.1 + (i % 24) / 10]
        for i in range(rows)
    ]


def uploads(rows: int) -> dict[str, bytes]:
    """The same rows in each shape a job takes."""
    data = iris_rows(rows)
    records = [dict(zip(FEATURES, row, strict=True)) for row in data]
    return {
        "json_instances": orjson.dumps({"instances": data}),
        "json_records": orjson.dumps({"records": records}),
        "ndjson": b"".join(orjson.dumps(record) + b"\n" for record in records),
        "csv": (",".join(FEATURES) + "\n").encode()
        + "".join(",".join(map(str, row)) + "\n" for row in data).encode(),
    }


def old_module(path: str, workdir: Path) -> ModuleType:
    """The module at `path` as it was at BEFORE, imported from a temporary file."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:{path}"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    target = workdir / ("before_" + Path(path).name)
    target.write_bytes(source)
    spec = importlib.util.spec_from_file_location(target.stem, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readers(workdir: Path) -> dict[str, dict[str, Reader]]:
    """Per format, the reader before and now, each a function of the spooled body."""
    old_json = old_module("gateway/jobdata/json_rows.py", workdir)
    old_ndjson = old_module("gateway/jobdata/ndjson_rows.py", workdir)
    old_csv = old_module("gateway/jobdata/csv_rows.py", workdir)
    limits = UploadLimits()
    checker = RowChecker(SIGNATURE, [], limits)
    old_checker = RowChecker(SIGNATURE, [])
    many = 10**9

    def json_now(body: IO[bytes]) -> Iterator[Chunk]:
        return json_chunks(body, checker, CHUNK_SIZE, many)

    def json_before(body: IO[bytes]) -> Iterator[Chunk]:
        return old_json.json_chunks(body, old_checker, CHUNK_SIZE, many)

    def ndjson_now(body: IO[bytes]) -> Iterator[Chunk]:
        return ndjson_chunks(body, checker, CHUNK_SIZE, many)

    def ndjson_before(body: IO[bytes]) -> Iterator[Chunk]:
        return old_ndjson.ndjson_chunks(body, old_checker, CHUNK_SIZE, many)

    def csv_now(body: IO[bytes]) -> Iterator[Chunk]:
        return csv_chunks(body, SIGNATURE, [], CHUNK_SIZE, many, limits)

    def csv_before(body: IO[bytes]) -> Iterator[Chunk]:
        return old_csv.csv_chunks(body, SIGNATURE, [], CHUNK_SIZE, many)

    json_pair: dict[str, Reader] = {"before": json_before, "now": json_now}
    return {
        "json_instances": json_pair,
        "json_records": json_pair,
        "ndjson": {"before": ndjson_before, "now": ndjson_now},
        "csv": {"before": csv_before, "now": csv_now},
    }


def best_seconds(read: Reader, data: bytes, rows: int, repeat: int) -> float:
    """The fastest of `repeat` reads of `data`, spooled anew each time; checks the row count."""
    best = float("inf")
    for _ in range(repeat):
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as body:
            body.write(data)
            body.seek(0)
            started = time.perf_counter()
            got = sum(len(chunk.rows) for chunk in read(body))
            best = min(best, time.perf_counter() - started)
        if got != rows:
            raise RuntimeError(f"read {got} rows, not {rows}")
    return best


def measure(rows: int, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as workdir:
        pairs = readers(Path(workdir))
        for name, data in uploads(rows).items():
            before = best_seconds(pairs[name]["before"], data, rows, repeat)
            now = best_seconds(pairs[name]["now"], data, rows, repeat)
            results[name] = {
                "bytes": len(data),
                "before_rows_per_s": round(rows / before),
                "now_rows_per_s": round(rows / now),
                "now_vs_before": round(before / now, 2),
            }
            print(
                f"  {name:<15} before {rows / before:>10,.0f} rows/s   now {rows / now:>10,.0f} "
                f"rows/s   now/before {before / now:.2f}"
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.job_intake", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per upload")
    parser.add_argument("--repeat", type=int, default=5, help="reads per reader, best kept")
    args = parser.parse_args()
    print(f"job intake, {args.rows:,} iris rows, best of {args.repeat}:")
    results = {
        "rows": args.rows,
        "repeat": args.repeat,
        "before": BEFORE,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "formats": measure(args.rows, args.repeat),
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "job_intake.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
