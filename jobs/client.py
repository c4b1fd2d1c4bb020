"""The job client: submit, read, list and cancel batch jobs. The only part the gateway imports.

It writes the job's chunks and record to the durable Redis and sends one task per chunk by
name; it never imports the tasks or a model. Every method is synchronous (the gateway calls
them in threads).

    ModelgateError
    ├── JobNotFound       job_not_found       404  (also another owner's job)
    ├── JobNotFinished    job_not_finished    409
    ├── JobLimitExceeded  job_limit_exceeded  429  (per-owner caps)
    ├── IdempotencyConflict idempotency_conflict 422
    └── QueueUnavailable  queue_unavailable   503
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from kombu.exceptions import OperationalError
from redis import Redis
from redis.exceptions import RedisError

from jobs.celery_app import PREDICT_CHUNK, create_celery_app, queue_key
from jobs.store import FAILED, JobRecord, JobStore, new_job_id
from kernel.errors import ModelgateError
from kernel.settings import SharedSettings

logger = logging.getLogger(__name__)


class JobNotFound(ModelgateError):
    code = "job_not_found"


class JobNotFinished(ModelgateError):
    code = "job_not_finished"


class JobLimitExceeded(ModelgateError):
    code = "job_limit_exceeded"


class IdempotencyConflict(ModelgateError):
    code = "idempotency_conflict"


class QueueUnavailable(ModelgateError):
    code = "queue_unavailable"


class JobClient:
    """Submit and read jobs for one owner at a time; the owner check lives here."""

    def __init__(self, settings: SharedSettings) -> None:
        self.settings = settings
        timeout = max(settings.redis_timeout_seconds, 1.0)
        self.redis = Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=timeout
        )
        self.store = JobStore(
            self.redis, settings.key_prefix, settings.job_ttl_seconds, settings.chunk_size
        )
        self.celery = create_celery_app(settings)

    def close(self) -> None:
        self.redis.close()

    # -- submit ----------------------------------------------------------------------------

    def check_owner_caps(self, owner: str, more_rows: int = 0) -> None:
        with _unavailable_on_redis_error():
            active, stored = self.store.owner_usage(owner)
        if active >= self.settings.max_running_jobs_per_owner:
            raise JobLimitExceeded(
                f"{active} jobs are queued or running for this owner; "
                f"the limit is {self.settings.max_running_jobs_per_owner}"
            )
        if stored + more_rows > self.settings.max_stored_rows_per_owner:
            raise JobLimitExceeded(
                f"this owner stores {stored} rows in unexpired jobs; with {more_rows} more it "
                f"would pass the limit of {self.settings.max_stored_rows_per_owner}"
            )

    def submit(
        self,
        *,
        owner: str,
        model: str,
        version: int,
        id_columns: list[str],
        classes: list[Any] | None,
        chunks: Iterable[tuple[list[list[Any]], list[list[Any]] | None]],
    ) -> JobRecord:
        """Store every chunk, then the record, then enqueue one task per chunk.

        `chunks` validates while it is read; if it raises, what was stored is deleted and
        nothing is queued.
        """
        self.check_owner_caps(owner)
        job_id = new_job_id()
        count = rows = 0
        try:
            with _unavailable_on_redis_error():
                for chunk_rows, ids in chunks:
                    self.store.put_chunk(job_id, count, chunk_rows, ids)
                    count += 1
                    rows += len(chunk_rows)
            self.check_owner_caps(owner, rows)
        except BaseException:
            self._discard_quietly(job_id, count + 1)
            raise
        record = JobRecord(
            job_id, owner, model, version, rows, count, id_columns=id_columns, classes=classes
        )
        with _unavailable_on_redis_error():
            self.store.create(record)
        self.enqueue(record)
        logger.info(
            "job submitted",
            extra={"job_id": job_id, "owner": owner, "model": model, "model_version": version},
        )
        return record

    def enqueue(self, record: JobRecord) -> None:
        try:
            with self.celery.producer_or_acquire() as producer:
                for n in range(record.chunks):
                    self.celery.send_task(
                        PREDICT_CHUNK, args=[record.id, n], producer=producer, retry=False
                    )
        except (OperationalError, RedisError, OSError) as exc:
            logger.error("enqueue failed: %s", type(exc).__name__, extra={"job_id": record.id})
            with contextlib.suppress(RedisError):
                self.store.update(
                    record.id,
                    status=FAILED,
                    error_code="queue_unavailable",
                    error_message="the job could not be queued",
                )
            raise QueueUnavailable("the job queue is unavailable; retry shortly") from None

    def _discard_quietly(self, job_id: str, chunks: int) -> None:
        try:
            self.store.discard_data(job_id, chunks)
        except RedisError:
            logger.warning("could not delete the chunks of refused job %s", job_id)

    # -- idempotency -----------------------------------------------------------------------

    def _idempotency_key(self, owner: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self.settings.key_prefix}idem:{owner}:{digest}"

    def remembered(self, owner: str, key: str, body_sha256: str) -> JobRecord | None:
        """The job an earlier submission with this key made, if the body is the same."""
        with _unavailable_on_redis_error():
            raw = self.redis.get(self._idempotency_key(owner, key))
        if raw is None:
            return None
        saved = orjson.loads(raw)
        if saved["body"] != body_sha256:
            raise IdempotencyConflict("this Idempotency-Key was used with a different body")
        record = self.store.get(saved["job_id"])
        return record

    def remember(self, owner: str, key: str, body_sha256: str, job_id: str) -> None:
        value = orjson.dumps({"job_id": job_id, "body": body_sha256})
        with _unavailable_on_redis_error():
            self.redis.set(
                self._idempotency_key(owner, key), value, ex=self.settings.job_ttl_seconds
            )

    # -- read ------------------------------------------------------------------------------

    def get(self, job_id: str, owner: str | None) -> JobRecord:
        """The job, if `owner` owns it (None: an admin, who may see every job)."""
        with _unavailable_on_redis_error():
            record = self.store.get(job_id) if _plausible_id(job_id) else None
        if record is None or (owner is not None and record.owner != owner):
            raise JobNotFound("no such job")
        return record

    def status(self, record: JobRecord) -> dict[str, Any]:
        with _unavailable_on_redis_error():
            return record.public(self.store.rows_done(record))

    def list_jobs(self, owner: str | None, limit: int = 100) -> list[dict[str, Any]]:
        with _unavailable_on_redis_error():
            records = [self.store.get(i) for i in self.store.list_ids(owner, limit)]
            return [self.status(r) for r in records if r is not None]

    def results(self, record: JobRecord) -> Iterator[tuple[list[Any] | None, dict[str, Any]]]:
        if record.status != "succeeded":
            raise JobNotFinished(f"the job is {record.status}; results come once it succeeded")
        return self.store.iter_results(record)

    def cancel(self, record: JobRecord) -> JobRecord:
        with _unavailable_on_redis_error():
            return self.store.cancel(record)

    def queue_length(self) -> int:
        return int(self.redis.llen(queue_key(self.settings)))


def _plausible_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


class _unavailable_on_redis_error:
    """Turn a Redis outage into QueueUnavailable (503), never a 500."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None and isinstance(exc, RedisError | OSError):
            raise QueueUnavailable("the job store is unavailable; retry shortly") from exc
