"""Maps from msGFM embeddings in numpy: few-shot classification, similarity, clusters, change.

The encoder runs once through the inference engine (:func:`backend.inference.run_inference` with an
embedding model), which writes its features at the encoder's stride (e.g. one cell per 32 x 32
pixels). Everything here then works on that raster and the input raster, in numpy only (no torch,
no scikit-learn): per-pixel features (:mod:`.features`), regularised logistic regression and k-NN
with cross-validation (:mod:`.classifier`), the classifier file (:mod:`.classifier_file`),
mini-batch k-means (:mod:`.kmeans`), the pixels under example geometries (:mod:`.examples`) and the
block-by-block output rasters (:mod:`.maps`).
"""

from __future__ import annotations
