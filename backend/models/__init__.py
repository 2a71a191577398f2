"""The msGFM model: sensor patch embeddings, the shared Swin-MoE encoder, SimMIM decoders.

Modules: ``config`` (sizes, named configs), ``swin`` (window attention, blocks, patch merging),
``moe`` (mixture-of-experts MLP), ``embedding`` (sensor patch embeddings), ``encoder``
(``MsGFMEncoder``), ``masking`` and ``decoder`` (SimMIM), ``pretrain`` (cross-sensor masked image
modelling), ``onnx_export`` (encoder export), ``summary`` and ``cli`` (``msgfm model-summary``).

Nothing is imported here: ``msgfm --help`` imports this package and must not pay for torch.
"""
