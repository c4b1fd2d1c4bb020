"""The hand-written app of docs/legacy-api.md, as its users run it: joblib model, predict +
predict_proba per request, FastAPI (its FastAPI variant) under uvicorn with one worker. Only
for `make bench`."""

from __future__ import annotations

import os

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
model = joblib.load(os.environ.get("BENCH_MODEL_PATH", "model.pkl"))


class PredictionRequest(BaseModel):
    features: list[list[float]]


@app.post("/predict")
def predict(request: PredictionRequest) -> dict[str, list]:
    features = np.array(request.features)
    predictions = model.predict(features)
    probabilities = model.predict_proba(features)
    return {"predictions": predictions.tolist(), "probabilities": probabilities.tolist()}
