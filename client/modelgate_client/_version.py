"""The distribution's version (kept equal to client/pyproject.toml's, which a test checks)."""

__version__ = "0.1.0"
