"""benchmarks/pretrain: the step benchmark's summary and the docs section written from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .script_modules import load_file

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    return load_file(ROOT / "benchmarks" / "pretrain" / f"{name}.py", name)


bench = _load("bench_step")
report = _load("report_step")


def _record(variant: str, round_index: int, step_s: float, matmul_s: float, data_s: float):
    steps = [
        {
            "forward_s": step_s * 0.5,
            "backward_s": step_s * 0.4,
            "optimizer_s": step_s * 0.1,
            "step_s": step_s,
            "flops": 2.0e9,
            "matmul_s": matmul_s,
            "fraction_of_peak": (2.0e9 / step_s) / (2 * 1024**3 / matmul_s),
        }
    ] * 2
    return {
        "variant": variant,
        **bench.VARIANTS[variant],
        "threads": 2,
        "interop_threads": 2,
        "matmul_n": 1024,
        "decode_all_scenes_s": 20.0 if variant == "baseline" else None,
        "open_cache_s": None if variant == "baseline" else 0.01,
        "data_s": [data_s, data_s],
        "steps": steps,
        "loader_workers": 0,
        "loop_wait_s": [data_s],
        "loop_step_s": [step_s + data_s],
        "load_before": 3.0,
        "load_after": 5.0,
        "round": round_index,
    }


@pytest.fixture
def document():
    records = [
        _record("baseline", 0, 2.0, 0.05, 0.2),
        _record("cache", 0, 1.0, 0.05, 0.01),
        _record("cache", 1, 1.5, 0.08, 0.01),
        _record("baseline", 1, 2.4, 0.08, 0.2),
    ]
    return {
        "started": "2026-12-07 06:00 UTC",
        "minutes": 12.0,
        "machine": {
            "processor": "Xeon",
            "cores": 2,
            "python": "3.11",
            "torch": "2.13.0",
            "numpy": "1",
        },
        "cache": {"key": "k", "first_open_or_build_s": 25.0},
        "rounds": 2,
        "steps": 2,
        "workers": 0,
        "summary": bench.summarize(records),
        "records": records,
    }


def test_summary_takes_min_and_median_over_rounds(document):
    cache = document["summary"]["cache"]
    assert cache["step_s"] == [1.0, 1.25]
    assert cache["gflop_per_step"] == 2.0
    # Each step against its own matmul: round 1 (1.5 s against 0.08 s) is the best pair.
    peak = 2 * 1024**3
    assert cache["fraction_of_peak"][0] == pytest.approx((2e9 / 1.5) / (peak / 0.08))
    assert cache["fraction_of_peak"][0] > (2e9 / 1.0) / (peak / 0.05)
    assert document["summary"]["baseline"]["data_share_inline"][0] == pytest.approx(0.2 / 2.6)


def test_section_gives_per_round_speed_ups_and_the_verdict(document):
    lines = report.section(document)
    text = "\n".join(lines)
    assert lines[0] == report.BEGIN and lines[-1] == report.END
    # Per round: baseline median / cache median = 2.0 / 1.0 and 2.4 / 1.5.
    assert "| 2.00x, 1.60x |" in text
    assert "load average 3.0 to 5.0" in text
    assert "— **not reached**; data 0.8 % of the step (median) — **reached**" in text


def test_section_replaces_itself_and_survives_the_inference_report(document, tmp_path):
    page = "# Benchmarks\n\n<!-- shipped:begin -->\nS\n<!-- shipped:end -->\n\n## Raster\n"
    once = report.replace_section(page, report.section(document))
    assert once.index(report.BEGIN) > once.index("<!-- shipped:end -->")
    assert once.index(report.END) < once.index("## Raster")
    document["summary"]["cache"]["fraction_of_peak"] = [0.3, 0.26]
    twice = report.replace_section(once, report.section(document))
    assert twice.count(report.BEGIN) == 1 and "26.0 %" in twice and "## Raster" in twice
    assert report.kept_section(twice).startswith(report.BEGIN)
