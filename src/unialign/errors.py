"""The error types unialign raises; each message names the file, key or tensor at fault."""

from __future__ import annotations


class UniAlignError(Exception):
    """Base class of every error unialign raises on purpose."""


class ConfigError(UniAlignError, ValueError):
    """A configuration is missing, malformed or inconsistent."""


class CheckpointError(UniAlignError, ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit the model."""


class InputError(UniAlignError, ValueError):
    """A tensor or batch handed to the model has the wrong modality, shape or values."""
