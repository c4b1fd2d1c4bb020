"""KServe's InferenceRESTClient (protocol v2, JSON and binary) and InferenceGRPCClient.

Run in the outside-client venv: `python kserve_client.py '<payload JSON>'` (see clientcommon).
The REST client sends `content-type: application/json` for a JSON body, and for a binary one
`content-type: application/octet-stream` with `inference-header-content-length`. (KServe's
proto and tritonclient.grpc's register the same `inference.*` messages: they cannot share a
process, hence a script of its own.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import numpy as np
from clientcommon import Recorder, payload, tensor
from kserve.inference_client import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

OUTPUTS = ("predict", "predict_proba")


def describe(error: BaseException) -> dict[str, Any]:
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        return {
            "status": response.status_code,
            "body": response.text[:2000],
            "response_headers": dict(response.headers),
        }
    if isinstance(error, grpc.RpcError):
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else None
        return {"status": str(code), "details": details}
    return {}


def outputs_of(response: InferResponse | dict[str, Any]) -> dict[str, Any]:
    if isinstance(response, dict):  # a graph-style answer: kept as the server sent it
        return {"raw": response}
    found = {o.name: o for o in response.outputs}
    return {
        "response": {
            "model_name": response.model_name,
            "model_version": response.model_version,
            "id": response.id,
            "parameters": response.parameters,
        },
        "outputs_meta": {
            n: {"datatype": o.datatype, "shape": o.shape, "parameters": o.parameters}
            for n, o in found.items()
        },
        "outputs": {
            n: tensor(
                found[n].as_numpy() if n in found else None, getattr(found.get(n), "datatype", None)
            )
            for n in OUTPUTS
        },
    }


async def main() -> None:
    p = payload()
    url, model, version, key = p["url"], p["model"], p["version"], p["key"]
    rows = np.asarray(p["rows"], dtype=np.float64)
    names = p["names"]
    record = Recorder(describe)

    async def call(name: str, coro_fn, sent=None) -> None:
        # The Recorder is synchronous: run the coroutine first, keep its outcome or exception.
        try:
            value = await coro_fn()
        except Exception as error:
            caught = error

            def fail() -> Any:
                raise caught

            record.call(name, fail, sent=sent)
            return
        record.call(name, lambda: value)

    def key_header() -> dict[str, str]:
        # A fresh dict each call: infer() adds content-type and the header length to the one given.
        return {"X-API-Key": key}

    def matrix(binary: bool, datatype: str = "FP64", dtype: Any = np.float64) -> list[InferInput]:
        tensor_in = InferInput("input-0", list(rows.shape), datatype)
        tensor_in.set_data_from_numpy(rows.astype(dtype), binary_data=binary)
        return [tensor_in]

    def per_feature(binary: bool) -> list[InferInput]:
        inputs = []
        for index, name in enumerate(names):
            tensor_in = InferInput(name, [rows.shape[0]], "FP64")
            tensor_in.set_data_from_numpy(np.ascontiguousarray(rows[:, index]), binary_data=binary)
            inputs.append(tensor_in)
        return inputs

    def requested(binary: bool | str | None) -> list[RequestedOutput] | None:
        """None: no outputs named; "names": named without parameters; else binary_data."""
        if binary is None:
            return None
        if binary == "names":
            return [RequestedOutput(n) for n in OUTPUTS]
        return [RequestedOutput(n, parameters={"binary_data": binary}) for n in OUTPUTS]

    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30, retries=0))

    async def rest_infer(name: str, make_request, headers=None, **options) -> None:
        async def run() -> Any:
            # The answer's headers say whether it came binary: the client drops binary_data_size
            # from the outputs' parameters once it has read their bytes.
            answered: dict[str, str] = {}
            result = outputs_of(
                await rest.infer(
                    url,
                    make_request(),
                    model_name=model,
                    headers=key_header() if headers is None else headers,
                    response_headers=answered,
                    **options,
                )
            )
            result["response_headers"] = {k.lower(): v for k, v in answered.items()}
            return result

        def sent() -> Any:
            request = make_request()
            return request.to_rest() if isinstance(request, InferRequest) else (request, None)

        await call(name, run, sent=sent)

    def request(inputs, binary_out: bool | str | None = False, **options) -> InferRequest:
        return InferRequest(model, inputs, request_outputs=requested(binary_out), **options)

    await call("rest_is_server_live", lambda: rest.is_server_live(url, headers=key_header()))
    await call("rest_is_server_ready", lambda: rest.is_server_ready(url, headers=key_header()))
    await call("rest_is_model_ready", lambda: rest.is_model_ready(url, model, headers=key_header()))
    await call(
        "rest_is_model_ready_unknown",
        lambda: rest.is_model_ready(url, "nosuch", headers=key_header()),
    )
    await rest_infer("rest_infer_json", lambda: request(matrix(False)))
    await rest_infer("rest_infer_json_no_outputs_named", lambda: request(matrix(False), None))
    await rest_infer("rest_infer_binary", lambda: request(matrix(True), True))
    await rest_infer("rest_infer_binary_in_json_out", lambda: request(matrix(True), False))
    await rest_infer(
        "rest_infer_binary_output_parameter",
        lambda: request(matrix(False), None, parameters={"binary_data_output": True}),
    )
    await rest_infer("rest_infer_fp32_json", lambda: request(matrix(False, "FP32", np.float32)))
    await rest_infer("rest_infer_per_feature_json", lambda: request(per_feature(False)))
    await rest_infer("rest_infer_per_feature_binary", lambda: request(per_feature(True), True))
    nested = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.tolist(),
            }
        ]
    }
    await rest_infer("rest_infer_dict_nested_data", lambda: nested)
    await rest_infer(
        "rest_infer_bearer",
        lambda: request(matrix(True), True),
        headers={"Authorization": f"Bearer {key}"},
    )
    await rest_infer(
        "rest_infer_wrong_key", lambda: request(matrix(False)), headers={"X-API-Key": "mg_x_bad"}
    )
    await rest_infer(
        "rest_infer_wrong_bearer",
        lambda: request(matrix(False)),
        headers={"Authorization": "Bearer mg_x_bad"},
    )
    await rest_infer("rest_infer_no_key", lambda: request(matrix(False)), headers={})

    async def unknown_model() -> Any:
        return await rest.infer(
            url, request(matrix(False)), model_name="nosuch", headers=key_header()
        )

    await call("rest_infer_unknown_model", unknown_model)
    await rest.close()

    channel = InferenceGRPCClient(p["grpc"], timeout=30, retries=0)
    meta = [("x-api-key", key)]

    async def grpc_infer(name: str, make_request, headers=None) -> None:
        async def run() -> Any:
            return outputs_of(
                await channel.infer(make_request(), headers=meta if headers is None else headers)
            )

        await call(name, run)

    await call("grpc_is_server_live", lambda: channel.is_server_live(headers=meta))
    await call("grpc_is_server_ready", lambda: channel.is_server_ready(headers=meta))
    await call("grpc_is_model_ready", lambda: channel.is_model_ready(model, headers=meta))
    # Raw tensors (raw_input_contents), then typed contents (fp64_contents) in the request.
    await grpc_infer("grpc_infer", lambda: request(matrix(True), "names"))
    await grpc_infer("grpc_infer_no_outputs_named", lambda: request(matrix(True), None))
    await grpc_infer("grpc_infer_contents", lambda: request(matrix(False), "names"))
    await grpc_infer("grpc_infer_per_feature", lambda: request(per_feature(True), "names"))
    await grpc_infer(
        "grpc_infer_version", lambda: request(matrix(True), "names", model_version=version)
    )
    await grpc_infer(
        "grpc_infer_bearer",
        lambda: request(matrix(True), "names"),
        [("authorization", f"Bearer {key}")],
    )
    await grpc_infer(
        "grpc_infer_wrong_key", lambda: request(matrix(True), "names"), [("x-api-key", "mg_x_bad")]
    )
    await channel.close()
    record.emit()


if __name__ == "__main__":
    asyncio.run(main())
