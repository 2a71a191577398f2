"""SimMIM block masking: square blocks of ``mask_patch_size`` pixels, a fixed share of them masked.

Masks are drawn with torch's default generator, so a trainer that seeds it and checkpoints
``torch.get_rng_state()`` replays the same masks after a resume.
"""

from __future__ import annotations

import torch
from torch import Tensor


class BlockMaskGenerator:
    """Draw random block masks.

    Args:
        mask_patch_size: Side of a masked block in pixels (32 in the paper).
        patch_size: Side of a token in pixels (the patch embedding stride).
        mask_ratio: Fraction of blocks masked; each image gets ``round(ratio * blocks)``.
    """

    def __init__(self, mask_patch_size: int = 32, patch_size: int = 4, mask_ratio: float = 0.6):
        if mask_patch_size % patch_size:
            raise ValueError(
                f"mask_patch_size {mask_patch_size} must be a multiple of patch_size {patch_size}"
            )
        self.mask_patch_size = mask_patch_size
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio

    def num_masked(self, num_blocks: int) -> int:
        """Masked blocks per image (at least one, never all)."""
        return min(max(1, round(self.mask_ratio * num_blocks)), num_blocks - 1)

    def __call__(self, batch_size: int, height: int, width: int, device=None) -> Tensor:
        """Block mask ``(B, height / mask_patch_size, width / mask_patch_size)``, True = masked."""
        m = self.mask_patch_size
        if height % m or width % m:
            raise ValueError(
                f"image size {height}x{width} must be a multiple of the mask patch size {m} px"
            )
        rows, cols = height // m, width // m
        num_blocks = rows * cols
        if num_blocks < 2:
            raise ValueError(
                f"image size {height}x{width} holds {num_blocks} mask block(s) of {m} px; "
                f"masked image modelling needs at least 2"
            )
        order = torch.rand(batch_size, num_blocks).argsort(dim=1)
        mask = order < self.num_masked(num_blocks)
        return mask.reshape(batch_size, rows, cols).to(device)

    def to_tokens(self, block_mask: Tensor) -> Tensor:
        """Expand a block mask to the token grid ``(B, H / patch, W / patch)``."""
        scale = self.mask_patch_size // self.patch_size
        return block_mask.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)

    def to_pixels(self, block_mask: Tensor) -> Tensor:
        """Expand a block mask to pixels ``(B, H, W)``."""
        scale = self.mask_patch_size
        return block_mask.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
