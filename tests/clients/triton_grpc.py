"""tritonclient.grpc against the gateway's `inference.GRPCInferenceService`.

Run in the outside-client venv: `python triton_grpc.py '<payload JSON>'` (see clientcommon).
The client always sends tensors in `raw_input_contents`, and reads outputs only from
`raw_output_contents` (or `contents.bytes_contents`): typed `contents` such as `fp64_contents`
come back to it as empty arrays. Metadata keys must be lower case in gRPC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from clientcommon import Recorder, payload, tensor
from google.protobuf.json_format import MessageToDict
from tritonclient.utils import InferenceServerException

OUTPUTS = ("predict", "predict_proba")


def describe(error: BaseException) -> dict[str, Any]:
    if isinstance(error, InferenceServerException):
        return {
            "status": error.status(),
            "client_message": error.message(),
            "debug_details": str(error.debug_details()),
        }
    return {}


def main() -> None:
    p = payload()
    model, version, key = p["model"], p["version"], p["key"]
    rows = np.asarray(p["rows"], dtype=np.float64)
    names = p["names"]
    record = Recorder(describe)
    client = grpcclient.InferenceServerClient(url=p["grpc"])

    def key_header() -> dict[str, str]:
        return {"x-api-key": key}

    def matrix(dtype: Any, datatype: str) -> list[grpcclient.InferInput]:
        tensor_in = grpcclient.InferInput("input-0", list(rows.shape), datatype)
        tensor_in.set_data_from_numpy(rows.astype(dtype))
        return [tensor_in]

    def per_feature() -> list[grpcclient.InferInput]:
        inputs = []
        for index, name in enumerate(names):
            column = np.ascontiguousarray(rows[:, index])
            tensor_in = grpcclient.InferInput(name, [len(column)], "FP64")
            tensor_in.set_data_from_numpy(column)
            inputs.append(tensor_in)
        return inputs

    def requested() -> list[grpcclient.InferRequestedOutput]:
        return [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]

    def infer(name: str, inputs, outputs=None, headers=None, **options) -> None:
        def run() -> dict[str, Any]:
            result = client.infer(
                model, inputs, outputs=outputs, headers=headers or key_header(), **options
            )
            response = result.get_response()
            as_dict = MessageToDict(response, preserving_proto_field_name=True)
            found = {o.name: o for o in response.outputs}
            return {
                "response": {
                    k: v for k, v in as_dict.items() if k not in ("outputs", "raw_output_contents")
                },
                "raw_output_contents": [len(raw) for raw in response.raw_output_contents],
                "outputs_meta": {
                    o["name"]: {k: v for k, v in o.items() if k != "contents"}
                    | {"contents_fields": sorted(o.get("contents", {}))}
                    for o in as_dict.get("outputs", [])
                },
                "outputs": {
                    n: tensor(result.as_numpy(n), found[n].datatype if n in found else None)
                    for n in OUTPUTS
                },
            }

        def sent() -> Any:
            tensors = [
                MessageToDict(i._get_tensor(), preserving_proto_field_name=True) for i in inputs
            ]
            contents = [len(c) for i in inputs if (c := i._get_content()) is not None]
            return {"inputs": tensors, "raw_input_contents_bytes": contents}

        record.call(name, run, sent=sent)

    h = key_header
    record.call("is_server_live", lambda: client.is_server_live(headers=h()))
    record.call("is_server_ready", lambda: client.is_server_ready(headers=h()))
    record.call(
        "get_server_metadata", lambda: client.get_server_metadata(headers=h(), as_json=True)
    )
    record.call("is_model_ready", lambda: client.is_model_ready(model, headers=h()))
    record.call(
        "is_model_ready_version", lambda: client.is_model_ready(model, version, headers=h())
    )
    record.call(
        "get_model_metadata",
        lambda: client.get_model_metadata(model, headers=h(), as_json=True),
    )
    record.call(
        "get_model_metadata_version",
        lambda: client.get_model_metadata(model, version, headers=h(), as_json=True),
    )
    infer("infer", matrix(np.float64, "FP64"), requested())
    infer("infer_no_outputs_named", matrix(np.float64, "FP64"))
    infer("infer_fp32", matrix(np.float32, "FP32"), requested())
    infer("infer_per_feature", per_feature(), requested())
    infer("infer_version", matrix(np.float64, "FP64"), requested(), model_version=version)
    infer("infer_request_id", matrix(np.float64, "FP64"), requested(), request_id="req-42")
    infer("infer_bearer", matrix(np.float64, "FP64"), headers={"authorization": f"Bearer {key}"})
    infer("infer_wrong_key", matrix(np.float64, "FP64"), headers={"x-api-key": "mg_x_bad"})
    record.call(
        "infer_no_key", lambda: client.infer(model, matrix(np.float64, "FP64"), outputs=requested())
    )
    record.call(
        "get_model_metadata_wrong_key",
        lambda: client.get_model_metadata(model, headers={"x-api-key": "mg_x_bad"}),
    )
    record.call(
        "infer_unknown_model",
        lambda: client.infer("nosuch", matrix(np.float64, "FP64"), headers=h()),
    )
    client.close()
    record.emit()


if __name__ == "__main__":
    main()
