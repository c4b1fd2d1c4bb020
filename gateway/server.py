"""The gateway's uvicorn server, which drains before it stops.

First SIGTERM/SIGINT: /readyz answers 503 "draining" and every response carries
`Connection: close` (so proxies holding keep-alive connections open new ones elsewhere), while
requests are still served for `drain_seconds`. Then uvicorn's graceful shutdown: the listener
closes, in-flight requests finish (up to `graceful_shutdown_seconds`), the lifespan closes.
A second signal stops at once, without waiting for requests or the lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import FrameType
from typing import Any

import uvicorn

from gateway.health import Drain

logger = logging.getLogger(__name__)

CONNECTION_CLOSE = (b"connection", b"close")
#: Longest wait, once the listener is closed, for open connections to read their request.
REQUEST_WAIT_SECONDS = 1.0


def _awaits_request(connection: Any) -> bool:
    """An open connection of uvicorn's (either HTTP implementation) with no request read yet."""
    return getattr(connection, "cycle", None) is None and not connection.transport.is_closing()


class DrainingServer(uvicorn.Server):
    """`uvicorn.Server` whose first stop signal starts a drain instead of closing the port."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds
        self._drain_logged = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: it only sets flags (logging here could interleave with a log line
        # being written); on_tick and shutdown act and log.
        self._captured_signals.append(sig)  # uvicorn re-raises them once stopped: exit status
        if self.drain.draining or self.should_exit:
            self.should_exit = True
            self.force_exit = True
            return
        self.drain.begin()
        self._close_connections_after_responses()
        if not self.started or self.drain_seconds <= 0:
            # Nothing to drain (still starting, or told not to wait): stop gracefully now.
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and not self._drain_logged:
            self._drain_logged = True
            if self.should_exit:
                logger.info("stop signal: no drain", extra={"drain_seconds": self.drain_seconds})
            else:
                logger.info(
                    "stop signal: draining (/readyz answers 503, requests still served)",
                    extra={"drain_seconds": self.drain_seconds},
                )
        if (
            self.drain.draining
            and not self.should_exit
            and self.drain.elapsed() >= self.drain_seconds
        ):
            logger.info("drain over: closing the listener")
            self.should_exit = True
        should_exit = await super().on_tick(counter)
        if self.drain.draining:
            # uvicorn rebuilds the default headers every second: keep ours in.
            self._close_connections_after_responses()
        return should_exit

    def _close_connections_after_responses(self) -> None:
        """Every response from now on says `Connection: close` (uvicorn then closes it)."""
        headers = self.server_state.default_headers
        if CONNECTION_CLOSE not in headers:
            self.server_state.default_headers = [*headers, CONNECTION_CLOSE]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.force_exit:
            logger.warning("second stop signal: stopping without waiting for requests")
        else:
            adopted = await self._stop_listening()
            logger.info(
                "waiting for in-flight requests",
                extra={
                    "connections": len(self.server_state.connections),
                    "accepted_at_close": adopted,
                    "timeout_seconds": self.config.timeout_graceful_shutdown,
                },
            )
        await super().shutdown(sockets)  # closes the listeners again: a no-op
        logger.info("gateway stopped", extra={"forced": self.force_exit})

    async def _stop_listening(self) -> int:
        """Close the listening sockets without resetting a connection a proxy already sent its
        request on (it could not retry a POST elsewhere); returns how many it accepted itself.

        Closing a listener resets the connections the kernel has accepted for it but the server
        has not yet, so those are accepted first; between the last accept and the close nothing
        is awaited, and any later connection is refused (which a proxy retries on another
        server). Then every open connection gets a moment to read its request: uvicorn's
        shutdown closes a connection with no request yet, and closing one with unread bytes
        resets it too."""
        loop = asyncio.get_running_loop()
        pending: list[socket.socket] = []
        for server in self.servers:
            for listener in server.sockets:
                with socket.socket(fileno=os.dup(listener.fileno())) as queue:
                    queue.setblocking(False)
                    while True:
                        try:
                            pending.append(queue.accept()[0])
                        except (BlockingIOError, InterruptedError):
                            break
            server.close()
        for conn in pending:
            conn.setblocking(False)
            await loop.connect_accepted_socket(self._new_protocol, conn)
        deadline = loop.time() + REQUEST_WAIT_SECONDS
        while loop.time() < deadline and any(map(_awaits_request, self.server_state.connections)):
            await asyncio.sleep(0.01)
        return len(pending)

    def _new_protocol(self) -> asyncio.Protocol:
        """A connection handler like the ones uvicorn's listener creates."""
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol
