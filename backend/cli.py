"""The `msgfm` command line.

Each command group lives beside the code it drives and registers its sub-commands here through a
``register(subparsers)`` function. Command modules import heavy libraries (torch, onnxruntime) inside
their handlers, so `msgfm --help` and light commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from . import __version__

# Modules (relative to this package) that provide ``register(subparsers)``.
COMMAND_MODULES = (
    ".data.cli",  # data fetch
    ".export_cli",  # info, export
    ".models.cli",  # model-summary
    ".train.cli",  # pretrain, finetune, evaluate
    ".inference.cli",  # predict, worker
    ".accept.cli",  # accept
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msgfm",
        description="msGFM multisensor geospatial foundation model: data, training, export, inference.",
    )
    parser.add_argument("--version", action="version", version=f"msgfm {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name, __package__)
        except ModuleNotFoundError as exc:
            # A command group whose module is not part of this installation is left out; a missing
            # third-party dependency inside an existing module is a real error.
            if exc.name and exc.name.endswith(name.lstrip(".")):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
