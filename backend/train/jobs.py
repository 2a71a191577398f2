"""Worker jobs of training: ``pretrain``, ``finetune`` and ``export``.

Each job is a function ``(params, progress, cancel) -> dict`` run by the subprocess worker
(:mod:`backend.worker`), so the QGIS plugin trains without importing torch itself. ``params`` are the
command's flags as JSON (``{"task": "segmentation", "init": "...", "out": "...", "max_steps": 200}``).
Progress is reported after every optimiser step; a cancel stops the run before its next step (the
last atomic checkpoint stays on disk) and the job ends as ``cancelled``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from ..inference.cancel import CancelToken

Progress = Callable[[float, str], None]


def _drive(trainer: Any, progress: Progress, cancel: CancelToken, resume: bool) -> Dict[str, Any]:
    """Run ``trainer.fit`` with per-step progress and cancellation (``resume``: from the last
    checkpoint of the output folder)."""

    def on_step(step: int, max_steps: int, record: Dict[str, Any]) -> None:
        loss = record.get("loss")
        text = f"step {step}/{max_steps}" + (f" loss {loss:.4f}" if loss is not None else "")
        progress(step / max(max_steps, 1), text)

    trainer.on_step = on_step
    trainer.should_stop = lambda: cancel.cancelled
    progress(0.0, "starting")
    result = trainer.fit(resume=resume)
    progress(1.0, f"done at step {result['step']}")
    return result


def pretrain(params: Mapping[str, Any], progress: Progress, cancel: CancelToken) -> Dict[str, Any]:
    """``msgfm pretrain`` as a job. Params: the command's options (``out`` required)."""
    from .options import PretrainOptions
    from .pretrain import trainer_from_args

    _require(params, "out")
    options = PretrainOptions.from_mapping(params, strict=True)
    options.no_progress = True
    return _drive(trainer_from_args(options), progress, cancel, bool(options.resume))


def finetune(params: Mapping[str, Any], progress: Progress, cancel: CancelToken) -> Dict[str, Any]:
    """``msgfm finetune`` as a job. Params: the command's options (``task``, ``init``, ``out``)."""
    from .finetune import trainer_from_params

    _require(params, "task", "init", "out")
    trainer = trainer_from_params({**params, "no_progress": True})
    return _drive(trainer, progress, cancel, bool(params.get("resume", False)))


def export(params: Mapping[str, Any], progress: Progress, cancel: CancelToken) -> Dict[str, Any]:
    """``msgfm export`` as a job. Params: ``checkpoint``, ``out``; optional ``tolerance``,
    ``sensors`` (embedding export)."""
    from ..export.onnx_export import export_checkpoint

    _require(params, "checkpoint", "out")
    progress(0.0, "exporting")
    cancel.raise_if_cancelled()
    report = export_checkpoint(
        params["checkpoint"],
        params["out"],
        tolerance=float(params.get("tolerance", 1e-4)),
        sensors=params.get("sensors"),
    )
    progress(1.0, f"exported, max abs diff {report.max_abs_diff:.2e}")
    return {
        "path": str(report.path),
        "max_abs_diff": float(report.max_abs_diff),
        "metadata": report.metadata.to_dict(),
    }


def _require(params: Mapping[str, Any], *keys: str) -> None:
    missing = [key for key in keys if params.get(key) in (None, "")]
    if missing:
        raise ValueError(f"the request lacks parameter(s) {', '.join(missing)}")
