"""Feed-forward layer of a block: GELU MLP or gated (SwiGLU) MLP.

Parameter names ``fc1`` / ``fc2`` follow mamba_ssm's ``Mlp`` / ``GatedMLP`` and HyenaDNA's MLP, so their
checkpoints map by identity. For the gated form ``fc1`` produces the value and the gate stacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MLPConfig:
    """Feed-forward after the mixer in each block."""

    kind: Literal["gelu", "gelu_tanh", "swiglu"] = "swiglu"
    """Activation: plain GELU, tanh-approximated GELU (HyenaDNA), or SiLU-gated linear unit."""
    expand: float = 4.0
    """Hidden width as a multiple of d_model (for swiglu the usual choice is 8/3)."""
    multiple_of: int = 64
    """Round the hidden width up to a multiple of this (tensor-core friendly)."""
    bias: bool = False
    """Biases in fc1 / fc2 (HyenaDNA uses them)."""


def mlp_hidden_width(d_model: int, config: MLPConfig) -> int:
    """Hidden width: ``expand * d_model`` rounded up to ``multiple_of``."""
    width = int(config.expand * d_model)
    return -(-width // config.multiple_of) * config.multiple_of


class MLP(nn.Module):
    """``x [.., D] -> fc2(act(fc1(x))) [.., D]``; gated: ``fc2(value * silu(gate))``."""

    def __init__(self, d_model: int, config: MLPConfig):
        super().__init__()
        self.config = config
        hidden = mlp_hidden_width(d_model, config)
        gated = config.kind == "swiglu"
        self.fc1 = nn.Linear(d_model, 2 * hidden if gated else hidden, bias=config.bias)
        self.fc2 = nn.Linear(hidden, d_model, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "swiglu":
            # Two matmuls on fc1's halves give contiguous value / gate tensors; chunking one fused output
            # would leave SiLU and the product running on strided views (about 2x slower on CPU).
            value_w, gate_w = self.fc1.weight.chunk(2, dim=0)
            value_b, gate_b = (None, None) if self.fc1.bias is None else self.fc1.bias.chunk(2)
            gate = F.silu(F.linear(x, gate_w, gate_b))
            return self.fc2(F.linear(x, value_w, value_b) * gate)
        h = self.fc1(x)
        return self.fc2(F.gelu(h, approximate="tanh" if self.config.kind == "gelu_tanh" else "none"))
