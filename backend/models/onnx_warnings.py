"""The torch (TorchScript) ONNX exporter's warnings that do not apply to msGFM models.

Exporting the MoE Swin encoder, torch 2.13's legacy exporter warns twice that the graph may be
wrong; both warnings are generic and neither case occurs in these models, and every export is then
checked against torch on real or random tiles (``backend.export.onnx_export``'s parity check):

- ``index_add`` (``symbolic_opset9.index_add``): "ONNX export does not support duplicated values in
  'index' field, this will cause the ONNX model to be incorrect". The MoE layer
  (:mod:`backend.models.moe`) adds each expert's output at the tokens routed to it; a token's top-k
  experts are distinct, so a token appears at most once in an expert's index.
- Advanced indexing (``symbolic_opset9.index``): "If indices include negative values, the exported
  graph will produce incorrect results". The indexes come from ``nonzero`` and ``topk``, which
  are never negative.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator


@contextlib.contextmanager
def export_warnings_that_do_not_apply_ignored() -> Iterator[None]:
    """Ignore, inside the block, the exporter warnings this module's docstring explains."""
    import torch

    with warnings.catch_warnings():
        # Spatial sizes are fixed in the graph by design (only the batch axis is dynamic); the
        # tracer's warnings about shape-dependent Python branches say exactly that.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*duplicated values in 'index'.*")
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
        # The legacy (TorchScript) exporter is chosen on purpose: the dynamo exporter needs
        # onnxscript and writes external data (see the project's environment notes).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield
