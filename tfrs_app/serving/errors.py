"""Serving errors, importable without TensorFlow (the CLI catches them before loading it)."""


class ModelLoadError(RuntimeError):
    """The SavedModel is missing, incomplete or unreadable."""
