"""The job client: submit, read, list and cancel batch jobs. The only part the gateway imports.

It writes the job's chunks (through the ChunkStore) and record to the durable Redis and sends
one task per chunk by name; it never imports the tasks or a model. Every method is synchronous
(the gateway calls them in threads). Its errors are in jobs.errors.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kombu.exceptions import OperationalError
from redis import Redis
from redis.exceptions import RedisError

from jobs.celery_app import PREDICT_CHUNK, create_celery_app
from jobs.chunks import ResultChunk, Rows
from jobs.errors import (
    JobNotFinished,
    JobNotFound,
    JobResultsDeleted,
    QueueUnavailable,
    unavailable_on_redis_error,
)
from jobs.idempotency import Idempotency, IdempotencyClaim
from jobs.owner_usage import Usage
from jobs.record import FAILED, SUCCEEDED, JobRecord, new_job_id
from jobs.store import JobStore
from kernel.settings import SharedSettings

logger = logging.getLogger(__name__)

#: How long a submission's running-job slot is held before its record exists: far longer than
#: storing the largest upload the caps allow takes (MODELGATE_MAX_STORED_BYTES_PER_OWNER, 1 GiB
#: by default, is read and stored in minutes), so that a gateway that dies mid-upload blocks
#: the slot this long at most, not for the job TTL. Once the upload is stored, the slot is held
#: until the job's `expires`; an upload slower than this is not counted twice (see _submit).
PROVISIONAL_SECONDS = 3600


class JobClient:
    """Submit and read jobs for one owner at a time; the owner check lives here."""

    def __init__(self, settings: SharedSettings) -> None:
        self.settings = settings
        timeout = max(settings.redis_timeout_seconds, 1.0)
        self.redis = Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=timeout
        )
        self.store = JobStore(
            self.redis,
            settings.key_prefix,
            settings.job_ttl_seconds,
            settings.chunk_size,
            results_ttl_seconds=settings.job_results_ttl_seconds,
        )
        # Kept as long as the job may be: a retry finds the job while it exists.
        self.idempotency = Idempotency(
            self.redis, self.store, settings.key_prefix, self.store.lifetime
        )
        #: The per-owner caps: running-job slots, stored rows, stored bytes.
        self.caps = Usage(
            settings.max_running_jobs_per_owner,
            settings.max_stored_rows_per_owner,
            settings.max_stored_bytes_per_owner,
        )
        self.celery = create_celery_app(settings)

    def close(self) -> None:
        self.redis.close()

    # -- submit ----------------------------------------------------------------------------

    def claim(self, owner: str, key: str, body_sha256: str) -> JobRecord | IdempotencyClaim | None:
        """For an Idempotency-Key: the job it made, the claim to make it (pass it to `submit`),
        or None while another request makes it (look again shortly)."""
        with unavailable_on_redis_error():
            return self.idempotency.claim(owner, key, body_sha256)

    def submit(
        self,
        *,
        owner: str,
        model: str,
        version: int,
        id_columns: list[str],
        classes: list[Any] | None,
        chunks: Iterable[tuple[Rows, Rows | None]],
        idempotency: IdempotencyClaim | None = None,
    ) -> JobRecord:
        """Store every chunk, then the record, then enqueue one task per chunk.

        The job takes one of the owner's running-job slots before its first chunk is read, and
        its stored rows and bytes once the last is stored, each checked against the caps in the
        same step (JobLimitExceeded past one), so that concurrent submissions never pass them;
        every chunk stored is checked too, so that an upload too large is refused early.
        `chunks` validates while it is read; if it (or a cap) raises, what was stored is
        deleted, the share freed, and nothing is queued. With a claim, the job is remembered
        under its key once queued, and the claim is released without a job if anything fails.
        """
        try:
            record = self._submit(owner, model, version, id_columns, classes, chunks)
            if idempotency is not None:
                with unavailable_on_redis_error():
                    self.idempotency.remember(idempotency, record.id)
        except BaseException:
            if idempotency is not None:
                with contextlib.suppress(RedisError):  # else it expires (CLAIM_SECONDS)
                    self.idempotency.release(idempotency)
            raise
        return record

    def _submit(
        self,
        owner: str,
        model: str,
        version: int,
        id_columns: list[str],
        classes: list[Any] | None,
        chunks: Iterable[tuple[Rows, Rows | None]],
    ) -> JobRecord:
        job_id = new_job_id()
        # The job's data, its record included, expires this long after its submission began.
        expires = time.time() + self.settings.job_ttl_seconds
        provisional = min(time.time() + PROVISIONAL_SECONDS, expires)
        usage, caps = self.store.usage, self.caps
        count = rows = size = 0
        try:
            with unavailable_on_redis_error():
                usage.reserve(owner, job_id, caps, provisional, slot=True)
                for chunk_rows, ids in chunks:
                    size += self.store.chunks.write_input(job_id, count, chunk_rows, ids, expires)
                    count += 1
                    rows += len(chunk_rows)
                    # Only looked at: shares taken half-way would let concurrent uploads at the
                    # cap refuse each other, all of them.
                    usage.reserve(
                        owner, job_id, caps, expires, slot=True, rows=rows, size=size, check=True
                    )
                # The slot again (taken once): an upload slower than PROVISIONAL_SECONDS lost
                # it when its share was dropped, and takes it back here, or is refused if
                # others took it meanwhile. Its share now ends at `expires`.
                usage.reserve(owner, job_id, caps, expires, slot=True, rows=rows, size=size)
                record = JobRecord(
                    job_id,
                    owner,
                    model,
                    version,
                    rows,
                    count,
                    id_columns=id_columns,
                    classes=classes,
                    expires=expires,
                )
                self.store.create(record)
        except BaseException:
            self._discard_quietly(owner, job_id, count + 1)
            raise
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

    def _discard_quietly(self, owner: str, job_id: str, chunks: int) -> None:
        try:
            self.store.chunks.delete(job_id, chunks)
            self.store.usage.release(owner, job_id)
        except RedisError:
            # Both expire with the job's TTL: the share is dropped once its data expired.
            logger.warning("could not delete the chunks of refused job %s", job_id)

    # -- read ------------------------------------------------------------------------------

    def get(self, job_id: str, owner: str | None) -> JobRecord:
        """The job, if `owner` owns it (None: an admin, who may see every job)."""
        with unavailable_on_redis_error():
            record = self.store.get(job_id) if _plausible_id(job_id) else None
        if record is None or (owner is not None and record.owner != owner):
            raise JobNotFound("no such job")
        return record

    def status(self, record: JobRecord) -> dict[str, Any]:
        with unavailable_on_redis_error():
            return record.public(self.store.rows_done(record))

    def list_jobs(self, owner: str | None, limit: int = 100) -> list[dict[str, Any]]:
        with unavailable_on_redis_error():
            records = [self.store.get(i) for i in self.store.list_ids(owner, limit)]
            return [self.status(r) for r in records if r is not None]

    def results(self, record: JobRecord) -> Iterator[ResultChunk]:
        if record.status != SUCCEEDED:
            raise JobNotFinished(f"the job is {record.status}; results come once it succeeded")
        if record.deleted is not None:
            raise JobResultsDeleted("the job succeeded, and its results were deleted since")
        if record.results_expired(time.time()):
            raise JobResultsDeleted(
                "the job succeeded, and its results expired since (job_results_ttl_seconds)"
            )
        with unavailable_on_redis_error():
            # Checked before the stream starts: a result missing once it has would break it.
            if not self.store.chunks.has_results(record.id, record.chunks):
                raise JobResultsDeleted("the job succeeded, and some of its results are gone")
        return self.store.chunks.iter_results(record.id, record.chunks)

    def cancel(self, record: JobRecord) -> JobRecord:
        """Cancel the job if it is still active, and delete its inputs and results either way;
        a finished job keeps its status."""
        with unavailable_on_redis_error():
            return self.store.cancel(record)


def _plausible_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)
