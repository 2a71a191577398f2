"""``msgfm pretrain``.

Heavy imports (torch, rasterio) happen inside the handlers so ``msgfm --help`` stays fast.
"""

from __future__ import annotations


def register(subparsers) -> None:
    """Add ``pretrain``."""
    from .pretrain import add_pretrain_arguments, run_pretrain

    pretrain = subparsers.add_parser(
        "pretrain",
        help="pretrain msGFM (cross-sensor masked image modelling) on a data manifest",
        description=(
            "Pretrain the msGFM encoder on the crops of a manifest. Runs on CUDA when available, "
            "else on CPU (and says so). For several processes or GPUs launch "
            "`torchrun --nproc_per_node N -m backend.train.pretrain ...` with the same flags."
        ),
    )
    add_pretrain_arguments(pretrain)
    pretrain.set_defaults(func=run_pretrain)
