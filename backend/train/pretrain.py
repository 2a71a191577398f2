"""msGFM pretraining: cross-sensor masked image modelling on a manifest's crops.

Run it with ``msgfm pretrain`` or, across processes or GPUs, with
``torchrun --nproc_per_node N -m backend.train.pretrain --config small --out runs/x``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..conventions import json_safe
from .options import PretrainOptions, add_arguments
from .trainer import StepOutput, Trainer, TrainerConfig


def use_registry_statistics(stats: Dict[str, Any], manifest: Any, names: Sequence[str]) -> None:
    """Replace the corpus statistics of the sensors ``names`` by the registry's, in place, where
    every source of that sensor in ``manifest`` is of a product level the registry's statistics
    describe (:data:`backend.sensors.STATISTICS_PRODUCT_LEVELS`); elsewhere the corpus' own stay,
    marked with the levels that kept them."""
    from ..data.stats import corpus_product_levels
    from ..sensors import STATISTICS_PRODUCT_LEVELS, get_sensor

    for name in names:
        if name not in stats["sensors"]:
            continue
        levels = corpus_product_levels(manifest, name)
        described = STATISTICS_PRODUCT_LEVELS.get(name)
        if described is not None and not set(levels) <= set(described):
            stats["sensors"][name]["source"] = (
                f"corpus ({', '.join(levels)}; the registry's statistics are {'/'.join(described)})"
            )
            continue
        sensor = get_sensor(name)
        stats["sensors"][name].update(
            mean=list(sensor.mean),
            std=list(sensor.std),
            source="registry",
            product_levels=list(described or levels),
        )


class PretrainTrainer(Trainer):
    """The pretraining task on top of :class:`Trainer`.

    Args:
        config: Run settings.
        model_config: Model config name (``small``, ``base``) or JSON file path.
        manifest: Manifest name or JSON path.
        data_root: Root of the manifest's relative paths (default: the manifest's own rule).
        stats_path: Band statistics JSON (``msgfm data stats``); computed from the manifest when
            omitted. A resumed run always uses the statistics stored in its checkpoint.
        stats_crops: Crops drawn to compute statistics when no file is given.
        crop_cache: ``--crop-cache``: ``auto``, a folder, or None/empty for no crop cache (see
            :mod:`backend.data.crop_cache`).
    """

    def __init__(
        self,
        config: TrainerConfig,
        model_config: str = "small",
        manifest: str = "samples",
        data_root: Optional[str] = None,
        stats_path: Optional[str] = None,
        stats_crops: int = 256,
        probe_every: int = 0,
        probe_data: Optional[str] = None,
        registry_stats: Sequence[str] = (),
        jitter: float = 0.0,
        crop_cache: Optional[str] = None,
    ):
        super().__init__(config)
        self.crop_cache = crop_cache
        self.registry_stats = [s.lower() for s in registry_stats]
        self.jitter = jitter
        self.probe_every = probe_every
        self.probe_data = probe_data
        self._probe_sets = None
        from ..models.config import get_config

        self.model_config = get_config(model_config)
        self.model_config.validate()
        self.manifest_name = manifest
        self.data_root = data_root
        self.stats_path = stats_path
        self.stats_crops = stats_crops
        self.band_stats: Optional[Dict[str, Any]] = None
        self._manifest = None

    def manifest(self):
        """The parsed manifest (read once)."""
        if self._manifest is None:
            from ..data.manifest import load_manifest

            self._manifest = load_manifest(self.manifest_name, self.data_root)
            missing = [s for s in self._manifest.sensors if s not in self.model_config.sensors]
            if missing:
                raise ValueError(
                    f"manifest {self._manifest.name!r} provides sensors {missing} that model config "
                    f"{self.model_config.name!r} lacks (it has {self.model_config.sensors}); add "
                    "them to the config's 'sensors' or drop those sources"
                )
        return self._manifest

    def restore_meta(self, meta: Dict[str, Any]) -> None:
        """Resume with the checkpoint's model config and normalisation, whatever the flags say."""
        from ..models.config import ModelConfig

        self.model_config = ModelConfig.from_dict(meta["model_config"])
        self.band_stats = meta["normalization"]

    def _ensure_stats(self) -> Dict[str, Any]:
        if self.band_stats is None:
            from ..data.stats import compute_band_stats, load_band_stats, save_band_stats

            if self.stats_path:
                self.band_stats = load_band_stats(self.stats_path)
            else:
                # Every rank computes the same numbers from the same seeded crops: no messaging.
                self.band_stats = compute_band_stats(
                    self.manifest(), self.model_config.image_size, self.stats_crops, seed=0
                )
                self._use_registry_stats(self.band_stats)
                if self.context is None or self.context.is_main:
                    save_band_stats(self.band_stats, self.out_dir / "band_stats.json")
        return self.band_stats

    def _use_registry_stats(self, stats: Dict[str, Any]) -> None:
        # A small corpus's statistics can be far from a user's imagery; sensors with published,
        # dataset-wide statistics in the registry can use those instead, but only where the
        # corpus is of the product level those statistics describe (L2A statistics for an L1C
        # corpus would shift every band; B01 by about 2.5 standard deviations).
        use_registry_statistics(stats, self.manifest(), self.registry_stats)

    def build_model(self):
        """The msGFM encoder with per-sensor SimMIM decoders."""
        from ..models.cross_sensor_mim import MsGFMPretrainModel

        return MsGFMPretrainModel(self.model_config)

    def build_dataset(self):
        """Seeded random crops (paired and unpaired) of the manifest, normalised."""
        from ..data.pretrain_dataset import BandNormalizer, PretrainCropDataset

        stats = self._ensure_stats()
        normalizer = BandNormalizer(stats["sensors"])
        return PretrainCropDataset(
            self.manifest(),
            self.model_config.image_size,
            seed=self.config.seed,
            normalizer=normalizer,
            views=self.model_config.align_weight > 0,
            jitter=self.jitter,
            cache=self._crop_cache(stats["sensors"], normalizer),
        )

    def _crop_cache(self, stats: Dict[str, Any], normalizer):
        from ..data.crop_cache import CropCache, resolve_cache_dir

        folder = resolve_cache_dir(self.crop_cache)
        if folder is None:
            return None
        context = self.context
        main = context is None or context.is_main
        say = context.say if context is not None else (lambda message: None)
        if main:  # one rank decodes; the others open what it wrote
            CropCache.open_or_build(self.manifest(), stats, normalizer, folder, say)
        if context is not None:
            context.barrier()
        return CropCache.open_or_build(self.manifest(), stats, normalizer, folder)

    def collate(self, samples: List[Any]) -> List[Dict[str, Any]]:
        """Per-sensor sub-batches (see :func:`~backend.data.pretrain_dataset.group_by_sensor`)."""
        from ..data.pretrain_dataset import group_by_sensor

        return group_by_sensor(samples)

    def training_step(self, model, batch: List[Dict[str, Any]]) -> StepOutput:
        """Masked reconstruction loss of one heterogeneous micro-batch."""
        from ..models.cross_sensor_mim import SubBatch

        output = model([SubBatch(**sub_batch) for sub_batch in batch])
        return StepOutput(
            loss=output.loss,
            metrics={
                "l1": float(output.l1.detach()),
                "aux_loss": float(output.aux_loss.detach()),
                "per_sensor_loss": dict(output.per_sensor_loss),
                "expert_load": output.expert_load,
                "moe_drop_fraction": output.drop_fraction,
                "cross_fraction": output.cross_fraction,
                "align_loss": output.align_loss,
                "align_accuracy": output.align_accuracy,
            },
        )

    def periodic_metrics(self, model, step: int) -> Optional[Dict[str, Any]]:
        """Every ``probe_every`` steps (and at the last): the probe of :mod:`.probe` on the
        encoder as it is now, beside a random-init encoder of the same config (computed once)."""
        if not self.probe_every or (
            step % self.probe_every and step != self.config.max_steps and step != 1
        ):
            return None
        from . import heldout, probe

        module = getattr(model, "module", model)
        if self._probe_sets is None:
            from ..data.fetch import sample_data_root

            root = Path(self.probe_data) if self.probe_data else sample_data_root()
            # Only the validation part: the final part stays unseen by every choice made on
            # these curves (which step, which recipe), and only sensors this corpus has
            # statistics for (a sensor it lacks has an untrained patch embedding).
            sensors = self._ensure_stats()["sensors"]
            self._probe_sets = [
                probe.split_probe_set(p, "validation")
                for p in probe.bigearthnet_probe_sets(root)
                if p.sensor in module.encoder.sensors and p.sensor in sensors
            ]
        if not self._probe_sets:
            return None
        was_training = module.training
        scores: Dict[str, Any] = {}
        try:
            for probe_set in self._probe_sets:
                # The probe's own product level's statistics (L2A patches, an L1C corpus).
                normalization = probe.normalization_for(self._ensure_stats(), probe_set)
                emb = probe.pooled_embeddings(
                    probe.torch_encoder(module.encoder, self.model_config, normalization, "now"),
                    probe_set,
                )
                result = probe.score_features(emb["patch"], probe_set.targets, emb["tiles"])
                for key in ("linear_map_micro", "knn_map_micro", "effective_rank"):
                    scores[f"probe_{probe_set.name}_{key}"] = result[key]
                # The same held-out patches with fixed masks: does the reconstruction use more
                # than each crop's visible mean yet (see .heldout)?
                images, valid = heldout.normalised_crops(
                    probe_set.images,
                    normalization[probe_set.sensor],
                    self.model_config.image_size,
                )
                check = heldout.reconstruction_check(module, probe_set.sensor, images, valid)
                for key, value in check.items():
                    scores[f"heldout_{probe_set.name}_{key}"] = value
        finally:
            module.train(was_training)
        return scores

    def checkpoint_meta(self) -> Dict[str, Any]:
        """Model config, band statistics and manifest summary for ``meta.json``."""
        from .. import __version__

        return {
            "task": "pretrain",
            "msgfm_version": __version__,
            "model_config": self.model_config.to_dict(),
            "normalization": self._ensure_stats(),
            "manifest": self.manifest().summary(),
        }

    def fit(self, resume: bool = False) -> Dict[str, Any]:
        """Train; on resume the stored statistics and model config are used."""
        result = super().fit(resume)
        if self.context is not None and self.context.is_main:
            summary = {**result, "model_config": self.model_config.name}
            (self.out_dir / "summary.json").write_text(
                json.dumps(json_safe(summary), indent=2) + "\n"
            )
        return result


