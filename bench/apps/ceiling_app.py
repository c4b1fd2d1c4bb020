"""The ceiling of `make bench`: a bare FastAPI endpoint around onnxruntime on the same model's
ONNX graph, with no auth, limits, validation beyond pydantic's, cache or logging."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
session = ort.InferenceSession(
    os.environ.get("BENCH_ONNX_PATH", "model.onnx"), providers=["CPUExecutionProvider"]
)
input_name = session.get_inputs()[0].name


class PredictionRequest(BaseModel):
    features: list[list[float]]


@app.post("/predict")
async def predict(request: PredictionRequest) -> dict[str, list]:
    labels, probabilities = session.run(None, {input_name: np.asarray(request.features)})
    return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}
