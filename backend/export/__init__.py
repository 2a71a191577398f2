"""ONNX export and the model-metadata contract.

:mod:`.schema` (no torch, no onnx) owns every metadata key; the exporter, which needs torch, lives in
its own module so that reading a model never imports torch.
"""
