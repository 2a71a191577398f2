"""Swin Transformer building blocks: window attention with relative position bias, shifted-window
blocks and patch merging, on channels-last token maps ``(B, H, W, C)``.

Feature maps that are not a multiple of the window are padded, and padded tokens are masked out of
attention, so any tile size gives the same result for the same pixels. A map smaller than the
window is attended as one window clipped to the map, without a shift (there is nothing to shift
across). Shapes are read from tensors only through operations that trace into ONNX with a dynamic
batch axis.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Added to attention logits between tokens that must not see each other (different shifted
# regions, padding). Large enough to zero the softmax weight, small enough to stay finite in fp16.
_MASKED_LOGIT = -100.0


class DropPath(nn.Module):
    """Stochastic depth: drops a residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Two-layer feed-forward network with GELU."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x: Tensor, window: int) -> Tensor:
    """Split ``(B, H, W, C)`` (H, W multiples of ``window``) into ``(B * nW, window**2, C)``."""
    _, H, W, C = x.shape
    x = x.reshape(-1, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)


def window_merge(windows: Tensor, window: int, H: int, W: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, window**2, C)`` to ``(B, H, W, C)``."""
    C = windows.shape[-1]
    x = windows.reshape(-1, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def relative_position_index(window: int, table_window: int) -> Tensor:
    """Index into a ``(2 * table_window - 1)**2`` bias table for each token pair of a window.

    A window clipped below the configured size reads the central part of the same table, so the
    learned biases keep their meaning (offset (dy, dx) always maps to the same entry).
    """
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :] + (table_window - 1)
    return relative[0] * (2 * table_window - 1) + relative[1]


def attention_mask(
    H: int, W: int, padded_H: int, padded_W: int, window: int, shift: int
) -> Optional[Tensor]:
    """Additive mask ``(nW, N, N)`` for shifted and/or padded windows, or None when not needed.

    Tokens attend only within their own region of the rolled map (so the wrapped-around borders
    do not mix), and never to padding.
    """
    if shift == 0 and padded_H == H and padded_W == W:
        return None
    region = torch.zeros(padded_H, padded_W)
    if shift > 0:
        bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        label = 0
        for rows in bounds:
            for cols in bounds:
                region[rows, cols] = label
                label += 1
    valid = torch.zeros(padded_H, padded_W, dtype=torch.bool)
    valid[:H, :W] = True
    if shift > 0:
        valid = torch.roll(valid, shifts=(-shift, -shift), dims=(0, 1))
    region_windows = window_partition(region[None, :, :, None], window).squeeze(-1)
    valid_windows = window_partition(valid[None, :, :, None].float(), window).squeeze(-1) > 0
    blocked = (region_windows[:, :, None] != region_windows[:, None, :]) | ~valid_windows[
        :, None, :
    ]
    return torch.zeros(blocked.shape).masked_fill(blocked, _MASKED_LOGIT)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window_size: int):
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        self._index_cache: Dict[Tuple[int, str], Tensor] = {}

    def _bias(self, window: int) -> Tensor:
        key = (window, str(self.relative_position_bias.device))
        if key not in self._index_cache:
            index = relative_position_index(window, self.window_size)
            self._index_cache[key] = index.to(self.relative_position_bias.device)
        index = self._index_cache[key]
        N = window * window
        bias = self.relative_position_bias[index.reshape(-1)].reshape(N, N, self.num_heads)
        return bias.permute(2, 0, 1)

    def forward(self, x: Tensor, window: int, mask: Optional[Tensor] = None) -> Tensor:
        """Attend within windows.

        Args:
            x: Window tokens ``(B * nW, window**2, C)``.
            window: Side of the (possibly clipped) window.
            mask: Additive ``(nW, N, N)`` mask or None.
        """
        _, N, C = x.shape
        head_dim = C // self.num_heads
        qkv = self.qkv(x).reshape(-1, N, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = (q * self.scale) @ k.transpose(-2, -1) + self._bias(window).unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            logits = logits.reshape(-1, nW, self.num_heads, N, N) + mask[None, :, None]
            logits = logits.reshape(-1, self.num_heads, N, N)
        out = logits.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(-1, N, C))


class SwinBlock(nn.Module):
    """One Swin block: (shifted) window attention and an MLP, each pre-norm with a residual.

    The MLP is either :class:`Mlp` or a mixture of experts; a MoE returns ``(y, aux, load)``, which
    the block passes on so the encoder can sum the load-balancing losses.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shifted: bool,
        mlp: nn.Module,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shifted else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = mlp
        self._mask_cache: Dict[Tuple[int, int, str], Optional[Tensor]] = {}

    def _mask(
        self, H: int, W: int, Hp: int, Wp: int, window: int, shift: int, device
    ) -> Optional[Tensor]:
        key = (H, W, str(device))
        if key not in self._mask_cache:
            mask = attention_mask(H, W, Hp, Wp, window, shift)
            self._mask_cache[key] = None if mask is None else mask.to(device)
        return self._mask_cache[key]

    def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Args: x ``(B, H, W, C)``. Returns ``(x, aux_loss or None, expert_load or None)``."""
        H, W = x.shape[1], x.shape[2]
        window = min(self.window_size, H, W)
        shift = self.shift_size if min(H, W) > self.window_size else 0
        # Round up with non-negative operands: traced shape arithmetic exports to ONNX integer
        # division, which truncates toward zero (a ceil written as -(-H // w) would go wrong).
        Hp = (H + window - 1) // window * window
        Wp = (W + window - 1) // window * window

        shortcut = x
        x = self.norm1(x)
        if Hp != H or Wp != W:
            x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        mask = self._mask(H, W, Hp, Wp, window, shift, x.device)
        x = self.attn(window_partition(x, window), window, mask)
        x = window_merge(x, window, Hp, Wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        if Hp != H or Wp != W:
            x = x[:, :H, :W, :]
        x = shortcut + self.drop_path(x)

        y = self.mlp(self.norm2(x))
        aux = load = None
        if isinstance(y, tuple):
            y, aux, load = y
        return x + self.drop_path(y), aux, load


class PatchMerging(nn.Module):
    """Halve the resolution and double the width: concatenate 2x2 neighbours, norm, project."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        _, H, W, _ = x.shape
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x))
