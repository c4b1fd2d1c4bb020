"""Open Inference Protocol V2 over gRPC: the `inference.GRPCInferenceService` servicer.

The same keys, limits and data plane as every other protocol: the key comes from the call
metadata (`x-api-key` or `authorization: Bearer`), model metadata and readiness count as
`reads`, inference as `predict`; the server probes (live, ready, metadata) need no key. An
answer carries `x-request-id` (and, for a model, `x-model-version`) in its initial metadata;
a refusal carries `x-request-id` (and `retry-after` where HTTP sends `Retry-After`) in its
trailing metadata, with the status of its error code (grpc_messages.status_of) and the
error's message, which never holds a value sent. The server itself is built in
gateway/grpc_server.py, on the event loop that serves HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from starlette.datastructures import Headers

from gateway.dataplane.budget import owner_var
from gateway.dataplane.plane import Caller, PredictCall
from gateway.deps import authenticate
from gateway.guard.keys import ApiKey
from gateway.health import Drain
from gateway.http.addresses import client_address, grpc_peer_host, parse_trusted
from gateway.http.errors import STATUS_BY_CODE, request_id_var
from gateway.metrics import GRPC_REQUEST_SECONDS, GRPC_REQUESTS
from gateway.protocols.calls import MAX_ROUTE_KEY
from gateway.protocols.grpc_messages import (
    content_type_of,
    error_trailers,
    headers_of,
    infer_response,
    metadata_response,
    request_id_of,
    status_of,
    tensors_in,
)
from gateway.protocols.v1 import MAX_VERSION
from gateway.protocols.v2_grpc import grpc_predict_v2_pb2 as pb
from gateway.protocols.v2_grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer
from gateway.protocols.v2_outputs import model_metadata, output_tensors
from gateway.protocols.v2_ready import ready_version
from gateway.protocols.v2_tensors import rows_of
from gateway.state import GatewayState
from kernel.errors import InvalidInput, ModelgateError, VersionNotFound
from kernel.logs import log_fields

logger = logging.getLogger(__name__)
access = logging.getLogger("gateway.access")

Reply = TypeVar("Reply")
#: What a call does once its metadata is read: (response, response metadata) from the headers.
Work = Callable[[Headers, dict[str, Any]], Awaitable[Reply]]


def parse_model_version(raw: str) -> int | None:
    """`model_version`: empty (the served version) or a positive integer, as /v1's `version`."""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise InvalidInput("'model_version' must be a positive integer")
    if int(raw) > MAX_VERSION:
        raise VersionNotFound(f"no version {raw[:12]}")
    return int(raw)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


