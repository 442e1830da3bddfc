"""Public entry point of RMSNorm with a fused residual add."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, dispatch, lazy
from zoo.kernels.norm.reference import rms_norm_ref, rms_norm_torch

_IMPLS = {
    "triton": lazy("zoo.kernels.norm.triton_op", "rms_norm_triton"),
    "torch": rms_norm_torch,
    "reference": rms_norm_ref,
}


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    residual: torch.Tensor | None = None,
    eps: float = 1e-5,
    residual_in_fp32: bool = True,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm of ``x + residual`` over the last dim.

    ``x [..., D]``, ``weight [D]``, ``residual [..., D]?`` -> ``(y [..., D] in x's dtype, new_residual [..., D])``,
    ``new_residual = x + residual`` in fp32 when ``residual_in_fp32`` else in x's dtype (the next block's residual).
    """
    return dispatch(impl, _IMPLS, x)(x, weight, residual, eps, residual_in_fp32)
