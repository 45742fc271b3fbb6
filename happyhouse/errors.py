"""Errors shared across the subsystems (face, style, door, grading)."""
from __future__ import annotations


class DataNotFoundError(FileNotFoundError):
    """A data file or folder was not found anywhere the lookup searched."""


class WeightsError(ValueError):
    """A model's weights are missing, damaged or of another model; nothing was loaded.

    ``folder`` is where they were looked for (or None); ``missing`` lists missing file names;
    ``mismatches`` holds ``(file, expected shape, what was found)`` for every damaged file.
    """

    def __init__(self, message, folder=None, missing=(), mismatches=()):
        super().__init__(message)
        self.folder = folder
        self.missing = list(missing)
        self.mismatches = list(mismatches)


class OutputError(ValueError):
    """A result could not be written where it was asked to go; the message names the path and why."""
