"""``msgfm pretrain``, ``msgfm finetune`` and ``msgfm evaluate``.

Heavy imports (torch, rasterio) happen inside the handlers so ``msgfm --help`` stays fast.
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    """Add ``pretrain``, ``finetune`` and ``evaluate``."""
    from .finetune import add_finetune_arguments, run_finetune
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

    finetune = subparsers.add_parser(
        "finetune",
        help="finetune a pretrained msGFM encoder on a downstream task",
        description=(
            "Finetune for scene classification, land-cover segmentation, cloud removal or "
            "pan-sharpening, with layer-wise lr decay, an optional frozen encoder (linear probe), "
            "a spatially separate validation split, early stopping and OUT/checkpoint-best. "
            "For several processes or GPUs launch "
            "`torchrun --nproc_per_node N -m backend.train.finetune ...` with the same flags."
        ),
    )
    add_finetune_arguments(finetune)
    finetune.set_defaults(func=run_finetune)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a finetuned checkpoint or ONNX model on held-back tiles, with a baseline",
        description=(
            "Compute the task's metrics (backend/metrics.py) on the held-back split of a data "
            "spec, for the model and for the task's trivial baseline on the same tiles. A "
            "checkpoint runs in torch and defaults to the data and split it was trained with; an "
            ".onnx model runs in ONNX Runtime (numpy only) and needs --data."
        ),
    )
    evaluate.add_argument("--model", required=True, help="MODEL.onnx or a checkpoint/run folder")
    evaluate.add_argument("--task", default=None, help="expected task (checked against the model)")
    evaluate.add_argument("--data", default=None, help="data spec (see msgfm finetune --help)")
    evaluate.add_argument("--data-root", default=None, help="root of the data spec's paths")
    evaluate.add_argument("--val-fraction", type=float, default=None)
    evaluate.add_argument("--split-seed", type=int, default=None)
    evaluate.add_argument("--test-fraction", type=float, default=None)
    evaluate.add_argument("--split-fold", type=int, default=None)
    evaluate.add_argument(
        "--split",
        default="test",
        choices=["test", "val", "train", "all"],
        help="which samples to score (test: never trained on nor chosen on)",
    )
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(func=run_evaluate)
    register_defaults(subparsers)
    from .ablation import register as register_ablation

    register_ablation(subparsers)
    register_probe(subparsers)
    from .plot import register as register_plot

    register_plot(subparsers)


def register_probe(subparsers) -> None:
    """Add ``probe`` (representation health of a pretrained encoder)."""
    from .probe import run_probe_command

    probe = subparsers.add_parser(
        "probe",
        help="linear and k-NN probes of an encoder's embeddings vs random init and band statistics",
        description=(
            "Embed the labelled patches the project has (BigEarthNet S2, and S1 for a SAR "
            "encoder), mean-pool each patch and score the vectors with a leave-one-patch-out "
            "linear probe and k-NN probe (micro/macro mAP) and their effective rank, beside "
            "randomly initialised encoders of the same config and raw band statistics."
        ),
    )
    probe.add_argument("--encoder", required=True, help="pretraining checkpoint/run or .onnx")
    probe.add_argument("--data", default=None, help="sample-data root (default: msgfm data path)")
    probe.add_argument("--random-seeds", type=int, default=3, help="random-init encoders to probe")
    probe.add_argument(
        "--part",
        default="all",
        choices=["all", "validation", "final"],
        help="every patch, or the validation half (for choices) or the final half (scored once)",
    )
    probe.add_argument("--out", default=None, help="also write the JSON report here")
    probe.add_argument("--json", action="store_true", help="print the report as JSON")
    probe.set_defaults(func=run_probe_command)


def run_evaluate(args) -> int:
    """Handler of ``msgfm evaluate``."""
    from .evaluate import evaluate_model, format_report

    try:
        report = evaluate_model(
            args.model,
            data=args.data,
            data_root=args.data_root,
            task=args.task,
            val_fraction=args.val_fraction,
            split_seed=args.split_seed,
            split_part=args.split,
            test_fraction=args.test_fraction,
            split_fold=args.split_fold,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"msgfm evaluate: {message}", file=sys.stderr)
        return 2
    if args.json:
        from .metrics_log import json_safe

        # Strict JSON: an undefined score (a class absent from the tiles) is null, not NaN.
        print(json.dumps(json_safe(report), default=str))
    else:
        print(format_report(report))
    return 0


def register_defaults(subparsers) -> None:
    """Add ``train-defaults`` (the recipe of the bundled default models)."""
    from .defaults import add_defaults_arguments, run_defaults

    parser = subparsers.add_parser(
        "train-defaults",
        help="train, export and score the bundled default models (resources/models)",
        description=(
            "Pretrain msGFM on every sensor of the sample data, finetune one model per task, "
            "export each to ONNX with the encoder for embeddings, score them on held-back tiles "
            "and write OUT/MANIFEST.json. Seeded; --budget sets the step counts."
        ),
    )
    add_defaults_arguments(parser)
    parser.set_defaults(func=run_defaults)
