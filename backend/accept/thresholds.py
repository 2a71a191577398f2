"""Every acceptance check with its threshold, in one place (the report and model cards show them).

A check either *gates* (a model that fails it is not bundled) or *informs* (a figure set beside a
baseline that a user should know, e.g. whether the encoder beats a random forest on raw bands).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Dict, Optional

_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Check:
    """One acceptance check.

    Attributes:
        name: Key in the results file.
        text: What is checked, in a GIS user's words.
        op: ``>=``, ``<=``, ``>`` or ``<`` between the measured value and the threshold.
        threshold: The bound (for comparisons with a baseline: the margin, usually 0).
        gates: True when failing it keeps the model out of the plugin.
    """

    name: str
    text: str
    op: str
    threshold: float
    gates: bool = True

    def passes(self, value: Optional[float]) -> Optional[bool]:
        """True or False; None when the value could not be measured (not run)."""
        if value is None or value != value:  # None or NaN
            return None
        return bool(_OPERATORS[self.op](value, self.threshold))

    def describe(self) -> str:
        return f"{self.text} {self.op} {self.threshold:g}"


_CHECKS = (
    Check(
        "physical_output",
        "the algorithm's own output check accepts the model's output (1; 0 when it refused it "
        "as not a physical image)",
        ">=",
        1.0,
    ),
    # Cloud removal on clear scenes: the output stays the input.
    Check(
        "clear_psnr_db",
        "clear scene: PSNR of the output against the input (dB, peak 10000)",
        ">=",
        30.0,
    ),
    Check(
        "clear_sam_deg", "clear scene: spectral angle between output and input (degrees)", "<=", 5.0
    ),
    Check("clipped_fraction", "share of output values clipped at the range ends", "<=", 0.01),
    Check("worst_band_zero_fraction", "share of zero pixels in the worst band", "<=", 0.5),
    Check("worst_band_mean_change", "largest relative change of a band's mean", "<=", 0.10),
    # Cloud removal on simulated clouds over a clear scene.
    Check(
        "cloud_error_reduction",
        "under simulated clouds: share of the cloudy input's error (mean absolute, against the "
        "clear scene) that the output removes",
        ">=",
        0.5,
    ),
    Check(
        "clear_part_psnr_db",
        "outside the simulated clouds: PSNR against the clear scene (dB)",
        ">=",
        30.0,
    ),
    # Land cover and scene classes.
    Check(
        "water_recall",
        "share of open-water pixels (NDWI > 0.1 and MNDWI > 0.4) labelled water",
        ">=",
        0.80,
    ),
    Check(
        "largest_class_share", "largest class's share of a scene the indices call mixed", "<=", 0.80
    ),
    Check(
        "accuracy_over_majority",
        "test accuracy minus the majority-class baseline's (lower end of the 95 % interval)",
        ">",
        0.0,
    ),
    Check(
        "macro_f1_over_prior",
        "test macro-F1 minus the class-prior baseline's (lower end of the 95 % interval)",
        ">",
        0.0,
    ),
    # Pan-sharpening (Wald protocol), margins over the better of bicubic and Brovey.
    Check("psnr_over_classical_db", "PSNR minus the best of bicubic and Brovey (dB)", ">", 0.0),
    Check("sam_over_classical_deg", "SAM minus the best of bicubic and Brovey (degrees)", "<", 0.0),
    Check("ergas_over_classical", "ERGAS minus the best of bicubic and Brovey", "<", 0.0),
    # Embedding tools.
    Check(
        "macro_f1_over_random_encoder",
        "Classify with examples: macro-F1 minus the same tool's on a randomly initialised encoder",
        ">",
        0.0,
    ),
    Check(
        "macro_f1_over_random_forest",
        "Classify with examples: macro-F1 minus a random forest's on the raw bands",
        ">",
        0.0,
        gates=False,
    ),
    Check(
        "apply_classifier_agreement",
        "Apply classifier with the classifier file Classify with examples saved: share of the "
        "scene's pixels given the same class",
        ">=",
        0.999,
    ),
    Check(
        "find_similar_auc",
        "Find similar: ROC AUC of same-class over other-class pixels",
        ">=",
        0.70,
    ),
    Check(
        "ari_over_kmeans",
        "Cluster embeddings: adjusted Rand index minus k-means' on the raw bands",
        ">=",
        0.0,
    ),
)

CHECKS: Dict[str, Check] = {check.name: check for check in _CHECKS}
