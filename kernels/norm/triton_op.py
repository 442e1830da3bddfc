"""Launches of the RMSNorm Triton kernels and their autograd wrapper.

``rms_norm_triton`` has the signature of ``rms_norm_ref``: ``x [..., D]``, ``weight [D]``, ``residual [..., D]?``,
``eps``, ``residual_in_fp32`` -> ``(y [..., D] in x's dtype, new_residual [..., D])``.
"""

from __future__ import annotations

import torch
import triton

from zoo.kernels.norm.reference import _check
from zoo.kernels.norm.triton_kernels import rms_norm_bwd_kernel, rms_norm_fwd_kernel

# One row per block: beyond this the row no longer fits in registers and a looped kernel would be needed.
_MAX_D = 65536


def _rows(t: torch.Tensor | None, channels: int) -> torch.Tensor | None:
    """``[M, D]`` view with unit stride along D (a copy only when the last dim is strided)."""
    if t is None:
        return None
    t = t.reshape(-1, channels)
    return t if t.stride(-1) == 1 else t.contiguous()


def _programs(rows: int, device: torch.device) -> int:
    # Enough programs to fill the GPU; each then owns a run of rows and one partial weight gradient.
    units = torch.cuda.get_device_properties(device).multi_processor_count * 4 if device.type == "cuda" else 4
    return max(1, min(rows, units))


def rms_norm_fwd(x, weight, residual, eps, residual_dtype):
    """Forward launch on ``[M, D]`` rows: ``(y [M, D], new_residual [M, D], rstd [M] fp32)``."""
    rows, channels = x.shape
    y = torch.empty(rows, channels, device=x.device, dtype=x.dtype)
    r_out = torch.empty(rows, channels, device=x.device, dtype=residual_dtype)
    rstd = torch.empty(rows, device=x.device, dtype=torch.float32)
    if rows:
        rms_norm_fwd_kernel[(rows,)](
            x, residual, weight, y, r_out, rstd,
            x.stride(0), residual.stride(0) if residual is not None else 0, channels, eps,
            BD=triton.next_power_of_2(channels), HAS_RESIDUAL=residual is not None,
        )  # fmt: skip
    return y, r_out, rstd


def rms_norm_bwd(x, weight, residual, rstd, dy, dr_out):
    """Backward launch on ``[M, D]`` rows: ``(dx, dweight, dresidual | None)`` in the inputs' dtypes."""
    rows, channels = x.shape
    n_prog = _programs(rows, x.device)
    rows_per_prog = triton.cdiv(rows, n_prog)
    dx = torch.empty(rows, channels, device=x.device, dtype=x.dtype)
    dres = torch.empty(rows, channels, device=x.device, dtype=residual.dtype) if residual is not None else None
    dw = torch.empty(n_prog, channels, device=x.device, dtype=torch.float32)
    if rows:
        rms_norm_bwd_kernel[(n_prog,)](
            x, residual, weight, rstd, dy, dr_out, dx, dres, dw,
            x.stride(0), residual.stride(0) if residual is not None else 0, dy.stride(0),
            dr_out.stride(0) if dr_out is not None else 0, rows, channels,
            ROWS=rows_per_prog, BD=triton.next_power_of_2(channels),
            HAS_RESIDUAL=residual is not None, HAS_DR_OUT=dr_out is not None,
        )  # fmt: skip
    else:
        dw.zero_()
    return dx, dw.sum(0).to(weight.dtype), dres


class RMSNormFunction(torch.autograd.Function):
    """Autograd wrapper: saves x, residual and rstd; the backward recomputes the fp32 sum."""

    @staticmethod
    def forward(ctx, x, weight, residual, eps, residual_in_fp32):
        shape, channels = x.shape, x.shape[-1]
        x2, res2 = _rows(x, channels), _rows(residual, channels)
        residual_dtype = torch.float32 if residual_in_fp32 else x.dtype
        y, r_out, rstd = rms_norm_fwd(x2, weight.contiguous(), res2, eps, residual_dtype)
        ctx.save_for_backward(x2, weight, res2, rstd)
        ctx.shape = shape
        # Gradients may flow into y, into new_residual, or both; absent ones stay None instead of zeros.
        ctx.set_materialize_grads(False)
        return y.reshape(shape), r_out.reshape(shape)

    @staticmethod
    def backward(ctx, dy, dr_out):
        x2, weight, res2, rstd = ctx.saved_tensors
        channels = x2.shape[-1]
        dy = torch.zeros_like(x2) if dy is None else _rows(dy, channels)
        dx, dweight, dres = rms_norm_bwd(x2, weight.contiguous(), res2, rstd, dy, _rows(dr_out, channels))
        dres = dres.reshape(ctx.shape) if dres is not None else None
        return dx.reshape(ctx.shape), dweight, dres, None, None


def rms_norm_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    residual: torch.Tensor | None = None,
    eps: float = 1e-5,
    residual_in_fp32: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton RMSNorm of ``x + residual``: ``(y [..., D] in x's dtype, new_residual [..., D])``."""
    _check(x, weight, residual)
    if x.shape[-1] > _MAX_D:
        raise ValueError(f"rms_norm Triton kernel handles D <= {_MAX_D}, got D={x.shape[-1]}; use impl='torch'")
    return RMSNormFunction.apply(x, weight, residual, eps, residual_in_fp32)
