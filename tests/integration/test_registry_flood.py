"""One owner flooding unknown pinned versions and random aliases cannot starve the others: a
real gateway, a real MLflow registry, 20 flooding clients of one owner, and another owner's
pin and job polling measured during the flood."""

from __future__ import annotations

import statistics
import threading
import time
import uuid

import httpx

from devstack.processes import Gateway
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory, known, make_key

ROWS = [[5.1, 3.5, 1.4, 0.2]]
FLOODERS = 20


def _poll_p50(gateway: Gateway, job_id: str, times: int = 20) -> float:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        response = gateway.http.get(f"/v1/jobs/{job_id}")
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(seconds)


def _flood(gateway: Gateway, key: str, stop: threading.Event, statuses: list[int]) -> None:
    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": key}, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            if i % 2:  # an unknown version, new each time
                body = {"instances": ROWS, "version": 100_000 + (i * 7919) % 900_000}
                response = client.post("/v1/models/iris/predict", json=body)
            else:  # a random alias
                alias = "a" + uuid.uuid4().hex[:12]
                response = client.post(f"/v1/models/iris@{alias}/predict", json={"instances": ROWS})
            statuses.append(response.status_code)
            if response.status_code == 503:
                # Told to come back: it does, after Retry-After. A client that does not is held
                # by its key's rate limit (a CPU flood of cheap refusals), not by this budget.
                stop.wait(min(float(response.headers.get("Retry-After", "1")), 1.0))


def test_a_flood_of_unknown_pins_and_aliases_starves_no_one_else(
    gateway_factory: GatewayFactory, iris: dict[int, LoadedModel]
) -> None:
    """Measured on 2026-12-02: polling p50 6.4 ms idle, 8.1 ms flooded; the same flood with
    MODELGATE_REGISTRY_CALLS_PER_OWNER=10000 (no budget in effect) gave 7.1 ms and 1,193 ms."""
    # Owner "tests"; version 2 of iris exists and is not loaded.
    gateway = gateway_factory()
    abuser = make_key(gateway_factory_redis(gateway), owner="abuser", name="abuser")
    known(gateway, abuser)  # else its first requests can come before the key snapshot has it
    submitted = gateway.http.post(
        "/v1/models/iris/jobs",
        json={"instances": ROWS * 10},
        timeout=60,
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    # Up to three rounds of idle then flooded polling: the flooders are threads of this test
    # process, in a suite whose other modules load the same two cores, so one round's p50 can
    # be the machine's. Without the budget every round is about 170x slower (docstring).
    rounds: list[tuple[float, float]] = []
    statuses: list[int] = []
    for _ in range(3):
        idle = _poll_p50(gateway, job_id)
        stop = threading.Event()
        flooders = [
            threading.Thread(target=_flood, args=(gateway, abuser, stop, statuses), daemon=True)
            for _ in range(FLOODERS)
        ]
        for thread in flooders:
            thread.start()
        try:
            time.sleep(2)  # the flood is under way
            pinned = gateway.http.post(
                "/v1/models/iris/predict", json={"instances": ROWS, "version": 2}
            )
            flooded = _poll_p50(gateway, job_id)
        finally:
            stop.set()
            for thread in flooders:
                thread.join(30)
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["version"] == 2
        rounds.append((idle, flooded))
        if flooded <= 2 * idle + 0.005:  # 5 ms of slack for a loaded machine
            break
    print(
        f"\nflood: {len(statuses)} requests ({statuses.count(404)} 404, {statuses.count(503)} 503);"
        " job polling p50 idle/flooded ms per round: "
        + ", ".join(f"{i * 1000:.1f}/{f * 1000:.1f}" for i, f in rounds)
    )
    idle, flooded = rounds[-1]
    assert flooded <= 2 * idle + 0.005, rounds
    # The abuser was answered (404 or an immediate 503), never with a server error.
    assert statuses and set(statuses) <= {404, 503}, set(statuses)


def gateway_factory_redis(gateway: Gateway) -> str:
    """The durable Redis URL the gateway was started with."""
    return gateway.env["MODELGATE_REDIS_URL"]
