"""The OpenAPI document, made precise from what this gateway serves right now.

FastAPI's generated schema knows the routes; only the loaded models know their signatures. So
the request bodies of the predict routes are built from the configured models' signatures (row
width, feature names and types, the row limit), and every operation lists the error statuses
it can answer with the one error envelope.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.dataplane.models import ModelManager
from gateway.http.shapes import MLFLOW, MODELGATE, V2, shape_of_path
from gateway.protocols.v1 import MAX_VERSION
from gateway.settings import GatewaySettings
from kernel.errors import ModelNotFound
from registry.signature import MAX_MAGNITUDE, Feature, Signature

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/health",
        "/docs",
        "/openapi.json",
        "/ping",
        "/version",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
    }
)
#: Public routes that answer 503 when not ready (in their own body, not an error shape).
_NOT_READY_PATHS = frozenset({"/readyz", "/health", "/v2/health/ready"})

ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }
    },
}
#: The error bodies of the standard protocols (gateway/http/shapes.py).
V2_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
MLFLOW_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
_ERROR_SCHEMAS = {MODELGATE: "Error", V2: "V2Error", MLFLOW: "MlflowError"}

_ERROR_TEXT = {
    "400": (
        "Two different credentials (X-API-Key and a Bearer token), or a body that is not JSON or "
        "is empty; in the standard protocols, also what 422 means here"
    ),
    "401": "Invalid or missing API key",
    "403": "The key lacks the scope of this route",
    "404": "Unknown model, alias or version",
    "413": "Too many rows, or a body over the size limit",
    "415": "Content-Type is not JSON",
    "422": "Rows do not fit the model's signature",
    "429": "Rate limit exceeded (see Retry-After and RateLimit)",
    "503": "Not ready, overloaded, or a dependency is down (see Retry-After)",
}


def feature_schema(feature: Feature) -> dict[str, Any]:
    """A feature's JSON schema; `null` too where it takes a missing value."""
    schema = _value_schema(feature.type)
    if feature.missing_ok:
        schema["type"] = [schema["type"], "null"]
    return schema


def _value_schema(kind: str) -> dict[str, Any]:
    if kind in ("long", "integer"):
        return {"type": "integer", "minimum": -(2**53), "maximum": 2**53}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "string":
        return {"type": "string", "maxLength": 1000}
    return {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}


def rows_schema(signature: Signature, max_rows: int) -> dict[str, Any]:
    width = len(signature.features)
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": max_rows,
        "items": {
            "type": "array",
            "minItems": width,
            "maxItems": width,
            "prefixItems": [feature_schema(f) for f in signature.features],
            "items": False,
        },
    }


def records_schema(signature: Signature, max_rows: int) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": max_rows,
        "items": {
            "type": "object",
            "required": list(signature.names),
            "additionalProperties": False,
            "properties": {f.name: feature_schema(f) for f in signature.features},
        },
    }


def predict_body(signatures: list[Signature], max_rows: int) -> dict[str, Any]:
    """`{"instances"|"records", "version"?}` for each distinct signature served."""
    version = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_VERSION}
    variants: list[dict[str, Any]] = []
    for signature in signatures:
        for field, rows in (
            ("instances", rows_schema(signature, max_rows)),
            ("records", records_schema(signature, max_rows)),
        ):
            variants.append(
                {
                    "type": "object",
                    "required": [field],
                    "additionalProperties": False,
                    "properties": {field: rows, "version": version},
                }
            )
    return {"oneOf": variants} if len(variants) > 1 else variants[0]


def legacy_body(signature: Signature, max_rows: int) -> dict[str, Any]:
    # Other fields are ignored, as the hand-written app ignored them.
    return {
        "type": "object",
        "required": ["features"],
        "properties": {"features": rows_schema(signature, max_rows)},
    }


def v2_infer_body(signatures: list[Signature], max_rows: int) -> dict[str, Any]:
    """A V2 infer request with one 2-D tensor for the served signatures' widths. JSON Schema
    cannot say that `data` holds rows x width values, so the tensor's sizes are documented
    only (and schemathesis does not expect every schema-valid request to be accepted)."""
    widths = sorted({len(s.features) for s in signatures if s.all_numeric})
    number = {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"type": "string", "maxLength": 256},
            "datatype": {"enum": ["FP32", "FP64", "INT64", "INT32", "BYTES", "BOOL"]},
            "shape": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "prefixItems": [
                    {"type": "integer", "minimum": 1, "maximum": max_rows},
                    {"enum": widths} if widths else {"type": "integer", "minimum": 1},
                ],
            },
            "data": {"type": "array", "items": {"oneOf": [number, {"type": "array"}]}},
            "parameters": {"type": "object"},
        },
    }
    output = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {"type": "array", "items": output},
            "parameters": {"type": "object"},
        },
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _errors_for(path: str, method: str) -> list[str]:
    if path in PUBLIC_PATHS:
        return []
    # 400 everywhere a key is read: two credentials that differ are refused (guard/auth.py).
    codes = ["400", "401", "403", "404", "429", "503"]
    if method == "post":
        codes += ["413", "415", "422"]
    if shape_of_path(path) != MODELGATE:
        # The standard protocols answer a refused value 400 (422 is Modelgate's own), and V2's
        # model ready answers 400 for a model that is not ready.
        codes = [c for c in codes if c != "422"]
    return sorted(codes)


def build_openapi(app: FastAPI, models: ModelManager | None, settings: GatewaySettings) -> dict:
    """The document for `/openapi.json`; bodies are exact once the models are loaded."""
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(Error=ERROR_ENVELOPE, V2Error=V2_ERROR, MlflowError=MLFLOW_ERROR)
    schema["components"]["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {"type": "http", "scheme": "bearer"},
    }
    served = [m for m in (models.current.values() if models else [])]
    signatures = list({m.signature: None for m in served})
    # With only patterns and no MODELGATE_DEFAULT_MODEL there is no default model.
    default = None
    if models is not None:
        with contextlib.suppress(ModelNotFound):
            default = models.current.get(models.default_name)
    names = list(models.specs) if models else []
    refs = names + [f"{n}@{s.alias}" for n, s in models.specs.items()] if models else []
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if path not in PUBLIC_PATHS:
                operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
            error = {"$ref": "#/components/schemas/" + _ERROR_SCHEMAS[shape_of_path(path)]}
            for code in _errors_for(path, method):
                operation.setdefault("responses", {})[code] = {
                    "description": _ERROR_TEXT[code],
                    "content": {"application/json": {"schema": error}},
                }
            if path in _NOT_READY_PATHS:
                operation.setdefault("responses", {})["503"] = {"description": "Not ready"}
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "model" and refs:
                    parameter["schema"] = {"type": "string", "enum": refs}
            if path == "/v1/models/{model}/predict" and signatures:
                operation["requestBody"] = _json_body(
                    predict_body(signatures, settings.max_sync_rows)
                )
            if path.startswith("/v2/") and path.endswith("/infer"):
                operation["requestBody"] = _json_body(
                    v2_infer_body(signatures, settings.max_sync_rows)
                )
            if path == "/predict" and default is not None:
                operation["requestBody"] = _json_body(
                    legacy_body(default.signature, settings.max_sync_rows)
                )
    return schema
