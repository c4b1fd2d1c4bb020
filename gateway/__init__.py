"""The HTTP edge: FastAPI app, model serving, health and the error envelope."""
