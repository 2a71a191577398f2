"""Score a pan-sharpening model on a training or validation pair the way acceptance scores it.

Usage: python scripts/pansharpen_validation.py MODEL.onnx --pair 1 [--samples DIR]

The acceptance suite's protocol (backend/accept/suite.py: Wald's, pan and MS degraded by block
means, NaN outside the imaged area, the model run by the inference engine the plugin uses) on a
SpaceNet-6 pair of the finetuning data: pair 1 is the bundled recipe's validation pair, pair 2 its
training pair. Pair 3 is the acceptance scene and is refused: design choices are made on
validation, never on the test scene. Prints PSNR, SAM and ERGAS of the model, the bicubic
upsampling and Brovey, as the suite computes them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path
from typing import Dict, Optional, Sequence

# The SpaceNet-6 pairs a design may be chosen on (the acceptance scene is pair 3).
PAIRS = {"1": "validation", "2": "training"}


def score(model: Path, pair: str, samples: Path) -> Dict[str, Dict[str, float]]:
    """``{"model" | "bicubic" | "brovey": {"psnr_db", "sam_deg", "ergas"}}`` on one pair."""
    from backend.accept.scenes import HELD_OUT, Scene
    from backend.accept.suite import _wald_pair, wald_scores, write_wald_inputs
    from backend.inference import RasterInput, run_inference

    scene = Scene(
        key=f"worldview2_rotterdam_{pair}",
        tasks=("pansharpening",),
        files=(f"pan_ms/ms{pair}.tif",),
        extra=(f"pan_ms/pan{pair}.tif",),
        kind=HELD_OUT,
        what=f"SpaceNet-6 pair {pair}",
        why=f"the recipe's {PAIRS[pair]} pair",
        scored_on="as worldview2_rotterdam_3",
    )
    wald = _wald_pair(types.SimpleNamespace(samples=samples), scene)
    with tempfile.TemporaryDirectory(prefix="msgfm-pansharpen-validation-") as scratch:
        folder = Path(scratch)
        pan, ms = write_wald_inputs(wald, folder)
        inputs = [RasterInput("pan", pan), RasterInput("ms", ms)]
        run_inference(model, inputs, folder / "out.tif", device="cpu")
        scores, _ = wald_scores(folder / "out.tif", wald)
    return scores


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a pan-sharpening .onnx model")
    parser.add_argument("--pair", required=True, help="1 (validation) or 2 (training)")
    parser.add_argument("--samples", type=Path, default=None, help="sample-data root")
    args = parser.parse_args(argv)
    if args.pair not in PAIRS:
        print(
            f"pair {args.pair} is not a training or validation pair (1, 2): pair 3 is the "
            "acceptance scene, scored once by msgfm accept",
            file=sys.stderr,
        )
        return 2
    from backend.data.fetch import ensure_sample_data

    samples = args.samples or Path(ensure_sample_data())
    for name, figures in score(args.model, args.pair, samples).items():
        values = ", ".join(f"{key} {value:.3f}" for key, value in figures.items())
        print(f"pair {args.pair} ({PAIRS[args.pair]}) {name}: {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
