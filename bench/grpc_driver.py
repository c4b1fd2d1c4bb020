"""A gRPC load driver for Open Inference Protocol V2 `ModelInfer`, and the echo server that
gives its own ceiling (`python -m bench.grpc_driver drive|echo`; bench/protocols.py runs both).

`drive` keeps `--in-flight` calls of `inference.GRPCInferenceService/ModelInfer` in flight on
one channel (grpc.aio; `--processes N` shares them out over N processes, a channel each: on 2
cores beside the server one process measured faster) for `--seconds` after a `--warmup`, each
with a new iris row (bench/rows.lua's rows, those after `--offset`) as one 2-D FP32 tensor
`[1, 4]` in `raw_input_contents`, as tritonclient's gRPC client sends a numpy array. The key,
when the environment has BENCH_API_KEY, goes in the metadata `x-api-key`. It prints one line,
`BENCH_JSON {...}`: requests, seconds, req/s, p50/p99 latency, errors, the driver's own CPU
(cores busy, microseconds a call) and the first answer decoded. Requests are pre-serialised
bytes (the fixed fields once, then the 16 raw bytes of the row), so the driver spends its time
in gRPC, not in protobuf.

`echo` is a trivial grpc.aio server answering every ModelInfer with one fixed response: driven
by `drive`, it measures what the driver and gRPC's Python stack reach on this machine.

The messages are built from a descriptor here, the ModelInfer subset of KServe's
grpc_predict_v2.proto (same package, names and field numbers; the `parameters` maps left out,
which a parser keeps as unknown fields), so the driver shares no code with the server it
measures and needs neither grpcio-tools nor generated stubs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.json_format import MessageToDict

SERVICE = "inference.GRPCInferenceService"
METHOD = f"/{SERVICE}/ModelInfer"
INPUT = "input-0"
FEATURES = 4

Metadata = tuple[tuple[str, str], ...]


class Job(NamedTuple):
    """One driver process' share of the load."""

    address: str
    model: str
    in_flight: int
    seconds: float
    warmup: float
    offset: int
    warmup_offset: int
    stride: int


_F = descriptor_pb2.FieldDescriptorProto
_CONTENTS = (
    ("bool_contents", _F.TYPE_BOOL),
    ("int_contents", _F.TYPE_INT32),
    ("int64_contents", _F.TYPE_INT64),
    ("uint_contents", _F.TYPE_UINT32),
    ("uint64_contents", _F.TYPE_UINT64),
    ("fp32_contents", _F.TYPE_FLOAT),
    ("fp64_contents", _F.TYPE_DOUBLE),
    ("bytes_contents", _F.TYPE_BYTES),
)


def _add(
    message: Any, name: str, number: int, kind: int, repeated: bool = False, of: str = ""
) -> None:
    label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if of:
        field.type_name = of


def _tensor(message: Any, name: str) -> None:
    """InferInputTensor / InferOutputTensor: name 1, datatype 2, shape 3, contents 5."""
    nested = message.nested_type.add(name=name)
    _add(nested, "name", 1, _F.TYPE_STRING)
    _add(nested, "datatype", 2, _F.TYPE_STRING)
    _add(nested, "shape", 3, _F.TYPE_INT64, repeated=True)
    _add(nested, "contents", 5, _F.TYPE_MESSAGE, of=".inference.InferTensorContents")


def message_classes() -> tuple[type[Any], type[Any]]:
    """ModelInferRequest and ModelInferResponse, in a pool of their own."""
    file = descriptor_pb2.FileDescriptorProto(
        name="bench_grpc_predict_v2.proto", package="inference", syntax="proto3"
    )
    contents = file.message_type.add(name="InferTensorContents")
    for number, (name, kind) in enumerate(_CONTENTS, start=1):
        _add(contents, name, number, kind, repeated=True)
    for message_name, tensor, tensors, raw in (
        ("ModelInferRequest", "InferInputTensor", "inputs", ("raw_input_contents", 7)),
        ("ModelInferResponse", "InferOutputTensor", "outputs", ("raw_output_contents", 6)),
    ):
        message = file.message_type.add(name=message_name)
        _add(message, "model_name", 1, _F.TYPE_STRING)
        _add(message, "model_version", 2, _F.TYPE_STRING)
        _add(message, "id", 3, _F.TYPE_STRING)
        _tensor(message, tensor)
        of = f".inference.{message_name}.{tensor}"
        _add(message, tensors, 5, _F.TYPE_MESSAGE, repeated=True, of=of)
        _add(message, raw[0], raw[1], _F.TYPE_BYTES, repeated=True)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    request, response = (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}"))
        for name in ("ModelInferRequest", "ModelInferResponse")
    )
    return request, response


