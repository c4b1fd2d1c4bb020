"""tritonclient.http against the gateway's V2 REST routes: every call, JSON and binary tensors.

Run in the outside-client venv: `python triton_http.py '<payload JSON>'` (see clientcommon).
The client sends no Content-Type on any request; on a binary request it sends
`Inference-Header-Content-Length` (the JSON part's size) and `binary_data_size` per input.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import numpy as np
import tritonclient.http as httpclient
from clientcommon import Recorder, payload, tensor
from tritonclient.utils import InferenceServerException

OUTPUTS = ("predict", "predict_proba")


def describe(error: BaseException) -> dict[str, Any]:
    if isinstance(error, InferenceServerException):
        return {
            "status": error.status(),
            "client_message": error.message(),
            "debug_details": error.debug_details(),
        }
    return {}


def main() -> None:
    p = payload()
    host = urlsplit(p["url"]).netloc
    model, version, key = p["model"], p["version"], p["key"]
    rows = np.asarray(p["rows"], dtype=np.float64)
    names = p["names"]
    record = Recorder(describe)
    client = httpclient.InferenceServerClient(url=host, network_timeout=30.0)

    def key_header() -> dict[str, str]:
        # A fresh dict each call: infer() adds Inference-Header-Content-Length to the one given.
        return {"X-API-Key": key}

    def matrix(dtype: Any, datatype: str, binary: bool) -> list[httpclient.InferInput]:
        tensor_in = httpclient.InferInput("input-0", list(rows.shape), datatype)
        tensor_in.set_data_from_numpy(rows.astype(dtype), binary_data=binary)
        return [tensor_in]

    def per_feature(binary: bool) -> list[httpclient.InferInput]:
        inputs = []
        for index, name in enumerate(names):
            column = np.ascontiguousarray(rows[:, index])
            tensor_in = httpclient.InferInput(name, [len(column)], "FP64")
            tensor_in.set_data_from_numpy(column, binary_data=binary)
            inputs.append(tensor_in)
        return inputs

    def requested(binary: bool) -> list[httpclient.InferRequestedOutput]:
        return [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]

    def infer(name: str, inputs, outputs=None, headers=None, **options) -> None:
        def run() -> dict[str, Any]:
            result = client.infer(
                model, inputs, outputs=outputs, headers=headers or key_header(), **options
            )
            response = result.get_response()
            found = {o["name"]: o for o in response.get("outputs", [])}
            return {
                "response": {k: v for k, v in response.items() if k != "outputs"},
                "outputs_meta": {
                    n: {k: v for k, v in o.items() if k != "data"} for n, o in found.items()
                },
                "outputs": {
                    n: tensor(result.as_numpy(n), found.get(n, {}).get("datatype")) for n in OUTPUTS
                },
            }

        record.call(name, run, sent=lambda: client.generate_request_body(inputs, outputs=outputs))

    h = key_header
    record.call("is_server_live", lambda: client.is_server_live(headers=h()))
    record.call("is_server_ready", lambda: client.is_server_ready(headers=h()))
    record.call("get_server_metadata", lambda: client.get_server_metadata(headers=h()))
    record.call("is_model_ready", lambda: client.is_model_ready(model, headers=h()))
    record.call(
        "is_model_ready_version", lambda: client.is_model_ready(model, version, headers=h())
    )
    record.call("is_model_ready_unknown", lambda: client.is_model_ready("nosuch", headers=h()))
    record.call("get_model_metadata", lambda: client.get_model_metadata(model, headers=h()))
    record.call(
        "get_model_metadata_version",
        lambda: client.get_model_metadata(model, version, headers=h()),
    )
    record.call("get_model_repository_index", lambda: client.get_model_repository_index(h()))

    infer("infer_json", matrix(np.float64, "FP64", False), requested(False))
    # The client's default: binary inputs and, with no outputs named, binary_data_output=true.
    infer("infer_binary", matrix(np.float64, "FP64", True))
    infer("infer_binary_named_outputs", matrix(np.float64, "FP64", True), requested(True))
    infer("infer_json_in_binary_out", matrix(np.float64, "FP64", False), requested(True))
    infer("infer_binary_in_json_out", matrix(np.float64, "FP64", True), requested(False))
    infer("infer_fp32_binary", matrix(np.float32, "FP32", True))
    infer("infer_fp32_json", matrix(np.float32, "FP32", False), requested(False))
    infer("infer_per_feature_json", per_feature(False), requested(False))
    infer("infer_per_feature_binary", per_feature(True))
    infer(
        "infer_version",
        matrix(np.float64, "FP64", False),
        requested(False),
        model_version=version,
    )
    infer("infer_request_id", matrix(np.float64, "FP64", True), request_id="req-42")
    infer(
        "infer_bearer",
        matrix(np.float64, "FP64", True),
        headers={"Authorization": f"Bearer {key}"},
    )
    infer("infer_wrong_key", matrix(np.float64, "FP64", True), headers={"X-API-Key": "mg_x_bad"})
    infer(
        "infer_wrong_bearer",
        matrix(np.float64, "FP64", False),
        requested(False),
        headers={"Authorization": "Bearer mg_x_bad"},
    )
    record.call(
        "infer_no_key",
        lambda: client.infer(model, matrix(np.float64, "FP64", False), outputs=requested(False)),
    )
    record.call(
        "get_model_metadata_wrong_key",
        lambda: client.get_model_metadata(model, headers={"X-API-Key": "mg_x_bad"}),
    )
    record.call(
        "infer_unknown_model",
        lambda: client.infer("nosuch", matrix(np.float64, "FP64", False), headers=h()),
    )
    client.close()
    record.emit()


if __name__ == "__main__":
    main()
