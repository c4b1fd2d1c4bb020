"""A 100 MiB job upload costs the gateway a chunk of memory, not the upload (issue 14).

For each format (CSV, NDJSON, JSON) two uploads of 100 MiB are streamed to a real gateway from
a generator: one of 0.7 to 1.3 million valid rows, accepted, and one whose single id is 100 MiB,
refused as soon as the reader has read past the line limit (after the whole upload is spooled:
its SHA-256 comes first); and a JSON upload of 100 MiB of `[`, nested past the depth limit, is
refused (422) in its first block (a path per level once cost memory quadratic in the depth).
While each runs, a thread samples the gateway process's RSS every 50 ms and another asks
/healthz; the peak rise must stay under 64 MiB (one JSON upload of that size used to take
2 GB), /healthz must keep answering, and the gateway serves on afterwards.

`UPLOAD_MEMORY_MIB=500` makes each upload 500 MiB: the soak figure, not run by `make test`.

The gateway has its own key prefix, so that the chunk tasks of the accepted jobs (cancelled at
once) wait in a queue no test worker reads; its keys are deleted when the module ends.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import psutil
import pytest
from redis import Redis

from devstack.processes import Gateway, RedisServer
from gateway.guard.keys import SCOPES, KeyStore
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory

MIB = 1024 * 1024
UPLOAD_MIB = int(os.environ.get("UPLOAD_MEMORY_MIB", "100"))
UPLOAD_BYTES = UPLOAD_MIB * MIB
RSS_RISE_LIMIT = 64 * MIB
PREFIX = "mgmem:"
ROW = (5.1, 3.5, 1.4, 0.2)
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
#: Rows are padded with a longish id (about 60 bytes), so that 100 MiB is about a million rows.
PADDING = "x" * 40


@pytest.fixture(scope="module")
def memory_gateway(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel], redis_durable: RedisServer
) -> Iterator[Gateway]:
    with Redis.from_url(redis_durable.url) as redis:
        _, key = KeyStore(redis, PREFIX).create(
            name="memory", owner="upload-memory", scopes=SCOPES, jobs_limit="1000/hour"
        )
    yield gateway_factory(
        api_key=key,
        key_prefix=PREFIX,
        max_job_rows=str(20_000 * UPLOAD_MIB),
        chunk_size="20000",
        max_stored_rows_per_owner="100000000",
        max_stored_bytes_per_owner=str(16 * 1024 * MIB),
    )
    with Redis.from_url(redis_durable.url) as redis:
        for batch in _batches(redis.scan_iter(match=f"{PREFIX}*", count=1000), 1000):
            redis.delete(*batch)


def _batches(keys: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the uploads: generators of about 1 MiB pieces -----------------------------------------


def pieces_of(
    lines: Callable[[int], bytes], head: bytes, tail: bytes
) -> tuple[Iterator[bytes], int]:
    """`head`, then `lines(i)` for i = 0, 1, ... until about UPLOAD_BYTES, then `tail`; and the
    number of lines. Built once (the rows are alike), streamed in pieces of about 1 MiB."""
    sample = lines(0)
    count = (UPLOAD_BYTES - len(head) - len(tail)) // len(sample)
    per_piece = MIB // len(sample)

    def generate() -> Iterator[bytes]:
        yield head
        for start in range(0, count, per_piece):
            yield b"".join(lines(i) for i in range(start, min(start + per_piece, count)))
        yield tail

    return generate(), count


def rid(i: int) -> str:
    return f"row-{i:010d}-{PADDING}"


VALUES = ",".join(map(str, ROW))
RECORD = ", ".join(f'"{name}": {value}' for name, value in zip(FEATURES, ROW, strict=True))


def accepted_csv() -> tuple[Iterator[bytes], int]:
    return pieces_of(
        lambda i: f"{rid(i)},{VALUES}\n".encode(),
        ("rid," + ",".join(FEATURES) + "\n").encode(),
        b"",
    )


def accepted_ndjson() -> tuple[Iterator[bytes], int]:
    return pieces_of(lambda i: f'{{"rid": "{rid(i)}", {RECORD}}}\n'.encode(), b"", b"")


def accepted_json() -> tuple[Iterator[bytes], int]:
    """Records, each with its id column: the rows and their ids in one list."""
    return pieces_of(
        lambda i: f'{{"rid": "{rid(i)}", {RECORD}}}, '.encode(),
        b'{"records": [',
        ('{"rid": "last", ' + RECORD + "}]}").encode(),
    )


def one_huge_id(head: bytes, tail: bytes) -> Iterator[bytes]:
    """`head`, 100 MiB of one id, then `tail`."""
    yield head
    piece = b"x" * MIB
    for _ in range(UPLOAD_MIB):
        yield piece
    yield tail


def huge_csv_id() -> Iterator[bytes]:
    head = ("rid," + ",".join(FEATURES) + f"\nr0,{VALUES}\n").encode()
    return one_huge_id(head, f",{VALUES}\n".encode())


def huge_ndjson_id() -> Iterator[bytes]:
    return one_huge_id(
        f'{{"rid": "r0", {RECORD}}}\n{{"rid": "'.encode(), f'", {RECORD}}}\n'.encode()
    )


def huge_json_id() -> Iterator[bytes]:
    return one_huge_id(b'{"instances": [[5.1, 3.5, 1.4, 0.2]], "ids": ["', b'"]}')


def deep_json() -> Iterator[bytes]:
    """`{"instances": [`, then 100 MiB of `[`: a row nested about 100 million levels deep."""
    yield b'{"instances": ['
    piece = b"[" * MIB
    for _ in range(UPLOAD_MIB):
        yield piece


# --- watching the gateway while an upload runs ---------------------------------------------


@dataclass
class Watch:
    """RSS samples of the gateway process and /healthz latencies, taken while an upload runs."""

    gateway: Gateway
    baseline: int = 0
    peak: int = 0
    health: list[tuple[int, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Watch:
        self.process = psutil.Process(self.gateway.pid)
        self.baseline = self.peak = self.process.memory_info().rss
        self.threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._ask_health, daemon=True),
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _sample(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def _ask_health(self) -> None:
        with httpx.Client(base_url=self.gateway.url, timeout=10) as client:
            while True:  # at once, then every 0.1 s until the upload has its answer
                started = time.monotonic()
                status = client.get("/healthz").status_code
                self.health.append((status, time.monotonic() - started))
                if self.stop.wait(0.1):
                    return

    @property
    def rise(self) -> int:
        return self.peak - self.baseline


def upload(
    gateway: Gateway, media: str, body: Iterator[bytes], id_columns: str = "rid"
) -> tuple[httpx.Response, Watch, float]:
    """POST the job body streamed from `body` (chunked), watching the gateway meanwhile."""
    started = time.monotonic()
    with Watch(gateway) as watch:
        response = gateway.http.post(
            "/v1/models/iris/jobs",
            params={"id_columns": id_columns} if id_columns else None,
            headers={"Content-Type": media},
            content=body,
            timeout=600,
        )
    seconds = time.monotonic() - started
    print(
        f"\n{media}: {response.status_code} in {seconds:.1f} s, RSS "
        f"{watch.baseline / MIB:.0f} MiB + {watch.rise / MIB:.1f} MiB at the peak, "
        f"/healthz slowest {max((s for _, s in watch.health), default=0):.3f} s"
    )
    return response, watch, seconds


def check_watch(watch: Watch) -> None:
    assert watch.rise < RSS_RISE_LIMIT, f"the gateway's RSS rose {watch.rise / MIB:.1f} MiB"
    assert watch.health, "no /healthz was asked during the upload"
    assert all(status == 200 for status, _ in watch.health)
    # It stalled 5.3 s before issue 14; up to 1 s is seen now on two busy cores during a JSON
    # upload (a reader thread holding the GIL, a garbage collection of the whole heap).
    assert max(seconds for _, seconds in watch.health) < 3.0


def warm_up(gateway: Gateway) -> None:
    """A small job of each format first, so that what a first upload sets up (threads, pools,
    code paths) is not counted as an upload's cost."""
    small = {
        "text/csv": ("rid," + ",".join(FEATURES) + f"\nr0,{VALUES}\n").encode(),
        "application/x-ndjson": f'{{"rid": "r0", {RECORD}}}\n'.encode(),
        "application/json": f'{{"records": [{{"rid": "r0", {RECORD}}}]}}'.encode(),
    }
    for media, body in small.items():
        answer = gateway.http.post(
            "/v1/models/iris/jobs",
            params={"id_columns": "rid"},
            headers={"Content-Type": media},
            content=body,
        )
        assert answer.status_code == 202, answer.text
        assert gateway.http.delete(f"/v1/jobs/{answer.json()['job_id']}").status_code == 200


