"""Mixture-of-Experts MLP: a learned top-k router over expert MLPs, with capacity and load balancing.

Dispatch gathers each expert's tokens and runs the expert on those only, so a MoE block costs about
one dense MLP however many experts it has. In training each expert takes at most
``ceil(capacity_factor * tokens * top_k / num_experts)`` tokens; when more are routed to it, the
ones with the highest gate values are kept (batch-prioritised routing) and the rest skip the MLP
(the block's residual carries them). In eval mode there is no capacity: every routed token is
processed, which gives the same output as training dispatch whenever nothing is dropped, and the
gather/scatter form (NonZero, Gather, ScatterND) exports to ONNX with a dynamic token count.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .swin import Mlp


class MoEMlp(nn.Module):
    """Top-k routed mixture of MLP experts.

    Args:
        dim: Token width.
        hidden_dim: Hidden width of each expert MLP.
        num_experts: Number of experts.
        top_k: Experts per token.
        capacity_factor: Training capacity relative to an even share of the tokens.
        gate_noise: Training-time router noise: normal noise of standard deviation
            ``gate_noise / num_experts`` on the logits (Swin-MoE/Tutel's ``gate_noise``).

    After each training forward, :attr:`drop_fraction` holds the share of routing assignments
    that exceeded an expert's capacity and skipped the MLP (0 in eval mode).
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        num_experts: int,
        top_k: int = 1,
        capacity_factor: float = 1.25,
        gate_noise: float = 0.0,
    ):
        super().__init__()
        self.gate_noise = gate_noise
        self.drop_fraction = 0.0
        self.num_experts = num_experts
        self.top_k = top_k
        self.capacity_factor = capacity_factor
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList([Mlp(dim, hidden_dim) for _ in range(num_experts)])

    def capacity(self, num_tokens: int) -> Optional[int]:
        """Tokens each expert may take in this mode (None = unlimited, in eval mode)."""
        if not self.training:
            return None
        return max(1, math.ceil(self.capacity_factor * num_tokens * self.top_k / self.num_experts))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Route and process tokens.

        Args:
            x: Tokens ``(..., C)``.

        Returns:
            ``(y, aux_loss, expert_load)``: ``y`` shaped like ``x``; the Switch-Transformer
            load-balancing loss ``E * sum_e load_e * mean_prob_e`` (1.0 when balanced);
            the fraction of routing assignments per expert ``(E,)`` (before capacity drops).
        """
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        logits = self.router(tokens).float()
        if self.training and self.gate_noise > 0:
            logits = logits + torch.randn_like(logits) * (self.gate_noise / self.num_experts)
        probs = logits.softmax(dim=-1)
        gate, expert_index = probs.topk(self.top_k, dim=-1)
        if self.top_k > 1:
            gate = gate / gate.sum(dim=-1, keepdim=True)

        assigned = F.one_hot(expert_index, self.num_experts).sum(dim=1).float()
        load = assigned.mean(dim=0) / self.top_k
        aux_loss = self.num_experts * (load * probs.mean(dim=0)).sum()

        capacity = self.capacity(tokens.shape[0])
        out = torch.zeros_like(tokens)
        dropped = 0
        for e, expert in enumerate(self.experts):
            token_ids, slot = torch.nonzero(expert_index == e, as_tuple=True)
            weight = gate[token_ids, slot]
            if capacity is not None:
                if token_ids.numel() == 0:
                    continue
                if token_ids.numel() > capacity:
                    dropped += token_ids.numel() - capacity
                    keep = weight.topk(capacity).indices
                    token_ids, weight = token_ids[keep], weight[keep]
            y = expert(tokens[token_ids]) * weight.unsqueeze(-1)
            # Under autocast the expert computes in bf16 while the residual stream stays fp32.
            out = out.index_add(0, token_ids, y.to(out.dtype))
        if capacity is not None:
            self.drop_fraction = dropped / max(1, tokens.shape[0] * self.top_k)
        return out.reshape(shape), aux_loss, load