def iris_row(i: int) -> tuple[float, float, float, float]:
    """Row number `i` of bench/rows.lua (`row(i)`): distinct two-decimal values in iris' ranges."""
    return (
        round(4.30 + (i % 360) / 100, 2),
        round(2.00 + (i // 360 % 240) / 100, 2),
        round(1.00 + (i // 86400 % 590) / 100, 2),
        round(0.10 + (i // 50976000 % 250) / 100, 2),
    )


class Requests:
    """Serialised ModelInferRequests, one new row each: the fixed fields, then the row's raw
    little-endian FP32 bytes as `raw_input_contents` (protobuf concatenation is a merge).
    Rows `offset + stride`, `offset + 2 * stride`, ...: driver processes interleave."""

    def __init__(self, model: str, offset: int, stride: int = 1) -> None:
        request, _ = message_classes()
        tensor = request.InferInputTensor(name=INPUT, datatype="FP32", shape=[1, FEATURES])
        self.head = request(model_name=model, inputs=[tensor]).SerializeToString()
        raw = bytes(4 * FEATURES)
        self.tag = request(raw_input_contents=[raw]).SerializeToString()[: -len(raw)]
        self.pack = struct.Struct(f"<{FEATURES}f").pack
        self.n = offset
        self.stride = stride
        self.sent = 0

    def next(self) -> bytes:
        self.n += self.stride
        self.sent += 1
        return self.head + self.tag + self.pack(*iris_row(self.n))


async def _run(
    call: Any, requests: Requests, in_flight: int, seconds: float, metadata: Metadata
) -> dict[str, Any]:
    """`in_flight` loops, each one call at a time until `seconds` pass."""
    latencies: list[float] = []
    errors = 0
    first: list[bytes] = []
    first_error = ""
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors, first_error
        while time.perf_counter() < deadline:
            body = requests.next()
            started = time.perf_counter()
            try:
                answer = await call(body, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                errors += 1
                first_error = first_error or f"{exc.code().name}: {exc.details()}"
                continue
            latencies.append(time.perf_counter() - started)
            if not first:
                first.append(answer)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(in_flight)))
    return {
        "latencies": latencies,
        "errors": errors,
        "elapsed": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "first": first[0] if first else None,
        "first_error": first_error,
        "rows_sent": requests.sent,
    }


async def _drive_one(job: Job, ready: Callable[[], None]) -> dict[str, Any]:
    """One process' share: connect, warm up, `ready()` (all processes together), measure."""
    key = os.environ.get("BENCH_API_KEY", "")
    metadata: Metadata = (("x-api-key", key),) if key else ()
    async with grpc.aio.insecure_channel(job.address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        call = channel.unary_unary(METHOD)  # bytes in, bytes out: no (de)serialiser
        if job.warmup > 0:
            warm = Requests(job.model, job.warmup_offset, job.stride)
            await _run(call, warm, job.in_flight, job.warmup, metadata)
        ready()
        requests = Requests(job.model, job.offset, job.stride)
        return await _run(call, requests, job.in_flight, job.seconds, metadata)


def _process(job: Job, barrier: Any, results: Any) -> None:
    results.put(asyncio.run(_drive_one(job, barrier.wait)))


def drive(args: argparse.Namespace) -> dict[str, Any]:
    """`args.in_flight` calls in flight, shared by `args.processes` processes, each on a
    channel of its own; the measured windows start together, after every warm-up."""
    processes = max(1, min(args.processes, args.in_flight))
    jobs = [
        Job(
            address=args.address,
            model=args.model,
            in_flight=args.in_flight // processes + (j < args.in_flight % processes),
            seconds=args.seconds,
            warmup=args.warmup,
            offset=args.offset + j,
            warmup_offset=args.warmup_offset + j,
            stride=processes,
        )
        for j in range(processes)
    ]
    if processes == 1:
        parts = [asyncio.run(_drive_one(jobs[0], lambda: None))]
    else:
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(processes), context.Queue()
        children = [context.Process(target=_process, args=(j, barrier, results)) for j in jobs]
        for child in children:
            child.start()
        parts = [results.get(timeout=args.warmup + args.seconds + 120) for _ in children]
        for child in children:
            child.join(30)
    latencies = sorted(x for part in parts for x in part["latencies"])
    elapsed = max(part["elapsed"] for part in parts)
    first = next((part["first"] for part in parts if part["first"]), None)
    _, response = message_classes()
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    cpu = sum(part["cpu"] for part in parts)
    return {
        "in_flight": args.in_flight,
        "processes": processes,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 3),
        "p99_ms": round(cuts[98] * 1000, 3),
        "errors": sum(part["errors"] for part in parts),
        "first_error": next((p["first_error"] for p in parts if p["first_error"]), ""),
        "rows_sent": sum(part["rows_sent"] for part in parts),
        # The driver's own CPU in the measured window (all its threads and processes): under
        # 1.0 core per process it waited on the server, and was not the limit.
        "driver_cpu_cores": round(cpu / elapsed, 2),
        "driver_cpu_us_per_request": round(cpu / len(latencies) * 1e6, 1) if latencies else None,
        "answer": MessageToDict(response.FromString(first)) if first else None,
    }


async def echo(port: int) -> None:
    """Answer every ModelInfer with one fixed response (the shape of a one-row iris answer)."""
    _, response = message_classes()
    tensor = response.InferOutputTensor
    fixed = response(
        model_name="iris",
        model_version="1",
        outputs=[
            tensor(name="predict", datatype="INT64", shape=[1], contents={"int64_contents": [0]}),
            tensor(
                name="predict_proba",
                datatype="FP64",
                shape=[1, 3],
                contents={"fp64_contents": [0.97, 0.02, 0.01]},
            ),
        ],
    ).SerializeToString()

    async def model_infer(request: bytes, context: Any) -> bytes:
        return fixed

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(model_infer)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_driver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("drive", help="drive ModelInfer, print BENCH_JSON")
    run.add_argument("--address", required=True, help="host:port")
    run.add_argument("--model", default="iris")
    run.add_argument("--in-flight", type=int, default=64)
    run.add_argument("--seconds", type=float, default=10)
    run.add_argument("--warmup", type=float, default=3)
    run.add_argument("--offset", type=int, default=0, help="rows after this row number")
    run.add_argument(
        "--warmup-offset",
        type=int,
        default=5_000_000_000,
        help="the warm-up's rows after this one (bench/servers.py's WARMUP_OFFSET + offset)",
    )
    run.add_argument("--processes", type=int, default=1, help="driver processes")
    server = commands.add_parser("echo", help="serve a fixed ModelInfer answer")
    server.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.command == "echo":
        asyncio.run(echo(args.port))
        return
    result = drive(args)
    sys.stdout.write("BENCH_JSON " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
