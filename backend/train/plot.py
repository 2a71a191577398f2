"""``msgfm plot RUN``: a run's loss, probe scores and effective rank against steps, as a PNG.

Pretraining with ``--probe-every N`` logs the representation probe into ``metrics.jsonl``; this
draws it beside the loss so a collapse (the effective rank falling while the loss still falls) is
seen while the run goes on. Several runs can be drawn together to compare recipes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Sequence

from .metrics_log import read_metrics

PROBE_PREFIX = "probe_"


def run_series(run: Path) -> Dict[str, List[tuple]]:
    """``{key: [(step, value), ...]}`` of the scalar metrics of a run's ``metrics.jsonl``."""
    series: Dict[str, List[tuple]] = {}
    for record in read_metrics(Path(run) / "metrics.jsonl"):
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and value == value:
                series.setdefault(key, []).append((record["step"], float(value)))
    return series


def plot_runs(runs: Sequence[Path], out: Path, probe_set: str = "bigearthnet-s2") -> Path:
    """Draw loss, probe linear/k-NN micro mAP and effective rank of ``runs`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("training loss", ["l1", "align_loss"]),
        (f"probe ({probe_set}): micro mAP", [f"probe_{probe_set}_linear_map_micro",
                                             f"probe_{probe_set}_knn_map_micro"]),
        (f"probe ({probe_set}): effective rank", [f"probe_{probe_set}_effective_rank"]),
    ]  # fmt: skip
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
    for run in runs:
        series = run_series(run)
        for axis, (title, keys) in zip(axes, panels):
            for key in keys:
                if series.get(key) and any(v for _, v in series[key]):
                    steps, values = zip(*series[key])
                    label = f"{Path(run).name}: {key.replace(PROBE_PREFIX + probe_set + '_', '')}"
                    axis.plot(steps, values, marker="o" if "probe" in key else None, ms=3,
                              label=label)  # fmt: skip
            axis.set_title(title, fontsize=10)
            axis.set_xlabel("step")
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(out)
    return out


def run_plot_command(args) -> int:
    """Handler of ``msgfm plot``."""
    missing = [r for r in args.runs if not (Path(r) / "metrics.jsonl").is_file()]
    if missing:
        print(f"msgfm plot: no metrics.jsonl in {', '.join(missing)}", file=sys.stderr)
        return 2
    out = args.out or str(Path(args.runs[0]) / "curves.png")
    print(plot_runs([Path(r) for r in args.runs], Path(out), args.probe_set))
    return 0


def register(subparsers) -> None:
    """Add ``plot``."""
    parser = subparsers.add_parser(
        "plot",
        help="draw a run's loss, probe scores and effective rank against steps (PNG)",
        description=__doc__,
    )
    parser.add_argument("runs", nargs="+", help="run output folders (with metrics.jsonl)")
    parser.add_argument("--out", default=None, help="PNG to write (default RUN/curves.png)")
    parser.add_argument("--probe-set", default="bigearthnet-s2", help="probe set to draw")
    parser.set_defaults(func=run_plot_command)
