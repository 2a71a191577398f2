"""Model configurations: every size of the msGFM encoder, its MoE and its pretraining objective.

Named configurations are registered with :func:`register_config`; :func:`get_config` resolves a
name or a JSON file written by :meth:`ModelConfig.to_dict`.

``small`` is the CPU configuration the bundled default models use: 96 px images, embed 32, depths
2-2-2-2, heads 1-2-4-8 (head dimension 32 as in Swin), window 6 and 4 experts. Its stages are
24, 12, 6 and 3 tokens wide, so stage 4 is smaller than the window and runs as one clipped,
unshifted window. A pretraining step of three 8-image sub-batches takes a few hundred
milliseconds on a 2-core CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..sensors import get_sensor

DEFAULT_SENSORS = (
    "rgb",
    "s2",
    "sar",
    "dsm",
    # Sources of the `samples` manifest filed under what they are (see backend/sensors.py).
    "s2_10band",
    "sar_vv",
    "sar_xband",
    "landsat",
    "landsat8",
    "landsat8_pan",
    "dem",
)


def default_moe_layers(depths: Sequence[int]) -> List[Tuple[int, int]]:
    """The paper's MoE placement, as Swin-MoE configures it: every other block of stage 3 and one
    block of stage 4.

    "Every other" takes the odd blocks (the shifted-window ones), as Swin-MoE does
    (``MOE_BLOCKS [[-1], [-1], [1, 3, 5, ...], [1]]``); in stage 4 that is block 1, the second
    block, or block 0 when the stage has a single block. (Checkpoints store their placement, so
    models trained with the older stage-4 block 0 keep it.)

    Args:
        depths: Blocks per stage.

    Returns:
        (stage, block) pairs, zero-based.
    """
    layers: List[Tuple[int, int]] = []
    if len(depths) >= 3:
        layers += [(2, block) for block in range(1, depths[2], 2)]
    if len(depths) >= 4 and depths[3] > 0:
        layers.append((3, 1 if depths[3] > 1 else 0))
    return layers


@dataclass
class ModelConfig:
    """Every size of the msGFM model and its pretraining objective.

    Attributes:
        name: Configuration name (recorded in checkpoints and ONNX metadata).
        embed_dim: Token width D of stage 1; stage i is ``D * 2**i`` wide.
        depths: Swin blocks per stage.
        num_heads: Attention heads per stage.
        window_size: Attention window in tokens (clipped to smaller feature maps).
        image_size: Pretraining image size in pixels.
        patch_size: Patch embedding kernel and stride in pixels.
        mlp_ratio: MLP hidden width relative to the token width.
        num_experts: Experts per MoE block.
        top_k: Experts each token is routed to.
        capacity_factor: Training capacity per expert, relative to an even share of the tokens.
        moe_layers: (stage, block) pairs whose MLP is a MoE; None = the paper's placement.
        aux_loss_weight: Weight of the MoE load-balancing loss in the total loss.
        mask_patch_size: Side of a masked block in pixels.
        mask_ratio: Fraction of blocks masked.
        p_cross: Probability that a paired sample is reconstructed cross-sensor.
        drop_path_rate: Stochastic depth rate of the last block (linearly increasing).
        sensors: Sensors with a patch embedding and a decoder.
        use_moe: False replaces every MoE with a dense MLP (ablation and benchmark).
        embedding_stages: Zero-based stages an exported embedding concatenates, each pooled onto
            the last stage's grid (see :mod:`.embedding_head`); empty = the last stage only.
        gate_noise: Router noise in training, as Swin-MoE's ``GATE_NOISE`` (1.0): normal noise
            of standard deviation ``gate_noise / num_experts`` added to the router logits, which
            keeps experts explored early on; 0 disables it.
        align_weight: Weight of the cross-view alignment loss (InfoNCE between the pooled,
            projected embeddings of two views of one ground window: the two sensors of a paired
            crop, or two augmented crops of an unpaired one); 0 = reconstruction only.
        align_temperature: Temperature of that InfoNCE loss.
        variance_weight, covariance_weight: Weights of VICReg's variance and covariance terms on
            the pooled multi-stage embedding of each batch (anti-collapse); 0 = off.
    """

    name: str = "custom"
    embed_dim: int = 32
    depths: List[int] = field(default_factory=lambda: [2, 2, 2, 2])
    num_heads: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    window_size: int = 6
    image_size: int = 96
    patch_size: int = 4
    mlp_ratio: float = 4.0
    num_experts: int = 4
    top_k: int = 1
    capacity_factor: float = 1.25
    moe_layers: Optional[List[Tuple[int, int]]] = None
    aux_loss_weight: float = 0.01
    mask_patch_size: int = 32
    mask_ratio: float = 0.6
    p_cross: float = 0.5
    drop_path_rate: float = 0.1
    sensors: List[str] = field(default_factory=lambda: list(DEFAULT_SENSORS))
    use_moe: bool = True
    embedding_stages: List[int] = field(default_factory=list)
    gate_noise: float = 1.0
    align_weight: float = 0.0
    align_temperature: float = 0.2
    variance_weight: float = 0.0
    covariance_weight: float = 0.0

    def __post_init__(self) -> None:
        self.depths = [int(d) for d in self.depths]
        self.num_heads = [int(h) for h in self.num_heads]
        self.sensors = [str(s).lower() for s in self.sensors]
        if self.moe_layers is None:
            self.moe_layers = default_moe_layers(self.depths)
        self.moe_layers = [(int(s), int(b)) for s, b in self.moe_layers]
        self.embedding_stages = [int(s) for s in self.embedding_stages]
        self.validate()

    @property
    def num_stages(self) -> int:
        """Number of Swin stages."""
        return len(self.depths)

    @property
    def stage_dims(self) -> List[int]:
        """Token width of each stage."""
        return [self.embed_dim * 2**i for i in range(self.num_stages)]

    @property
    def encoder_stride(self) -> int:
        """Pixels per token of the last stage (32 for patch 4 and four stages)."""
        return self.patch_size * 2 ** (self.num_stages - 1)

    def is_moe_block(self, stage: int, block: int) -> bool:
        """Whether block ``block`` of stage ``stage`` has a MoE MLP."""
        return self.use_moe and (stage, block) in self.moe_layers

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""

        def fail(message: str) -> None:
            raise ValueError(f"model config {self.name!r}: {message}")

        if len(self.depths) != len(self.num_heads) or not self.depths:
            fail(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        for dim, heads in zip(self.stage_dims, self.num_heads):
            if heads <= 0 or dim % heads:
                fail(f"stage width {dim} is not divisible by {heads} heads")
        if self.window_size < 1 or self.patch_size < 1 or self.embed_dim < 1:
            fail("window_size, patch_size and embed_dim must be positive")
        if self.mask_patch_size % self.patch_size:
            fail(f"mask_patch_size {self.mask_patch_size} must be a multiple of patch_size")
        if self.image_size % self.encoder_stride or self.image_size % self.mask_patch_size:
            fail(
                f"image_size {self.image_size} must be a multiple of the encoder stride "
                f"{self.encoder_stride} and of mask_patch_size {self.mask_patch_size}"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            fail(f"mask_ratio {self.mask_ratio} must be in [0, 1)")
        if not 0.0 <= self.p_cross <= 1.0:
            fail(f"p_cross {self.p_cross} must be in [0, 1]")
        if self.num_experts < 1 or not 1 <= self.top_k <= self.num_experts:
            fail(f"top_k {self.top_k} must be between 1 and num_experts {self.num_experts}")
        if self.capacity_factor <= 0:
            fail(f"capacity_factor {self.capacity_factor} must be positive")
        for stage, block in self.moe_layers:
            if not (0 <= stage < self.num_stages and 0 <= block < self.depths[stage]):
                fail(f"moe_layers entry {(stage, block)} is not a block of depths {self.depths}")
        if not self.sensors:
            fail("sensors must list at least one sensor")
        for stage in self.embedding_stages:
            if not 0 <= stage < self.num_stages:
                fail(f"embedding_stages entry {stage} is not a stage of depths {self.depths}")
        if self.gate_noise < 0 or self.align_weight < 0 or self.align_temperature <= 0:
            fail("gate_noise and align_weight must be >= 0 and align_temperature > 0")
        if self.variance_weight < 0 or self.covariance_weight < 0:
            fail("variance_weight and covariance_weight must be >= 0")
        for sensor in self.sensors:
            try:
                get_sensor(sensor)
            except KeyError as exc:
                fail(str(exc.args[0]))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary (round-trips through :meth:`from_dict`)."""
        data = asdict(self)
        data["moe_layers"] = [list(pair) for pair in self.moe_layers]
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)