def add_pretrain_arguments(parser) -> None:
    """The ``pretrain`` flags (shared by ``msgfm pretrain`` and ``python -m``)."""
    add_arguments(parser, PretrainOptions)


def trainer_from_args(args) -> PretrainTrainer:
    """Build the trainer from parsed ``pretrain`` arguments (or :class:`PretrainOptions`)."""
    options = (
        args if isinstance(args, PretrainOptions) else PretrainOptions.from_mapping(vars(args))
    )
    for name in ("max_steps", "batch_size", "accumulation", "log_every", "checkpoint_every"):
        if getattr(options, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    config = TrainerConfig(
        out_dir=options.out, progress=not options.no_progress, **options.trainer_fields()
    )
    return PretrainTrainer(
        config,
        options.config,
        options.manifest,
        options.data_root,
        options.stats,
        probe_every=options.probe_every,
        registry_stats=[s for s in options.registry_stats.split(",") if s.strip()],
        jitter=options.jitter,
        crop_cache=options.crop_cache,
    )


def run_pretrain(args) -> int:
    """Handler of ``msgfm pretrain``: train and print a JSON summary on stdout (rank 0)."""
    try:
        trainer = trainer_from_args(args)
        if args.resume and not (Path(args.out) / "checkpoint-last").exists():
            from ..checkpoints import resolve_checkpoint

            if resolve_checkpoint(args.out) is None:
                print(
                    f"msgfm pretrain: --resume given but {args.out} holds no checkpoint; "
                    "run without --resume to start",
                    file=sys.stderr,
                )
                return 2
        result = trainer.fit(resume=args.resume)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"msgfm pretrain: {exc}", file=sys.stderr)
        return 2
    if trainer.context is None or trainer.context.is_main:
        print(json.dumps(json_safe(result)))  # undefined scores as null
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point for ``python -m backend.train.pretrain`` (and ``torchrun -m``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="msgfm-pretrain", description=__doc__)
    add_pretrain_arguments(parser)
    return run_pretrain(parser.parse_args(argv))


if __name__ == "__main__":
    from .distributed import exit_process

    exit_process(main())
