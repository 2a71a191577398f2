"""The errors raster inference raises: one hierarchy, each message written for the person running it.

Callers (the CLI, the worker, the QGIS plugin) catch :class:`InferenceError` and show its message as
is: messages name the input or the model and say what to do.
"""

from __future__ import annotations


class InferenceError(RuntimeError):
    """Raster inference could not run or did not finish."""


class ModelError(InferenceError):
    """The model file cannot be used: not found, not ONNX, or its msGFM metadata is invalid."""


class InputMismatchError(InferenceError):
    """An input raster does not fit the model: wrong sensor, band count, or an unreadable raster."""


class OutOfDomainError(InputMismatchError):
    """The inputs are far from what the model was trained on (values, units, band order): refused
    unless the run is told to run anyway."""


class OutputNotPhysicalError(InferenceError):
    """The model's output cannot be physical (reflectance mostly clipped, a constant band): the
    run fails instead of delivering it."""


class NoOverlapError(InputMismatchError):
    """An input raster does not overlap the reference (first) input."""


class ModelOutputError(InferenceError):
    """The model's outputs do not match what its metadata declares (shape, classes, stride)."""


class DeviceUnavailableError(InferenceError):
    """The requested execution device (e.g. CUDA) is not available in this ONNX Runtime."""


class InferenceCancelledError(InferenceError):
    """The run was cancelled; no output file was left behind."""
