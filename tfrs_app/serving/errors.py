"""Serving errors, importable without TensorFlow (the CLI catches them before loading it)."""


class ExportError(RuntimeError):
    """An export that could not be written (another export holds the lock, or the disk is full);
    nothing of it was left behind."""


class ModelLoadError(RuntimeError):
    """The SavedModel is missing, incomplete or unreadable."""
