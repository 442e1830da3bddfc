"""RMSNorm with an optional fused residual add: the plain torch spec.

    r = x + residual            (new_residual; fp32 when residual_in_fp32, else x's dtype)
    y = r / sqrt(mean(r^2) + eps) * weight

computed in fp32 from the unrounded sum, as mamba_ssm's ``layer_norm_fn(..., prenorm=True, is_rms_norm=True)``.
Shapes: ``x [..., D]``, ``weight [D]``, ``residual [..., D]?``; ``y`` has x's shape and dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape


def _check(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None) -> None:
    if x.ndim < 1:
        raise ValueError("x must have shape [..., D] with at least one dimension, got a scalar")
    check_shape("weight", weight, (x.shape[-1],), "[D]")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual must have the shape of x {tuple(x.shape)}, got {tuple(residual.shape)}")


def rms_norm_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    residual: torch.Tensor | None = None,
    eps: float = 1e-5,
    residual_in_fp32: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm of ``x + residual``: returns ``(y [..., D] in x's dtype, new_residual [..., D])``."""
    _check(x, weight, residual)
    r = x.float() if residual is None else x.float() + residual.float()
    y = r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return y.to(x.dtype), r.to(torch.float32 if residual_in_fp32 else x.dtype)


def rms_norm_torch(
    x: torch.Tensor,
    weight: torch.Tensor,
    residual: torch.Tensor | None = None,
    eps: float = 1e-5,
    residual_in_fp32: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU path: :func:`rms_norm_ref`'s math through ``F.rms_norm``, torch's fused kernel.

    The spec's four elementwise passes each allocate a ``[..., D]`` temporary; at long T that raised a
    Mamba model's peak RSS by a quarter to a half over ``nn.RMSNorm`` (benchmarks/cpu_forward.py).
    """
    _check(x, weight, residual)
    r = x.float() if residual is None else x.float() + residual.float()
    y = F.rms_norm(r, (r.shape[-1],), weight.float(), eps)
    return y.to(x.dtype), r.to(torch.float32 if residual_in_fp32 else x.dtype)
