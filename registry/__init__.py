"""Where models come from: the MLflow registry, artifact checks, loading, training, promotion."""
