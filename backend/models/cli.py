"""``msgfm model-summary``: parameters per model part and FLOPs per image of a configuration."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the model commands to the ``msgfm`` parser."""
    parser = subparsers.add_parser(
        "model-summary",
        help="print parameters per part and FLOPs per image of a model configuration",
        description=(
            "Build the msGFM pretraining model of CONFIG and print its parameters per part "
            "(sensor embeddings, each Swin stage, MoE experts, decoders) and the FLOPs of one "
            "forward pass per image."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="'small', 'base' or a JSON config file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-flops", action="store_true", help="skip counting FLOPs (faster)")
    parser.set_defaults(func=run_model_summary)


def run_model_summary(args: argparse.Namespace) -> int:
    """Handler of ``msgfm model-summary``."""
    from .config import get_config
    from .summary import summarize

    try:
        config = get_config(args.config)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"msgfm model-summary: {message}", file=sys.stderr)
        return 2
    summary = summarize(config, flops=not args.no_flops)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.to_text())
    return 0