@pytest.fixture(scope="module")
def warm(memory_gateway: Gateway) -> Gateway:
    warm_up(memory_gateway)
    return memory_gateway


@pytest.mark.parametrize(
    ("media", "make"),
    [
        ("text/csv", accepted_csv),
        ("application/x-ndjson", accepted_ndjson),
        ("application/json", accepted_json),
    ],
)
def test_a_100_mib_upload_of_valid_rows_is_accepted_in_bounded_memory(
    warm: Gateway, media: str, make: Callable[[], tuple[Iterator[bytes], int]]
) -> None:
    body, rows = make()
    response, watch, _ = upload(warm, media, body)
    assert response.status_code == 202, response.text
    status = response.json()
    expected = rows + (1 if media == "application/json" else 0)  # the JSON body's last record
    assert status["rows"] == expected and expected > 5_000 * UPLOAD_MIB
    # Cancelled at once: its inputs are deleted, and no worker reads this gateway's queue.
    assert warm.http.delete(f"/v1/jobs/{status['job_id']}").json()["status"] == "cancelled"
    check_watch(watch)


@pytest.mark.parametrize(
    ("media", "make", "message"),
    [
        ("text/csv", huge_csv_id, "line 3 is longer than 65536 bytes"),
        ("application/x-ndjson", huge_ndjson_id, "line 2 is longer than 65536 bytes"),
        ("application/json", huge_json_id, "the body has a value longer than 65536 bytes"),
    ],
)
def test_a_100_mib_id_is_refused_in_bounded_memory(
    warm: Gateway, media: str, make: Callable[[], Iterator[bytes]], message: str
) -> None:
    id_columns = "" if media == "application/json" else "rid"
    response, watch, _ = upload(warm, media, make(), id_columns)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert error["message"].startswith(message)
    assert "MODELGATE_MAX_JOB_LINE_BYTES" in error["message"]
    assert "xxxx" not in response.text  # nothing of the value is echoed
    check_watch(watch)


def test_a_deeply_nested_json_upload_is_refused_in_bounded_memory(warm: Gateway) -> None:
    response, watch, _ = upload(warm, "application/json", deep_json(), id_columns="")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("the body nests arrays and objects deeper than 8 levels")
    check_watch(watch)


def test_the_gateway_serves_on_after_the_uploads(warm: Gateway) -> None:
    assert warm.http.get("/healthz").status_code == 200
    answer = warm.http.post("/predict", json={"features": [list(ROW)]})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
