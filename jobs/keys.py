"""The Redis key layout of batch jobs, in one place for every module that reads or writes it.

Keys (all under the key prefix P; a job's keys expire with the job, at the time its record
gives as `expires`: `job_ttl_seconds` after its submission began, or once it succeeded
`job_results_ttl_seconds` after that, the record itself an hour later):

    P job:{id}              hash: the JobRecord (jobs.record), each field orjson-encoded
    P job:{id}:in:{n}       chunk n's rows (orjson; never pickle), deleted once the chunk is
                            scored                                           RedisChunkStore
    P job:{id}:ids:{n}      chunk n's pass-through ids                       RedisChunkStore
    P job:{id}:out:{n}      chunk n's predictions and probabilities, written once (SET NX) and
                            only while the job is active                     RedisChunkStore
    P job:{id}:done         set of finished chunk numbers (SADD: a redelivery changes nothing);
                            deleted once the job succeeded
    P job:{id}:deliveries   hash chunk -> deliveries, to fail a chunk that keeps crashing;
                            deleted once the job stopped
    P jobs                  sorted set of every job id by creation time (admin listing)
    P owner:{owner}:jobs    sorted set of the owner's job ids by creation time (listing)
    P owner:{owner}:usage   hash: the owner's running-job slots, rows and bytes (the sums of
                            its shares)                                      jobs.owner_usage
    P owner:{owner}:shares  hash job id -> "slot rows bytes": what each job holds of the caps
    P owner:{owner}:expiry  sorted set of job ids by when their data expires (ms), to drop
                            the shares Redis expired the data of
    P owner:{owner}:slots   set of the job ids holding a running-job slot, whose records a
                            refusal for a slot checks (a job moved by an older version)
    P idem:{owner}:{sha}    the job an Idempotency-Key made: {"job_id", "body"} (sha of the key)
    P idem:{owner}:{sha}:claim
                            the token of the one request creating that job (a redis-py Lock)
"""

from __future__ import annotations

import hashlib


def job_key(prefix: str, job_id: str, part: str = "") -> str:
    """The record's key, or with `part` (e.g. `out:3`) one of the job's other keys."""
    return f"{prefix}job:{job_id}{':' + part if part else ''}"


def owner_key(prefix: str, owner: str) -> str:
    """The owner's job ids by creation time (the listing)."""
    return f"{prefix}owner:{owner}:jobs"


def owner_usage_key(prefix: str, owner: str) -> str:
    """The owner's usage counters: slots, rows, bytes (jobs.owner_usage)."""
    return f"{prefix}owner:{owner}:usage"


def owner_shares_key(prefix: str, owner: str) -> str:
    """Each of the owner's jobs' share of its usage."""
    return f"{prefix}owner:{owner}:shares"


def owner_expiry_key(prefix: str, owner: str) -> str:
    """The owner's job ids by when their data expires, in milliseconds."""
    return f"{prefix}owner:{owner}:expiry"


def owner_slots_key(prefix: str, owner: str) -> str:
    """The owner's jobs holding a running-job slot."""
    return f"{prefix}owner:{owner}:slots"


def all_jobs_key(prefix: str) -> str:
    """Every job id by creation time (the admin listing)."""
    return f"{prefix}jobs"


def idempotency_key(prefix: str, owner: str, key: str) -> str:
    """Where the job an owner's Idempotency-Key made is remembered (`:claim` beside it)."""
    # Hashed: the client chooses the key, and it must not choose the shape of ours.
    return f"{prefix}idem:{owner}:{hashlib.sha256(key.encode()).hexdigest()}"
