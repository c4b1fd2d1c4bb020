"""The gRPC server of the gateway (MODELGATE_GRPC_PORT): Open Inference Protocol V2 and the
`grpc.health.v1` health service, in `grpc.aio` on the event loop that serves HTTP.

Started and stopped by the app's lifespan (gateway/app.py), which uvicorn runs on its own
loop, so every gRPC call shares the HTTP requests' loop, state, keys, limits and data plane.
Health follows /readyz: SERVING for "" and `inference.GRPCInferenceService` once the models
and keys are loaded, NOT_SERVING for good as soon as a stop signal starts the drain (the
drain only sets a flag, in a signal handler: a task looks at it every HEALTH_POLL_SECONDS).
Calls are still served while the gateway drains; the lifespan's end stops the server,
letting calls in flight finish for the graceful shutdown period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.health import Drain
from gateway.protocols.grpc_v2 import InferenceServicer, loop_name
from gateway.protocols.v2_grpc.grpc_predict_v2_pb2_grpc import (
    add_GRPCInferenceServiceServicer_to_server,
)
from gateway.state import GatewayState

logger = logging.getLogger(__name__)

#: The V2 service's full name, as health checks ask for it.
SERVICE = "inference.GRPCInferenceService"
#: How often the health task compares readiness and the drain with what it last published.
HEALTH_POLL_SECONDS = 0.1


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """One `grpc.aio` server: build and start it on the running loop, stop it with a grace."""

    def __init__(self, state: GatewayState, drain: Drain, server_version: str) -> None:
        self.state = state
        self.drain = drain
        self.servicer = InferenceServicer(state, drain, server_version)
        self.health = health.aio.HealthServicer()
        settings = state.settings
        self.server = grpc.aio.server(
            options=[
                # A larger message is refused by grpc itself (RESOURCE_EXHAUSTED).
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                # A port already in use fails the start, as the HTTP port does.
                ("grpc.so_reuseport", 0),
            ]
        )
        add_GRPCInferenceServiceServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.address = listen_address(settings.grpc_host or settings.host, settings.grpc_port or 0)
        self.port: int | None = None
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._publish(False)  # the servicer says SERVING for "" until told otherwise
        self.port = self.server.add_insecure_port(self.address)
        await self.server.start()
        self._task = asyncio.create_task(self._follow(), name="grpc-health")
        loop = asyncio.get_running_loop()
        logger.info(
            "gRPC server started",
            extra={
                "address": self.address,
                "grpc_port": self.port,
                "loop": loop_name(loop),
                "loop_id": id(loop),
            },
        )

    async def _follow(self) -> None:
        while True:
            if self.drain.draining:
                # NOT_SERVING for good: load balancers and probes stop sending first.
                await self.health.enter_graceful_shutdown()
                logger.info("stop signal: gRPC health is NOT_SERVING")
                return
            try:
                await self._publish(self.servicer.ready())
            except Exception:  # the loop must outlive any surprise, or health freezes
                logger.exception("gRPC health update failed")
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    async def _publish(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE):
            await self.health.set(service, status)

    async def stop(self, grace: float) -> None:
        """NOT_SERVING, then no new calls; calls in flight get `grace` seconds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        logger.info("gRPC server stopped")
