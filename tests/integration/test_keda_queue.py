"""The Redis list KEDA's ScaledObject watches (k8s/) is the one that grows when jobs are queued.

A real gateway and a real redis-server, and no worker: every chunk a job queues stays in the
list, so its length is exactly the backlog KEDA scales the workers on.
"""

from __future__ import annotations

import json
import secrets

import pytest
from redis import Redis

from devstack.processes import RedisServer, wait_until
from gateway.guard.keys import SCOPES, KeyStore
from jobs.celery_app import PREDICT_CHUNK
from registry.model import LoadedModel
from tests.integration.conftest import GatewayFactory
from tests.manifests import KustomizeMissing, build, config_map, find

pytestmark = pytest.mark.integration


def watched_list(prefix: str) -> str:
    """The ScaledObject's listName, with the key prefix the manifests configure replaced by
    `prefix` (the part KEDA adds nothing to)."""
    try:
        docs = build("prod")
    except KustomizeMissing as exc:
        pytest.fail(str(exc))
    configured = config_map(docs, "modelgate-shared")["MODELGATE_KEY_PREFIX"]
    (trigger,) = find(docs, "ScaledObject", "worker")["spec"]["triggers"]
    list_name: str = trigger["metadata"]["listName"]
    assert list_name.startswith(configured), (list_name, configured)
    return prefix + list_name.removeprefix(configured)


def test_the_watched_list_grows_by_one_message_per_chunk(
    gateway_factory: GatewayFactory, redis_durable: RedisServer, iris: dict[int, LoadedModel]
) -> None:
    # A prefix of its own: workers started by other tests on this Redis never consume it.
    prefix = f"mgkeda{secrets.token_hex(3)}:"
    with Redis.from_url(redis_durable.url) as redis:
        _, key = KeyStore(redis, prefix).create(
            name="keda", owner="keda", scopes=SCOPES, jobs_limit="1000/minute"
        )
    gateway = gateway_factory(api_key=key, key_prefix=prefix, chunk_size="100")
    wait_until(lambda: gateway.http.get("/v1/models").status_code == 200, 10, "the new key")
    queue = watched_list(prefix)

    rows = "\n".join("5.1,3.5,1.4,0.2" for _ in range(250))
    body = f"sepal_length,sepal_width,petal_length,petal_width\n{rows}\n".encode()
    with Redis.from_url(redis_durable.url) as redis:
        before = redis.llen(queue)
        accepted = gateway.http.post(
            "/v1/models/iris/jobs", content=body, headers={"content-type": "text/csv"}
        )
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert job["rows"] == 250
        # 250 rows in chunks of 100: three tasks, all still waiting in the watched list.
        assert redis.type(queue) == b"list"
        assert redis.llen(queue) - before == 3
        messages = [json.loads(raw) for raw in redis.lrange(queue, 0, -1)]
    ours = [m for m in messages if m["headers"]["task"] == PREDICT_CHUNK]
    assert len(ours) == len(messages) == before + 3
    assert sorted(m["headers"]["argsrepr"] for m in ours[-3:]) == sorted(
        repr([job["job_id"], n]) for n in range(3)
    )