CONFIGS: Dict[str, Callable[[], ModelConfig]] = {}


def register_config(factory: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register a named configuration factory under its function name."""
    CONFIGS[factory.__name__] = factory
    return factory


@register_config
def small() -> ModelConfig:
    """CPU configuration: trains here in minutes (the bundled models use the narrower ``lite``)."""
    return ModelConfig(
        name="small",
        embed_dim=32,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=6,
        image_size=96,
        patch_size=4,
        num_experts=4,
        top_k=1,
        drop_path_rate=0.1,
        embedding_stages=[0, 1, 2, 3],
    )


@register_config
def lite() -> ModelConfig:
    """The bundled default models' configuration: ``small`` at half the width, 2 experts.

    Embed 16 and 2 experts per MoE block (still top-1 MoE in the paper's places) bring the
    encoder from 4.3 M to 0.75 M parameters (about 3 MB in float32), so the plugin zip holds five
    task models and the pretrained encoder within the 25 MB of the QGIS plugin repository;
    ``small`` (about 17 MB per exported model) would not fit.
    """
    return ModelConfig(
        name="lite",
        embed_dim=16,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=6,
        image_size=96,
        patch_size=4,
        num_experts=2,
        top_k=1,
        drop_path_rate=0.1,
        embedding_stages=[0, 1, 2, 3],
    )


@register_config
def base() -> ModelConfig:
    """The paper's Swin-B encoder with 8 experts at 192 px."""
    return ModelConfig(
        name="base",
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=6,
        image_size=192,
        patch_size=4,
        num_experts=8,
        top_k=1,
        drop_path_rate=0.3,
    )


def get_config(name_or_path: str) -> ModelConfig:
    """Resolve a registered configuration name or a JSON file path.

    Args:
        name_or_path: ``"small"``, ``"base"`` or a path to a JSON file of config fields.

    Returns:
        A fresh ModelConfig.
    """
    if name_or_path in CONFIGS:
        return CONFIGS[name_or_path]()
    path = Path(name_or_path)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"model config file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"model config file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"model config file {path} must hold a JSON object of config fields")
        return ModelConfig.from_dict(data)
    raise KeyError(
        f"unknown model config {name_or_path!r}: use one of {sorted(CONFIGS)} or a JSON file path"
    )
