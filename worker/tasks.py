"""The chunk task: thin, idempotent, on a model version loaded once per process."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.celery_app import PREDICT_CHUNK
from jobs.record import ACTIVE, FAILED, QUEUED, RUNNING, SUCCEEDED
from jobs.store import JobStore
from kernel.errors import ModelgateError, RegistryUnavailable
from kernel.loading import LoadOptions
from registry.client import Registry
from registry.loader import load_version
from registry.model import LoadedModel
from worker.metrics import (
    CHUNK_FAILURES,
    CHUNKS,
    DUPLICATE_CHUNKS,
    REDELIVERIES,
    ROWS,
    TASK_SECONDS,
)

logger = logging.getLogger(__name__)

#: Versions kept loaded in one worker process.
MODEL_CACHE_SIZE = 3


class ChunkRunner:
    """What a worker process needs to run chunks: the job store and a small model cache."""

    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        max_deliveries: int,
        options: LoadOptions | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.max_deliveries = max_deliveries
        # The gateway's own loader policy (kernel.loading), so a job runs what it would serve.
        self.options = options or LoadOptions()
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()

    def model(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        if key not in self._models:
            self._models[key] = load_version(self.registry, name, version, self.options)
            while len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        return self._models[key]

    def run_until(self, job_id: str, n: int, attempt: int, deadline: float) -> str:
        """`run`, riding out a Redis outage until `deadline` (monotonic seconds).

        The broker is the same Redis, so Celery's own retry could not be sent during the
        outage; waiting here keeps the message unacknowledged. Giving up at the deadline
        rejects it back to the queue (`Reject(requeue=True)`): a task that raised instead
        would be acknowledged as failed, its chunk lost and its job left running for good,
        since the failure could not be recorded either. Redis still down when the worker
        rejects it, the message stays unacknowledged and comes back after the visibility
        timeout.
        """
        delay = 0.25
        while True:
            try:
                return self.run(job_id, n, attempt)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if time.monotonic() + delay >= deadline:
                    logger.warning("Redis unavailable; chunk %s of %s goes back", n, job_id)
                    raise Reject(f"Redis unavailable: {type(exc).__name__}", requeue=True) from exc
                logger.warning("Redis unavailable; chunk %s of %s waits", n, job_id)
                time.sleep(delay)
                delay = min(delay * 2, 4.0)

    def run(self, job_id: str, n: int, attempt: int = 0) -> str:
        record = self.store.get(job_id)
        if record is None or record.status not in ACTIVE:
            return "skipped"  # expired, cancelled or failed: nothing to do
        # Deliveries of the same attempt: a crash loop redelivers the same message again and
        # again, while a Celery retry (a registry outage) is a new attempt and starts afresh.
        deliveries = self.store.count_delivery(job_id, f"{n}:{attempt}")
        if deliveries > 1:
            REDELIVERIES.inc()
        if deliveries > self.max_deliveries:
            self.fail(job_id, "chunk_crashed", f"chunk {n} failed {self.max_deliveries} times")
            return "failed"
        # Before its input is read: a chunk's input is deleted once its result is counted.
        if self.store.is_done(job_id, n):
            DUPLICATE_CHUNKS.inc()
            # A redelivery of a chunk already stored. If every chunk is, the delivery that
            # counted the last one died before finishing the job (which is still active):
            # finish it here, or it would hold its slot, `running`, until its TTL.
            self.finish_if_done(job_id, record.chunks, record.rows)
            return "duplicate"
        if record.status == QUEUED:
            # Only if it is still queued, checked atomically: this record may be stale, read
            # before a cancel.
            self.store.update(job_id, status=RUNNING, started=time.time())
        rows = self.store.chunk_input(job_id, n)
        if rows is None:
            # Gone: cancelled or failed meanwhile, or scored by another delivery of the chunk
            # since is_done (it deleted the input once the chunk counted).
            return "skipped"
        started = time.perf_counter()
        try:
            try:
                model = self.model(record.model, record.version)
            except (SoftTimeLimitExceeded, ModelgateError) as exc:
                # A cold process loading a large model on a busy machine used up this
                # delivery's time: retried like a registry outage, not the end of the job.
                # The loader reports what it caught as a refusal, the time limit included.
                if not _cut_by_time_limit(exc):
                    raise
                raise RegistryUnavailable(
                    f"loading {record.model} version {record.version} outlasted the time limit"
                ) from None
            # The chunk store keeps a missing value as null: NaN again for the model.
            prediction = model.predict(model.signature.fill_missing(rows))
        except RegistryUnavailable:
            raise  # transient: the task retries
        except ModelgateError as exc:
            self.fail(job_id, exc.code, exc.message)
            return "failed"
        result: dict[str, Any] = {
            "predictions": prediction.labels,
            "probabilities": prediction.probabilities,
        }
        done = self.store.finish_chunk(job_id, n, result)
        if done is None:
            return "skipped"  # cancelled (or failed) while it ran: the result is not kept
        TASK_SECONDS.observe(time.perf_counter() - started)
        CHUNKS.inc()
        ROWS.inc(len(rows))
        if done >= record.chunks:
            self.finish(job_id, record.rows)
        return "done"

    def finish_if_done(self, job_id: str, chunks: int, rows: int) -> None:
        """Finish the job if all its `chunks` chunks are counted done."""
        if self.store.chunks_done(job_id) >= chunks:
            self.finish(job_id, rows)

    def finish(self, job_id: str, rows: int) -> None:
        """Mark the job succeeded (its results kept for their retention: JobStore.update),
        unless it stopped already (another delivery finished it, or it was cancelled)."""
        if self.store.update(job_id, status=SUCCEEDED, finished=time.time()):
            logger.info("job finished", extra={"job_id": job_id, "rows": rows})

    def fail(self, job_id: str, code: str, message: str) -> None:
        """Fail the job for chunk failure `code`, unless it is no longer active (a cancelled or
        finished job keeps its status). Failing deletes its data and frees its running-job
        slot and stored rows and bytes (JobStore.update)."""
        CHUNK_FAILURES.labels(code).inc()
        extra = {"job_id": job_id, "error_code": code}
        if self.store.update(
            job_id, status=FAILED, finished=time.time(), error_code=code, error_message=message
        ):
            logger.error("job failed: %s", message, extra=extra)
        else:
            logger.warning("chunk failed after its job stopped: %s", message, extra=extra)


def _cut_by_time_limit(exc: BaseException | None) -> bool:
    """Whether `exc` is the soft time limit, or was raised while handling it."""
    while exc is not None:
        if isinstance(exc, SoftTimeLimitExceeded):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def register_tasks(app: Celery, runner_factory: Any) -> None:
    """Add the chunk task to `app`; `runner_factory()` gives the process's ChunkRunner."""

    class ChunkTask(Task):
        def on_failure(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            # A task that fails for good (retries spent, time limit, a bug) is acknowledged:
            # its job is marked failed here so that it never stays "running" forever.
            job_id, chunk = args[0], args[1]
            code = "chunk_timeout" if isinstance(exc, SoftTimeLimitExceeded) else "chunk_failed"
            try:
                runner_factory().fail(job_id, code, f"chunk {chunk} could not be predicted")
            except Exception:
                logger.exception("could not mark job %s failed", job_id)

    margin = 2.0
    budget = float(app.conf.task_soft_time_limit or app.conf.task_time_limit or 60) - margin

    @app.task(
        base=ChunkTask,
        name=PREDICT_CHUNK,
        bind=True,
        autoretry_for=(RegistryUnavailable,),
        retry_backoff=True,
        retry_backoff_max=30,
        max_retries=8,
    )
    def predict_chunk(self: Task, job_id: str, chunk: int) -> str:
        deadline = time.monotonic() + budget
        attempt = int(self.request.retries or 0)
        return str(runner_factory().run_until(job_id, chunk, attempt, deadline))
