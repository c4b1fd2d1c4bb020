"""How a loaded model answers: the `Runtime` interface and one module per implementation."""
