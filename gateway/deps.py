"""FastAPI dependencies as `Annotated` aliases: the state, and keys with their scope and limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers

from gateway.dataplane.budget import owner_var
from gateway.guard.auth import Forbidden, Unauthorized
from gateway.guard.keys import ApiKey
from gateway.metrics import AUTH_FAILURES
from gateway.state import GatewayState


async def get_state(request: Request) -> GatewayState:
    # async: FastAPI would run a plain function in its thread pool, a thread hop per request.
    state: GatewayState = request.app.state.gateway
    return state


async def authenticate(
    state: GatewayState, headers: Headers, scope: str, client: str | None
) -> ApiKey:
    """The key of these headers, with `scope`; a refusal is counted in the auth metrics (every
    protocol's, gRPC metadata included), and a failed one against the client's address: past
    its limit the refusal is a 429 (gateway/guard/throttle.py)."""
    try:
        return state.keys.authenticate(headers, scope)
    except Unauthorized:
        AUTH_FAILURES.labels(status="401").inc()
        await state.throttle.failed(client or "unknown")
        raise
    except Forbidden:
        AUTH_FAILURES.labels(status="403").inc()
        raise


async def authorize(request: Request, scope: str, kind: str) -> ApiKey:
    """Authenticate the key, check `scope`, then count the `kind` limit.

    The prediction routes call this directly instead of through `Depends`: FastAPI re-inspects
    every dependency on every request (docs/benchmarks.md)."""
    state: GatewayState = request.app.state.gateway
    client = request.client.host if request.client else None
    key = await authenticate(state, request.headers, scope, client)
    # Read by the request middleware: logged with the request, sent with the response.
    request.state.api_key_id = key.id
    request.state.owner = key.owner
    owner_var.set(key.owner)  # the request's registry lookups count against its owner
    decision = await state.limiter.check(kind, key)
    request.state.response_headers = decision.headers
    return key


def require(scope: str, kind: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency that authenticates the key, checks `scope`, then counts the `kind` limit."""

    async def authenticated(request: Request) -> ApiKey:
        return await authorize(request, scope, kind)

    return authenticated


StateDep = Annotated[GatewayState, Depends(get_state)]
PredictKey = Annotated[ApiKey, Depends(require("predict", "predict"))]
ReadKey = Annotated[ApiKey, Depends(require("predict", "reads"))]
AdminKey = Annotated[ApiKey, Depends(require("admin", "reads"))]
JobSubmitKey = Annotated[ApiKey, Depends(require("jobs", "jobs"))]
JobReadKey = Annotated[ApiKey, Depends(require("jobs", "reads"))]
