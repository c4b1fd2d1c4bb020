"""The batch backlog as a metric: the length of the Celery queue's Redis list, read at scrape.

Read when Prometheus scrapes instead of counted by the tasks, so it is right whichever worker or
gateway pushed or popped. A failed read exports no length (a made-up value would draw a false
line and could fire the backlog alert) and counts an error instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

LENGTH = "modelgate_queue_length"
ERRORS = "modelgate_queue_length_errors"  # exported with `_total`


class QueueLengthCollector(Collector):
    """Exports `modelgate_queue_length` (LLEN of `key`) and its read errors at each scrape."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key
        self.errors = 0

    def describe(self) -> Iterator[Metric]:
        # Lets a registry know the names without a Redis round trip.
        yield GaugeMetricFamily(LENGTH, "Chunk tasks waiting in the queue")
        yield CounterMetricFamily(ERRORS, "Scrapes that could not read the queue length")

    def collect(self) -> Iterator[Metric]:
        try:
            length = int(self.redis.llen(self.key))
        except RedisError as exc:
            self.errors += 1
            logger.warning("queue length unreadable: %s", type(exc).__name__)
        else:
            yield GaugeMetricFamily(LENGTH, "Chunk tasks waiting in the queue", value=length)
        yield CounterMetricFamily(
            ERRORS, "Scrapes that could not read the queue length", value=self.errors
        )
