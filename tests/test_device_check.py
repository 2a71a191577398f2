"""scripts/device_check.sh, the CPU side: argument handling, the report, the parity code and the
throughput code.

This machine (like CI) has no GPU and the CPU build of ONNX Runtime and torch. The parity code is
therefore checked with the CPU provider against itself on every bundled model, the throughput code
on the CPU with a few steps, and every GPU part must come out as skipped with its reason. The GPU
paths themselves (CUDA provider, bf16 autocast, NCCL) run only on a lent GPU machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .script_modules import load_file

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "device_check.sh"


device_check = load_file(ROOT / "scripts" / "device_check.py", "device_check")


def _run_script(*args: str):
    env = {"MSGFM_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_parity_of_the_cpu_provider_with_itself_on_every_bundled_model(owned_bundled_models):
    """No GPU here: the same comparison with the CPU provider on both sides must find the
    outputs identical, on every model of a bundled folder (the tests' own, which has every task:
    the shipped folder may have had models gated out)."""
    models = sorted(owned_bundled_models.glob("*.onnx"))
    assert len(models) >= 9
    result = device_check.onnx_parity(models, provider="CPUExecutionProvider", batch=1)
    assert [m["model"] for m in result["models"]] == [p.name for p in models]
    for model in result["models"]:
        for row in model["outputs"]:
            assert row["max_abs_diff"] == 0.0, (model["model"], row)
            if "argmax_agreement" in row:
                assert row["argmax_agreement"] == 1.0
    segmentation = next(m for m in result["models"] if m["model"] == "segmentation.onnx")
    assert segmentation["outputs"][0]["shape"] == [1, 7, 64, 64]


def test_compare_outputs_measures_differences_and_agreement():
    reference = np.zeros((2, 3, 4, 4), np.float32)
    reference[:, 1] = 1.0  # class 1 everywhere, range 1
    other = reference.copy()
    other[0, 2, 0, 0] = 2.0  # one of 32 positions changes its arg-max, by 2
    (row,) = device_check.compare_outputs([reference], [other], ["probabilities"])
    assert row["max_abs_diff"] == 2.0 and row["max_rel_diff"] == 2.0
    assert row["argmax_agreement"] == pytest.approx(31 / 32)


def test_cuda_parity_is_skipped_with_the_reason_without_the_gpu_package():
    with pytest.raises(device_check.PartSkippedError, match="no CUDAExecutionProvider"):
        device_check.onnx_parity(sorted(device_check.MODELS.glob("*.onnx")))


def test_throughput_code_runs_on_the_cpu_and_skips_bf16():
    """On the CPU (allowed for this test only) with tiny step counts: the figures are real
    timings of a real step, bf16 is skipped with its reason."""
    result = device_check.torch_throughput("cpu", ["lite"], {"lite": 2}, steps=1, warmup=0)
    fp32, bf16 = result["runs"]
    assert fp32["config"] == "lite" and fp32["precision"] == "fp32"
    assert fp32["gflop_per_step"] > 0.1 and fp32["step_s"][0] > 0
    assert fp32["crops_per_s"] == pytest.approx(2 / fp32["step_s"][0])
    assert 0 < fp32["fraction_of_matmul"] < 1
    assert "CUDA only" in bf16["skipped"]


def test_synthetic_batch_has_the_corpus_mix_and_the_batch_size():
    from backend.models.config import get_config

    sub_batches = device_check.synthetic_step_batch(get_config("lite"), 16, "cpu")
    assert sum(len(s.image) for s in sub_batches) == 16
    assert sub_batches[0].sensor == "s2"
    assert all(tuple(s.image.shape[-2:]) == (96, 96) for s in sub_batches)


def test_report_is_written_as_json_and_markdown(tmp_path):
    report = {
        "started": "2026-12-07 06:00:00 UTC",
        "budget_s": 540.0,
        "seconds": 12.0,
        "environment": {"gpus": [], "torch": "2.13.0", "onnxruntime": "1.31.1"},
        "parts": [
            device_check.run_part("ddp", lambda: device_check.require_gpu(False)),
            device_check.run_part("pretrain", lambda: 1 / 0),
            device_check.run_part(
                "torch-throughput",
                lambda: {
                    "device": "cpu",
                    "runs": [{"config": "lite", "precision": "bf16", "skipped": "CUDA only"}],
                },
            ),
        ],
    }
    json_path, md_path = device_check.write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["parts"][0]["status"] == "skipped"
    page = md_path.read_text()
    assert "| ddp | skipped |" in page and "no CUDA GPU" in page
    assert "| pretrain | failed |" in page and "ZeroDivisionError" in page
    assert "| lite | bf16 | skipped: CUDA only" in page
    assert not list((tmp_path / "out").glob(".*partial"))


def test_script_without_a_gpu_reports_every_gpu_part_skipped(tmp_path):
    out = tmp_path / "check"
    result = _run_script(str(out), "--parts", "onnx-parity", "torch-throughput", "ddp", "pretrain")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "device_check.json").read_text())
    statuses = {p["part"]: (p["status"], p.get("reason", "")) for p in report["parts"]}
    assert (
        statuses["onnx-parity"][0] == "skipped" and "onnxruntime-gpu" in statuses["onnx-parity"][1]
    )
    for name in ("torch-throughput", "ddp", "pretrain"):
        assert statuses[name][0] == "skipped" and "no CUDA GPU" in statuses[name][1]
    assert report["environment"]["gpus"] == []
    assert "| torch-throughput | skipped |" in (out / "device_check.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "usage: scripts/device_check.sh OUT"),
        (["--parts", "ddp"], "usage: scripts/device_check.sh OUT"),
        (["out", "--parts", "gpu-burn"], "invalid choice: 'gpu-burn'"),
        (["out", "--budget-s", "900"], "within 10 minutes"),
        (["out", "--steps", "0"], "--steps and --ddp-steps must be at least 1"),
    ],
)
def test_script_refuses_bad_arguments(tmp_path, args, message):
    result = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MSGFM_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()
