"""Public entry points of the selective scan (Mamba-1): chunked (training / prefill) and step (decode)."""

from __future__ import annotations

from typing import Literal

import torch

from zoo.kernels.common import Impl, check_shape, dispatch, lazy
from zoo.kernels.selective_scan.cpu_fused import selective_scan_cpu
from zoo.kernels.selective_scan.reference import (
    _readout,
    _time_step,
    selective_scan_chunk_ref,
    selective_scan_recurrent_ref,
)

_IMPLS = {
    "triton": lazy("zoo.kernels.selective_scan.triton_op", "selective_scan_triton"),
    "torch": selective_scan_chunk_ref,
    "reference": selective_scan_recurrent_ref,
}


def selective_scan_chunk(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D_skip: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    impl: Impl | Literal["cpu"] = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan: ``u, delta, z? [B,T,D]``, ``A [D,N]``, ``Bm, Cm [B,T,N]``, ``D_skip, delta_bias [D]?``.

    ``delta`` becomes ``softplus(delta + delta_bias)`` when ``delta_softplus`` (else ``delta + delta_bias``).
    Returns ``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``. ``chunk_size`` is the chunk length
    ``L``: any ``T`` is accepted, and the result does not depend on it.

    ``impl``:

    * ``"auto"``: the Triton kernel for CUDA tensors, ``"cpu"`` for CPU tensors (training and inference: it
      was the faster and leaner of the CPU paths in both).
    * ``"cpu"``: the fused CPU scan (``cpu_fused.py``), one autograd node that saves only the state entering
      every chunk and recomputes the rest in backward: training memory ``O(B T/L D N)`` beyond ``[B,T,D]``
      tensors. It caps ``L`` at 16 (its work buffers then stay cache-sized).
    * ``"torch"``: the chunked torch form ``selective_scan_chunk_ref``, with autograd through its
      vectorised discretisation (training memory ``O(B T D N)``).
    * ``"triton"``, ``"reference"``: the Triton kernel (CPU tensors only under Triton's interpreter), the
      token-by-token spec.
    """
    if impl == "cpu" or (impl == "auto" and u.device.type == "cpu"):
        if u.device.type != "cpu":
            raise ValueError(f"impl='cpu' needs CPU tensors, got u on {u.device}")
        fn = selective_scan_cpu
    else:
        fn = dispatch(impl, _IMPLS, u)
    return fn(u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, chunk_size)


def _selective_scan_step_torch(u_t, delta_t, A, B_t, C_t, D_skip, z_t, delta_bias, delta_softplus, state):
    """The step in plain torch (the step's spec; differentiable). Shapes are checked by the caller."""
    dt = _time_step(delta_t, delta_bias, delta_softplus)  # [B,D]
    decay = torch.exp(dt[:, :, None] * A.float())  # [B,D,N]
    state = torch.addcmul((dt * u_t.float())[:, :, None] * B_t.float()[:, None, :], decay, state.float())
    y_t = (state @ C_t.float()[:, :, None]).squeeze(-1)  # [B,D]
    return _readout(y_t, u_t, D_skip, z_t).to(u_t.dtype), state


_STEP_IMPLS = {
    "triton": lazy("zoo.kernels.selective_scan.triton_step", "selective_scan_step_triton"),
    "torch": _selective_scan_step_torch,
    # the one-token step is its own spec: there is no separate recurrent form of it
    "reference": _selective_scan_step_torch,
}


def selective_scan_step(
    u_t: torch.Tensor,
    delta_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D_skip: torch.Tensor | None,
    z_t: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    state: torch.Tensor,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``u_t, delta_t [B,D]``, ``A [D,N]``, ``B_t, C_t [B,N]``, ``z_t [B,D]?``, ``state [B,D,N]``.

    Returns ``(y_t [B,D] in u_t's dtype, new_state [B,D,N] fp32)``; ``state`` is left unchanged.
    ``impl="triton"`` is one fused kernel, inference only (a ValueError if autograd would need a graph);
    ``"auto"`` takes it for CUDA tensors unless grad mode is on and an input requires grad, then the torch step.
    """
    check_shape("u_t", u_t, (None, None), "[B,D]")
    b, d = u_t.shape
    check_shape("delta_t", delta_t, (b, d), "[B,D]")
    check_shape("A", A, (d, None), "[D,N]")
    n = A.shape[1]
    check_shape("B_t", B_t, (b, n), "[B,N]")
    check_shape("C_t", C_t, (b, n), "[B,N]")
    if D_skip is not None:
        check_shape("D_skip", D_skip, (d,), "[D]")
    if z_t is not None:
        check_shape("z_t", z_t, (b, d), "[B,D]")
    if delta_bias is not None:
        check_shape("delta_bias", delta_bias, (d,), "[D]")
    check_shape("state", state, (b, d, n), "[B,D,N]")
    tensors = (u_t, delta_t, A, B_t, C_t, D_skip, z_t, delta_bias, state)
    if impl == "auto" and torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        # a decode step called with trainable parameters outside no_grad: keep it differentiable
        impl = "torch"
    return dispatch(impl, _STEP_IMPLS, u_t)(u_t, delta_t, A, B_t, C_t, D_skip, z_t, delta_bias, delta_softplus, state)
