"""The provider's algorithms, one module each."""

from .model_info import ModelInfoAlgorithm

ALGORITHMS = (ModelInfoAlgorithm,)