class InferenceServicer(GRPCInferenceServiceServicer):
    """Built in the lifespan, on the loop that serves HTTP (`loop`); every call runs on it."""

    def __init__(self, state: GatewayState, drain: Drain, server_version: str) -> None:
        self.state = state
        self.drain = drain
        self.server_version = server_version
        self.loop = asyncio.get_running_loop()
        self.trusted = parse_trusted(state.settings.trusted_proxies)
        self._loop_reported = False

    # -- probes: no key ----------------------------------------------------------------------

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        async def live(headers: Headers, out: dict[str, Any]) -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._answer("ServerLive", context, live)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        async def ready(headers: Headers, out: dict[str, Any]) -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self.ready())

        return await self._answer("ServerReady", context, ready)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        async def metadata(headers: Headers, out: dict[str, Any]) -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(name="modelgate", version=self.server_version)

        return await self._answer("ServerMetadata", context, metadata)

    def ready(self) -> bool:
        """What /readyz says: models and keys loaded, and no drain."""
        state = self.state
        return state.models.ready and state.keys.loaded_at is not None and not self.drain.draining

    # -- models: a key ----------------------------------------------------------------------

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> Any:
        async def model_ready(headers: Headers, out: dict[str, Any]) -> pb.ModelReadyResponse:
            await self._authorize(headers, "reads", out)
            version = await ready_version(
                self.state.models, request.name, parse_model_version(request.version)
            )
            ready = version is not None
            out["version"] = version
            return pb.ModelReadyResponse(ready=ready)

        return await self._answer("ModelReady", context, model_ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> Any:
        async def metadata(headers: Headers, out: dict[str, Any]) -> pb.ModelMetadataResponse:
            await self._authorize(headers, "reads", out)
            models = self.state.models
            model = await models.resolve(request.name, parse_model_version(request.version))
            out["model"], out["version"] = model.name, model.version
            versions = [m.version for m in models.loaded_versions(model.name)]
            return metadata_response(model_metadata(model, versions))

        return await self._answer("ModelMetadata", context, metadata)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> Any:
        async def infer(headers: Headers, out: dict[str, Any]) -> pb.ModelInferResponse:
            key = await self._authorize(headers, "predict", out)
            tensors, raw = tensors_in(request)
            kind, rows = rows_of(
                tensors, content_type_of(request.parameters), self.state.plane.max_rows
            )
            route_key = headers.get("x-route-key")
            call = PredictCall(
                model=request.model_name,
                kind=kind,
                rows=rows,
                version=parse_model_version(request.model_version),
                caller=Caller(key.id, key.owner, route_key[:MAX_ROUTE_KEY] if route_key else None),
                request_id=request_id_var.get(),
                protocol="v2-grpc",
            )
            answer = await self.state.plane.predict(call)
            model = answer.model
            out["model"], out["version"] = model.name, model.version
            wanted = [o.name for o in request.outputs] or None
            outputs = output_tensors(model, answer.prediction, wanted)
            return infer_response(request, model.name, model.version, outputs, raw)

        return await self._answer("ModelInfer", context, infer)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        await self._unimplemented(context)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        await self._unimplemented(context)

    async def _unimplemented(self, context: Any) -> None:
        request_id = request_id_of(headers_of(context.invocation_metadata()))
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "the registry's aliases decide what is served",
            trailing_metadata=(("x-request-id", request_id),),
        )

    # -- every call ------------------------------------------------------------------------

    async def _authorize(self, headers: Headers, kind: str, out: dict[str, Any]) -> ApiKey:
        """Authenticate the key (the `predict` scope, as the REST routes), count `kind`."""
        key = await authenticate(self.state, headers, "predict", out["client"])
        out["api_key_id"], out["owner"] = key.id, key.owner
        owner_var.set(key.owner)  # each call is a task: the owner stays this call's
        decision = await self.state.limiter.check(kind, key)
        out["metadata"] = [(name.lower(), value) for name, value in decision.headers.items()]
        return key

    async def _answer(self, method: str, context: Any, work: Work[Reply]) -> Reply:
        """Run `work` with the call's request id; answer its response, or abort with the
        status of its error (outside the `try`: `abort` raises to end the call)."""
        started = time.perf_counter()
        if not self._loop_reported:
            self._report_loop()
        headers = headers_of(context.invocation_metadata())
        request_id = request_id_of(headers)
        token = request_id_var.set(request_id)  # each call is a task: its own context
        peer = grpc_peer_host(context.peer())
        out: dict[str, Any] = {
            "client": client_address(peer, headers.get("x-forwarded-for"), self.trusted)
        }
        refusal: tuple[grpc.StatusCode, str, list[tuple[str, str]]] | None = None
        try:
            response = await work(headers, out)
        except ModelgateError as exc:
            trailers = error_trailers(exc.code, getattr(exc, "headers", None))
            message = exc.message
            if exc.code not in STATUS_BY_CODE:  # as the HTTP envelope: no unmapped message
                logger.error("unmapped error code %s", exc.code)
                message = "the request failed; quote the request id"
            refusal = (status_of(exc.code), message, trailers)
        except asyncio.CancelledError:  # the client went away, or its deadline passed
            self._record(method, grpc.StatusCode.CANCELLED, started, out)
            request_id_var.reset(token)
            raise
        except Exception:
            logger.exception("unhandled error in gRPC %s", method)
            refusal = (grpc.StatusCode.INTERNAL, "the request failed; quote the request id", [])
        code = refusal[0] if refusal else grpc.StatusCode.OK
        self._record(method, code, started, out)
        request_id_var.reset(token)
        if refusal is not None:
            status, message, trailers = refusal
            await context.abort(
                status, message, trailing_metadata=(("x-request-id", request_id), *trailers)
            )
        metadata = [("x-request-id", request_id), *out.get("metadata", ())]
        if out.get("version") is not None:
            metadata.append(("x-model-version", str(out["version"])))
        await context.send_initial_metadata(tuple(metadata))
        return response

    def _record(
        self,
        method: str,
        code: grpc.StatusCode,
        started: float,
        out: dict[str, Any],
    ) -> None:
        seconds = time.perf_counter() - started
        GRPC_REQUESTS.labels(method, code.name).inc()
        GRPC_REQUEST_SECONDS.labels(method).observe(seconds)
        log_fields(
            access,
            "grpc request",
            {
                "grpc_method": method,
                "grpc_code": code.name,
                "client": out.get("client"),
                "duration_ms": round(seconds * 1000, 2),
                "api_key_id": out.get("api_key_id"),
                "owner": out.get("owner"),
                "model": out.get("model"),
                "model_version": out.get("version"),
            },
        )

    def _report_loop(self) -> None:
        """Log once which loop runs the calls, and whether it is the lifespan's (uvicorn's)."""
        self._loop_reported = True
        running = asyncio.get_running_loop()
        logger.info(
            "first gRPC call",
            extra={
                "loop": loop_name(running),
                "loop_id": id(running),
                "same_loop_as_http": running is self.loop,
            },
        )
