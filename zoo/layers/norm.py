"""RMSNorm on the fused kernel: the Triton kernel for CUDA tensors, the torch spec on CPU.

Same parameter (``weight``) and math as ``torch.nn.RMSNorm``, so checkpoints are unchanged. The reason
for not using ``nn.RMSNorm``: ``add_and_norm`` fuses the residual add of a pre-norm block into the norm's
single pass over memory (mamba_ssm does the same with its ``layer_norm_fn(prenorm=True)``).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.kernels.norm import rms_norm


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension, computed in fp32."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., D]`` -> normalised ``x`` in ``x``'s dtype."""
        return rms_norm(x, self.weight, eps=self.eps)[0]

    def add_and_norm(
        self, x: torch.Tensor, residual: torch.Tensor, residual_in_fp32: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(norm(x + residual) in x's dtype, x + residual)``, the sum in fp32 when ``residual_in_fp32``."""
        return rms_norm(x, self.weight, residual=residual, eps=self.eps, residual_in_fp32=residual_in_fp32)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
