"""The Celery app factory: JSON only, late acks, one prefetch, short visibility, key prefix.

Both the worker (which adds the tasks) and the gateway's job client (which only sends them by
name) build their app here, so the broker settings can never differ between the two.
"""

from __future__ import annotations

from celery import Celery

from kernel.settings import SharedSettings

#: The one task: predict chunk n of a job. Messages carry ids, never data.
PREDICT_CHUNK = "modelgate.predict_chunk"
QUEUE = "modelgate"


def queue_key(settings: SharedSettings) -> str:
    """The Redis list whose length is the backlog (what KEDA scales workers on)."""
    return f"{settings.key_prefix}{QUEUE}"


def create_celery_app(settings: SharedSettings) -> Celery:
    app = Celery("modelgate", broker=settings.redis_url, set_as_current=False)
    timeout = max(settings.redis_timeout_seconds, 1.0)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=max(1, settings.task_time_limit_seconds - 5),
        # Measured: with this on, a broker restart lost running chunks for good.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=timeout,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "unacked_restore_interval": settings.unacked_restore_interval_seconds,
            "unacked_restore_throttle": 1,
            "global_keyprefix": settings.key_prefix,
            "socket_timeout": 10,
            "socket_connect_timeout": timeout,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
