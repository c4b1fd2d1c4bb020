"""Protocol adapters: each parses its requests into a `PredictCall` for the `DataPlane` and
renders the `Answer` in its own shape; none holds serving logic. `dispatch` serves the hot
prediction routes straight from the ASGI scope, in front of FastAPI's routing."""
