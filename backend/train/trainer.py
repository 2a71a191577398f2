"""The training loop shared by pretraining and finetuning.

:class:`Trainer` owns everything a task does not care about: devices and ``torchrun`` (DDP),
seeding, gradient accumulation and clipping, bf16 autocast on CUDA, the learning-rate schedule,
progress, ``metrics.jsonl`` and atomic, exactly resumable checkpoints. A task subclasses it and
fills in the hooks: :meth:`build_model`, :meth:`build_dataset`, :meth:`training_step` (and, when it
needs them, :meth:`configure_optimizer`, :meth:`collate`, :meth:`checkpoint_meta`).

Validation (finetuning): a task that returns a dataset from :meth:`build_val_dataset` and implements
:meth:`validation_step` (and, for scores that are not averages over batches, :meth:`validation_end`)
is validated every ``val_every`` steps and at the end. The ``val_*`` scores go into
``metrics.jsonl``; each improvement of the monitored score is kept as ``OUT/checkpoint-best``, and
with ``patience`` the run stops after that many validations without improvement.

Exact resume rests on three things: the data order is a function of the step alone
(:class:`~backend.data.pretrain_dataset.StepBatchSampler`), torch's RNG is re-seeded from
``(seed, step, rank)`` at every step, and optimiser, scheduler and step come back from the
checkpoint.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

from ..checkpoints import (
    BEST,
    LAST,
    copy_checkpoint,
    load_checkpoint,
    periodic_name,
    save_checkpoint,
)
from .distributed import DistributedContext
from .metrics_log import MetricsLog
from .schedule import cosine_with_warmup


@dataclass
class TrainerConfig:
    """Settings of a training run (every one has a command-line flag).

    Attributes:
        out_dir: Output folder (metrics, checkpoints).
        max_steps: Optimiser steps of the whole run (a resumed run continues to this).
        batch_size: Samples per micro-batch per process. Effective batch =
            ``batch_size * accumulation * world_size``.
        accumulation: Micro-batches whose gradients are summed before each optimiser step.
        lr: Peak learning rate (after warm-up).
        weight_decay: AdamW decoupled weight decay (not applied to norms, biases, tokens).
        betas: AdamW betas.
        warmup_steps: Linear warm-up steps.
        min_lr_ratio: Cosine floor as a fraction of ``lr``.
        grad_clip: Max global gradient norm (0 = no clipping).
        seed: Seed of data order, initialisation and masking.
        num_workers: DataLoader worker processes per rank.
        threads: torch intra-op threads of the training process (0 = torch's default, one per
            core). On a CPU shared with other work one thread can be several times faster: every
            operator of a small model waits at a barrier for its slowest thread
            (``docs/benchmarks.md``, pretraining step).
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``.
        log_every: Steps between metrics records.
        checkpoint_every: Steps between updates of ``checkpoint-last``.
        keep_every: Steps between kept ``checkpoint-<step>`` copies (0 = none).
        progress: Show a progress bar (rank 0, only when stderr is a terminal).
        val_every: Steps between validations (0 = only at the end); used only by tasks with a
            validation dataset.
        val_batch_size: Samples per validation batch.
        monitor: Validation score that decides ``checkpoint-best`` and early stopping
            (``val_loss`` or a ``val_<metric>`` the task reports).
        monitor_mode: ``min`` (lower is better) or ``max``.
        patience: Validations without improvement of ``monitor`` before the run stops early
            (0 = never stop early).
    """

    out_dir: str = "runs/pretrain"
    max_steps: int = 1000
    batch_size: int = 8
    accumulation: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    grad_clip: float = 5.0
    seed: int = 0
    num_workers: int = 0
    threads: int = 0
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 1
    checkpoint_every: int = 100
    keep_every: int = 0
    progress: bool = True
    val_every: int = 0
    val_batch_size: int = 8
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    patience: int = 0


@dataclass
class StepOutput:
    """What a training or validation step returns.

    Attributes:
        loss: Scalar to backpropagate (training) or report (validation).
        metrics: Extra JSON-friendly values for ``metrics.jsonl``: numbers are averaged over
            micro-batches and ranks; dicts of numbers (per-sensor losses) likewise, per key; lists
            (expert load) are averaged element-wise.
        predictions: Validation only: whatever :meth:`Trainer.validation_end` needs to score the
            whole validation set (predictions and references as numpy arrays, say).
    """

    loss: Any
    metrics: Dict[str, Any] = field(default_factory=dict)
    predictions: Any = None


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of torch's RNG for one optimiser step of one rank (distinct, reproducible)."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class Trainer:
    """Base training loop; subclass it and implement the hooks.

    Args:
        config: Run settings.
    """

    def __init__(self, config: TrainerConfig):
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.context: Optional[DistributedContext] = None
        self.model = None
        self.optimizer = None
        self.scheduler = None
        self.step = 0
        # Validation state: latest and best scores, validations since the last improvement.
        self.val_metrics: Dict[str, Any] = {}
        self.best_metrics: Dict[str, Any] = {}
        self.best_value: Optional[float] = None
        self.best_step = 0
        self.bad_validations = 0
        self.stopped_early = False
        # Set by callers that drive a run from outside (the subprocess worker): called after
        # every optimiser step with (step, max_steps, record); ``should_stop()`` True ends the run.
        self.on_step: Optional[Callable[[int, int, Dict[str, Any]], None]] = None
        self.should_stop: Optional[Callable[[], bool]] = None

    # --- hooks ----------------------------------------------------------------------------------

    def build_model(self):
        """Return the ``nn.Module`` to train (on CPU; the trainer moves it)."""
        raise NotImplementedError

    def build_dataset(self):
        """Return an index-addressed dataset (``dataset[i]`` is a sample)."""
        raise NotImplementedError

    def collate(self, samples: List[Any]) -> Any:
        """Turn a list of samples into a batch (default: torch's default collate)."""
        from torch.utils.data import default_collate

        return default_collate(samples)

    def training_step(self, model, batch: Any) -> StepOutput:
        """Forward one micro-batch; return the loss and metrics."""
        raise NotImplementedError

    def build_val_dataset(self):
        """Return the held-back dataset to validate on, or None (no validation; the default)."""
        return None

    def validation_step(self, model, batch: Any) -> StepOutput:
        """Evaluate one batch without gradients (tasks with validation data override it)."""
        raise NotImplementedError(f"{type(self).__name__} has no validation step")

    def validation_end(self, outputs: List[StepOutput]) -> Dict[str, Any]:
        """Scores of the whole validation set from every batch's output (keys without ``val_``).

        The default averages the loss and the numeric metrics over batches, weighted equally.
        """
        records = [{"loss": float(o.loss), **_plain_metrics(o)} for o in outputs]
        return _average_records(records)

    def periodic_metrics(self, model, step: int) -> Optional[Dict[str, Any]]:
        """Extra scores to log after optimiser step ``step`` (main rank only), or None.

        Pretraining logs its representation probe here every ``--probe-every`` steps.
        """
        return None

    def configure_optimizer(self, model):
        """AdamW without weight decay on 1-d parameters (norms, biases) and learned tokens."""

        decay, no_decay = [], []
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            if parameter.ndim <= 1 or name.endswith("token") or "position" in name:
                no_decay.append(parameter)
            else:
                decay.append(parameter)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return adamw(groups, lr=self.config.lr, betas=tuple(self.config.betas))

    def configure_scheduler(self, optimizer):
        """Cosine decay with linear warm-up, stepped once per optimiser step."""
        from torch.optim.lr_scheduler import LambdaLR

        config = self.config
        return LambdaLR(
            optimizer,
            lambda step: cosine_with_warmup(
                step, config.warmup_steps, config.max_steps, config.min_lr_ratio
            ),
        )

    def checkpoint_meta(self) -> Dict[str, Any]:
        """Task description stored in every checkpoint's ``meta.json`` (model config, stats...)."""
        return {}

    def restore_meta(self, meta: Dict[str, Any]) -> None:
        """Called on resume, before :meth:`build_model`, with the checkpoint's ``meta.json``."""

    def to_device(self, batch: Any) -> Any:
        """Move a batch (tensors nested in dicts, lists, tuples) to the training device."""
        import torch

        device = self.context.device if self.context else "cpu"
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    # --- the loop -------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> Dict[str, Any]:
        """Train to ``max_steps``, from scratch or from ``OUT/checkpoint-last``.

        Returns:
            ``{"step", "loss", "out_dir", "device", "world_size"}`` of the finished run.
        """
        import torch

        config = self.config
        if config.threads < 0:
            raise ValueError(f"threads must be 0 (torch's default) or more, not {config.threads}")
        if config.threads:
            torch.set_num_threads(config.threads)
        context = self.context = DistributedContext.setup(config.device)
        try:
            return self._fit(torch, context, resume)
        finally:
            context.shutdown()

    def _fit(self, torch, context: DistributedContext, resume: bool) -> Dict[str, Any]:
        config = self.config
        if context.device == "cpu":
            context.say(
                "msgfm: no GPU in use, training on CPU"
                + (f" with {context.world_size} processes (gloo)" if context.distributed else "")
            )
            # Bit-identical reruns and resumes on CPU: no nondeterministic kernels.
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            context.say(f"msgfm: training on {context.device} x {context.world_size}")
        resumed = None
        if resume:
            resumed = load_checkpoint(self.out_dir, map_location="cpu")
            self.restore_meta(resumed["meta"])
            context.say(f"msgfm: resuming from {resumed['path']} at step {resumed['meta']['step']}")

        # Same initial weights on every rank (DDP also broadcasts them; this keeps 1-process and
        # N-process runs identical).
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        model = self.build_model()
        if resumed is not None:
            from safetensors.torch import load_model

            load_model(model, str(resumed["path"] / "model.safetensors"), strict=True)
        model.to(context.device)
        self.model = model
        self.optimizer = self.configure_optimizer(model)
        self.scheduler = self.configure_scheduler(self.optimizer)
        self.step = 0
        if resumed is not None:
            state = resumed["trainer_state"]
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = int(state["step"])
            self._restore_validation_state(state.get("validation"))
        if config.monitor_mode not in ("min", "max"):
            raise ValueError(f"monitor_mode must be 'min' or 'max', got {config.monitor_mode!r}")
        val_dataset = self.build_val_dataset()

        train_model = model
        if context.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # Heterogeneous batches: a step without, say, DSM leaves the DSM embedding and decoder
            # unused on that rank; DDP must look for unused parameters every step.
            train_model = DistributedDataParallel(
                model,
                device_ids=[context.local_rank] if context.device.startswith("cuda") else None,
                find_unused_parameters=True,
            )

        loader = self._loader()
        metrics_log = (
            MetricsLog(self.out_dir / "metrics.jsonl", self.step) if context.is_main else None
        )
        progress = self._progress_bar()
        use_bf16 = context.device.startswith("cuda") and config.precision in ("auto", "bf16")
        if config.precision == "bf16" and not use_bf16:
            context.say("msgfm: bf16 autocast needs CUDA; training in fp32 on CPU")

        batches = iter(loader)
        last_loss = float("nan")
        started = time.time()
        while self.step < config.max_steps and not self.stopped_early:
            if self.should_stop is not None and self.should_stop():
                raise TrainingCancelledError(f"training stopped on request at step {self.step}")
            step = self.step
            torch.manual_seed(step_seed(config.seed, step, context.rank))
            train_model.train()
            self.optimizer.zero_grad(set_to_none=True)
            records: List[Dict[str, Any]] = []
            for micro in range(config.accumulation):
                batch = self.to_device(next(batches))
                last_micro = micro == config.accumulation - 1
                sync = (
                    contextlib.nullcontext()
                    if last_micro or not context.distributed
                    else train_model.no_sync()
                )
                with sync:
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                        output = self.training_step(train_model, batch)
                    (output.loss / config.accumulation).backward()
                records.append({"loss": float(output.loss.detach()), **_plain_metrics(output)})
            grad_norm = float("nan")
            if config.grad_clip > 0:
                grad_norm = float(
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                )
            lr = max(group["lr"] for group in self.optimizer.param_groups)
            self.optimizer.step()
            self.scheduler.step()
            self.step = step + 1

            record = _average_records(records)
            if context.distributed:
                record = _average_records(context.gather(record))
            last_loss = record["loss"]
            if metrics_log is not None and (self.step % config.log_every == 0 or self.step == 1):
                metrics_log.write(
                    {
                        "step": self.step,
                        **record,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "elapsed_s": round(time.time() - started, 3),
                    }
                )
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
            elif (
                context.is_main
                and self.on_step is None  # a caller told of every step (the worker) reports it
                and self.step % max(1, config.max_steps // 20) == 0
            ):
                context.say(f"step {self.step}/{config.max_steps} loss {last_loss:.4f} lr {lr:.2e}")
            if context.is_main:
                extra = self.periodic_metrics(model, self.step)
                if extra and metrics_log is not None:
                    metrics_log.write({"step": self.step, **extra})
            if self.on_step is not None:
                self.on_step(self.step, config.max_steps, record)
            if val_dataset is not None and (
                self.step == config.max_steps
                or (config.val_every and self.step % config.val_every == 0)
            ):
                self._validate_and_track(context, val_dataset, metrics_log, started)
            if (
                self.step % config.checkpoint_every == 0
                or self.step == config.max_steps
                or self.stopped_early
            ):
                self._checkpoint(context)
        if progress is not None:
            progress.close()
        # DDP keeps replicas identical only if every rank took every step; check it at the end.
        checksums = context.gather(parameter_checksum(model))
        if len(set(checksums)) > 1:
            raise RuntimeError(f"model replicas diverged across ranks: {checksums}")
        result = {
            "step": self.step,
            "loss": last_loss,
            "out_dir": str(self.out_dir),
            "device": context.device,
            "world_size": context.world_size,
            "parameter_checksums": checksums,
        }
        if val_dataset is not None:
            result.update(
                {
                    "val_metrics": self.val_metrics,
                    "best_metrics": self.best_metrics,
                    "best_step": self.best_step,
                    "stopped_early": self.stopped_early,
                    "best_checkpoint": str(self.out_dir / BEST),
                }
            )
        return result

    # --- validation -----------------------------------------------------------------------------

    def validate(self, dataset=None) -> Dict[str, Any]:
        """Score the model on the validation dataset (every rank does the whole set).

        Returns:
            ``{"val_<name>": value}`` from :meth:`validation_end` (``val_loss`` included).
        """
        import torch
        from torch.utils.data import DataLoader

        dataset = dataset if dataset is not None else self.build_val_dataset()
        if dataset is None or len(dataset) == 0:
            raise ValueError(f"{type(self).__name__} has no validation samples to validate on")
        loader = DataLoader(
            dataset,
            batch_size=self.config.val_batch_size,
            shuffle=False,
            collate_fn=self.collate,
            num_workers=self.config.num_workers,
        )
        model = self.model
        was_training = model.training
        model.eval()
        outputs: List[StepOutput] = []
        try:
            with torch.no_grad():
                for batch in loader:
                    outputs.append(self.validation_step(model, self.to_device(batch)))
        finally:
            model.train(was_training)
        scores = self.validation_end(outputs)
        return {f"val_{name}": value for name, value in scores.items()}

    def _validate_and_track(self, context, dataset, metrics_log, started: float) -> None:
        # Replicas are identical, so every rank computes the same scores and takes the same
        # early-stopping decision without any messaging.
        config = self.config
        self.val_metrics = self.validate(dataset)
        if config.monitor not in self.val_metrics:
            raise KeyError(
                f"--monitor {config.monitor!r} is not among the validation scores "
                f"{sorted(self.val_metrics)}"
            )
        value = float(self.val_metrics[config.monitor])
        improved = self.best_value is None or (
            value < self.best_value if config.monitor_mode == "min" else value > self.best_value
        )
        if improved:
            self.best_value, self.best_step = value, self.step
            self.best_metrics = dict(self.val_metrics)
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            if config.patience and self.bad_validations >= config.patience:
                self.stopped_early = True
        if metrics_log is not None:
            metrics_log.write(
                {
                    "step": self.step,
                    **self.val_metrics,
                    "best_step": self.best_step,
                    "elapsed_s": round(time.time() - started, 3),
                }
            )
        if context.is_main:
            context.say(
                f"step {self.step}: {config.monitor} {value:.4f}"
                + (" (best)" if improved else f" (best {self.best_value:.4f} at {self.best_step})")
                + (", stopping early" if self.stopped_early else "")
            )
        if improved:
            self._checkpoint(context, BEST)

    def _validation_state(self) -> Dict[str, Any]:
        return {
            "val_metrics": dict(self.val_metrics),
            "best_metrics": dict(self.best_metrics),
            "best_value": self.best_value,
            "best_step": self.best_step,
            "bad_validations": self.bad_validations,
            "stopped_early": self.stopped_early,
        }

    def _restore_validation_state(self, state: Optional[Dict[str, Any]]) -> None:
        if not state:
            return
        self.val_metrics = dict(state.get("val_metrics") or {})
        self.best_metrics = dict(state.get("best_metrics") or {})
        self.best_value = state.get("best_value")
        self.best_step = int(state.get("best_step", 0))
        self.bad_validations = int(state.get("bad_validations", 0))
        self.stopped_early = bool(state.get("stopped_early", False))

    def _loader(self):
        from torch.utils.data import DataLoader

        from ..data.pretrain_dataset import StepBatchSampler

        context = self.context
        config = self.config
        sampler = StepBatchSampler(
            self.step,
            config.max_steps,
            config.batch_size,
            config.accumulation,
            context.world_size,
            context.rank,
        )
        return DataLoader(
            self.build_dataset(),
            batch_sampler=sampler,
            collate_fn=self.collate,
            num_workers=config.num_workers,
            pin_memory=context.device.startswith("cuda"),
        )

    def _progress_bar(self):
        if not (self.context.is_main and self.config.progress and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=self.config.max_steps, initial=self.step, unit="step", dynamic_ncols=True)

    def _checkpoint(self, context: DistributedContext, name: str = LAST) -> None:
        import torch

        if context.is_main:
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": list(random.getstate()[1]),
                "validation": self._validation_state(),
            }
            meta = {
                "step": self.step,
                "trainer": asdict(self.config),
                "world_size": context.world_size,
                **self.checkpoint_meta(),
            }
            saved = save_checkpoint(self.out_dir / name, self.model, state, meta)
            if name == LAST and self.config.keep_every and self.step % self.config.keep_every == 0:
                copy_checkpoint(saved, self.out_dir / periodic_name(self.step))
        context.barrier()


def adamw(groups: List[Dict[str, Any]], lr: float, betas=(0.9, 0.999)):
    """AdamW over parameter groups, fused into one kernel per step where torch has one.

    torch's default AdamW on CPU updates one tensor at a time (about 10 % of a ``lite``
    pretraining step: hundreds of small tensors, several element-wise passes each); the fused
    implementation (CPU and CUDA) does the same arithmetic in one pass per tensor list. It needs
    every parameter on one device, floating point; otherwise the default is used.
    """
    import torch

    params = [p for group in groups for p in group["params"]]
    devices = {p.device.type for p in params}
    fused = (
        len(devices) == 1
        and devices <= {"cpu", "cuda"}
        and all(p.dtype in (torch.float32, torch.float64, torch.bfloat16) for p in params)
    )
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True if fused else None)


class TrainingCancelledError(RuntimeError):
    """A run ended on request (``Trainer.should_stop``) before ``max_steps``."""


def parameter_checksum(model) -> str:
    """SHA-256 of every parameter's bytes, in name order (equal iff the weights are identical)."""
    import hashlib

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _plain_metrics(output: StepOutput) -> Dict[str, Any]:
    return {k: v for k, v in output.metrics.items() if v is not None}


def _average_records(records: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """Average numbers, per-key dicts and element-wise lists over micro-batches or ranks."""
    records = list(records)
    merged: Dict[str, Any] = {}
    for key in dict.fromkeys(k for r in records for k in r):
        values = [r[key] for r in records if key in r]
        first = values[0]
        if isinstance(first, dict):
            merged[key] = _average_records(values)
        elif isinstance(first, (list, tuple)):
            merged[key] = _average_lists(values)
        elif isinstance(first, (int, float)):
            merged[key] = sum(float(v) for v in values) / len(values)
        else:
            merged[key] = first
    return merged


def _average_lists(values: List[Any]) -> Any:
    if not values or not isinstance(values[0], (list, tuple)):
        return sum(float(v) for v in values) / len(values)
    return [_average_lists([v[i] for v in values]) for i in range(len(values[0]))]
