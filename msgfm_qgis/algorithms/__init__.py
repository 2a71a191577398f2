"""The provider's algorithms, one module each."""

from .classify_scenes import ClassifyScenesAlgorithm
from .extract_embeddings import ExtractEmbeddingsAlgorithm
from .model_info import ModelInfoAlgorithm
from .pansharpen import PansharpenAlgorithm
from .pretrain import PretrainAlgorithm
from .remove_clouds import RemoveCloudsAlgorithm
from .segment_landcover import SegmentLandCoverAlgorithm

ALGORITHMS = (
    ClassifyScenesAlgorithm,
    SegmentLandCoverAlgorithm,
    RemoveCloudsAlgorithm,
    PansharpenAlgorithm,
    ExtractEmbeddingsAlgorithm,
    ModelInfoAlgorithm,
    PretrainAlgorithm,
)
