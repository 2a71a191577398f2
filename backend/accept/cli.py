"""``msgfm accept``: the acceptance suite, its report and the gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def register(subparsers) -> None:
    """Add ``accept``."""
    accept = subparsers.add_parser(
        "accept",
        help="score every bundled model on real scenes it never saw; write docs/acceptance.md",
        description=(
            "Build the plugin zip (or take --zip), install it in an isolated QGIS profile, run "
            "each bundled model's algorithm through qgis_process on its acceptance scenes "
            "(backend/accept/scenes.py), score what a GIS user checks (thresholds in "
            "backend/accept/thresholds.py), and write the results file, one picture per model "
            "and scene, and docs/acceptance.md. --gate then moves every model that failed a "
            "gating check out of the models folder and records it in MANIFEST.json."
        ),
    )
    accept.add_argument("--zip", type=Path, default=None, help="plugin zip (default: build one)")
    accept.add_argument("--work-dir", type=Path, default=REPO / "build" / "accept")
    accept.add_argument("--results", type=Path, default=REPO / "docs" / "acceptance-results.json")
    accept.add_argument("--doc", type=Path, default=REPO / "docs" / "acceptance.md")
    accept.add_argument("--data", type=Path, default=None, help="sample-data root")
    accept.add_argument(
        "--only",
        action="append",
        default=None,
        help=(
            "score only this model file or tool (e.g. 'classify-with-examples (bands only)'); "
            "the results file keeps its other entries"
        ),
    )
    accept.add_argument(
        "--render", action="store_true", help="only write the doc from an existing results file"
    )
    accept.add_argument(
        "--gate",
        action="store_true",
        help="after scoring (or with --render: from the results file), move failing models out",
    )
    accept.add_argument("--models-dir", type=Path, default=REPO / "resources" / "models")
    accept.add_argument(
        "--rejected-dir",
        type=Path,
        default=REPO / "build" / "rejected-models",
        help="where failing models go (outside resources/, so no zip ships them)",
    )
    accept.set_defaults(func=run_accept)


def run_accept(args) -> int:
    from .report import render

    if not args.render:
        from .run import run_suite

        run_suite(args.results, args.work_dir, args.zip, args.data, args.only)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    args.doc.write_text(render(results), encoding="utf-8")
    print(f"wrote {args.doc}")
    for model, entry in results["models"].items():
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[entry["passed"]]
        print(f"  {model}: {verdict}")
    if args.gate:
        from .gate import apply_gate

        moved = apply_gate(results, args.models_dir, args.rejected_dir)
        for name in moved:
            why = (
                "failed acceptance"
                if results["models"][name]["passed"] is False
                else "not measured"
            )
            print(f"not bundled ({why}): {name} -> {args.rejected_dir}", file=sys.stderr)
    return 0
