"""The worker's broker transport: kombu's Redis transport, mended to survive a broker restart.

Two faults of kombu 5.7.0 when Redis goes away under a consuming worker, both mended here
(docs/operations/kombu-redis-restart.md has the diagnosis and the reproductions):

- The worker exits. When the connection breaks while a BRPOP is pending, the task channel's
  `close()` first reads that BRPOP's reply, and the ConnectionError of the read leaves
  `close()` before the channel is closed. Celery closes the connection again a moment later,
  after kombu detached the transport from it, and that second close raises AttributeError
  ("'NoneType' object has no attribute 'hostname'"): "Unrecoverable error". Here a broken
  read during `close()` ends the read as an empty reply does, so the first close completes.
- A message is lost. BRPOP takes it off the queue and the consumer records it as
  unacknowledged in a second command; when Redis went away in between, it is in neither
  place, only in this process. Here it is kept, and queued again by the next channel that
  connects (Celery's reconnect makes one), at the head of its queue.
- The worker stops consuming. An ack (or reject) that cannot reach Redis keeps its prefetch
  slot for good; once every slot is kept, no BRPOP is sent again and, unless another socket
  notices the outage and Celery reconnects, the worker idles forever. Here the slot is given
  back: the message's unacked record stays in Redis, restored after the visibility timeout.
"""

from __future__ import annotations

import logging
import os
from queue import Empty
from typing import Any

from celery import Celery
from kombu.transport import redis, virtual

logger = logging.getLogger(__name__)

#: Where Celery finds the transport (`broker_transport`).
TRANSPORT = "worker.broker:Transport"

#: Messages taken off a queue but never recorded as unacknowledged: (payload, exchange,
#: routing key). This process's own: a forked pool process starts with none.
_popped: list[tuple[Any, str, str]] = []
os.register_at_fork(after_in_child=_popped.clear)


class QoS(redis.QoS):
    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except self.channel.connection_errors:
            virtual.QoS.ack(self, delivery_tag)  # the slot only
            raise

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except self.channel.connection_errors:
            virtual.QoS.ack(self, delivery_tag)  # the slot only
            raise

    def append(self, message: Any, delivery_tag: Any) -> None:
        try:
            super().append(message, delivery_tag)
        except self.channel.connection_errors:
            info = message.delivery_info
            _popped.append((message._raw, info["exchange"], info["routing_key"]))
            logger.warning("broker lost before a message was recorded; it will be queued again")
            raise


class Channel(redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # connected: it has pinged Redis
        try:
            while _popped:
                payload, exchange, routing_key = _popped[0]
                with self.conn_or_acquire() as client, client.pipeline() as pipe:
                    self._do_restore_message(payload, exchange, routing_key, pipe)
                    pipe.execute()
                _popped.pop(0)
                logger.warning("queued again a message the broker lost in flight")
        except self.connection_errors:
            pass  # the next channel tries again

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)
        except self.connection_errors:
            if not self._closing:
                raise
            # The channel is being closed: its connection is gone, and so is the reply.
            raise Empty() from None


class Transport(redis.Transport):
    Channel = Channel


def use_transport(app: Celery, broker_url: str) -> None:
    """Make `app` connect with this transport when its broker is a plain Redis URL (the kombu
    aliases `redis` and `rediss` name the transport this one mends; Sentinel's is another)."""
    if broker_url.partition("://")[0] in ("redis", "rediss"):
        app.conf.broker_transport = TRANSPORT
