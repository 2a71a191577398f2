"""`msgfm info`: print an ONNX model's msGFM metadata as JSON."""

from __future__ import annotations

import argparse
import json

from .schema import ModelFileError, ModelMetadataError, read_model_metadata


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="print the msGFM metadata of an ONNX model as JSON", description=__doc__
    )
    parser.add_argument("model", help="path to an .onnx model exported by `msgfm export`")
    parser.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    try:
        metadata = read_model_metadata(args.model)
    except (ModelFileError, ModelMetadataError) as exc:
        raise SystemExit(f"msgfm info: {exc}") from None
    print(json.dumps(metadata.to_dict(), indent=2))
    return 0
