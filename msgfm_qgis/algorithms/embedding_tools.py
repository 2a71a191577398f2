"""The Embeddings group: maps made from msGFM embeddings with numpy (few-shot, similarity, change)."""

from .apply_classifier import ApplyClassifierAlgorithm
from .classify_with_examples import ClassifyWithExamplesAlgorithm
from .cluster_embeddings import ClusterEmbeddingsAlgorithm
from .detect_change import DetectChangeAlgorithm
from .find_similar import FindSimilarAlgorithm

EMBEDDING_ALGORITHMS = (
    ClassifyWithExamplesAlgorithm,
    ApplyClassifierAlgorithm,
    FindSimilarAlgorithm,
    ClusterEmbeddingsAlgorithm,
    DetectChangeAlgorithm,
)
