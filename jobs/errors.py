"""The errors of the job domain; each `code` is mapped to an HTTP status by gateway.http.errors.

ModelgateError
├── JobNotFound            job_not_found            404  (also another owner's job)
├── JobNotFinished         job_not_finished         409
├── JobResultsDeleted      job_results_deleted      410  (DELETE of a succeeded job)
├── JobLimitExceeded       job_limit_exceeded       429  (per-owner caps)
├── IdempotencyConflict    idempotency_conflict     422
├── IdempotencyInProgress  idempotency_in_progress  409  (the first submission still runs)
└── QueueUnavailable       queue_unavailable        503
"""

from __future__ import annotations

from types import TracebackType

from redis.exceptions import RedisError

from kernel.errors import ModelgateError


class JobNotFound(ModelgateError):
    code = "job_not_found"


class JobNotFinished(ModelgateError):
    code = "job_not_finished"


class JobResultsDeleted(ModelgateError):
    code = "job_results_deleted"


class JobLimitExceeded(ModelgateError):
    code = "job_limit_exceeded"


class IdempotencyConflict(ModelgateError):
    code = "idempotency_conflict"


class IdempotencyInProgress(ModelgateError):
    code = "idempotency_in_progress"


class QueueUnavailable(ModelgateError):
    code = "queue_unavailable"


class unavailable_on_redis_error:
    """Turn a Redis outage into QueueUnavailable (503), never a 500."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and isinstance(exc, RedisError | OSError):
            raise QueueUnavailable("the job store is unavailable; retry shortly") from exc
