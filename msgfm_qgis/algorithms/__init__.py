"""The provider's algorithms, one module each."""

from .classify_scenes import ClassifyScenesAlgorithm
from .export_onnx import ExportOnnxAlgorithm
from .extract_embeddings import ExtractEmbeddingsAlgorithm
from .finetune import FinetuneAlgorithm
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
    FinetuneAlgorithm,
    ExportOnnxAlgorithm,
)
