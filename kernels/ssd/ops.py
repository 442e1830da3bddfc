"""Public entry points of the SSD scan (Mamba-2): chunked (training / prefill) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, check_shape, dispatch, lazy
from zoo.kernels.ssd.reference import _heads, _step, ssd_chunk_ref, ssd_recurrent_ref

_IMPLS = {
    "triton": lazy("zoo.kernels.ssd.triton_op", "ssd_triton"),
    "torch": ssd_chunk_ref,
    "reference": ssd_recurrent_ref,
}


def ssd_chunk(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D_skip: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    impl: Impl = "auto",
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSD scan of ``x [B,T,H,V]`` with ``dt [B,T,H]``, ``A [H]``, ``Bm, Cm [B,T,G,K]``, ``D_skip [H]?``.

    Returns ``(y [B,T,H,V] in x's dtype, final_state [B,H,K,V] fp32)``. ``chunk_size`` is the chunk
    length ``L`` of the chunked form (any ``T`` is accepted; 64 is fastest on CPU at ``K=128, V=64``).

    ``cu_seqlens`` (int32/int64 ``[S+1]``, ``0 = c_0 <= ... <= c_S = T``, requires ``B == 1``) packs ``S``
    independent sequences along time: the state restarts at every boundary (from ``initial_state[s]``, then
    ``[S,H,K,V]``, or zeros) and ``final_state`` is ``[S,H,K,V]``, one per sequence.
    """
    return dispatch(impl, _IMPLS, x)(x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size, cu_seqlens)


def _ssd_step_torch(x_t, dt_t, A, B_t, C_t, D_skip, state):
    """The step in plain torch (the step's spec; differentiable). Shapes are checked by the caller."""
    h = x_t.shape[1]
    y_t, state = _step(
        x_t.float(),
        dt_t.float(),
        A.float(),
        _heads(B_t.float(), h),
        _heads(C_t.float(), h),
        None if D_skip is None else D_skip.float(),
        state.float(),
    )
    return y_t.to(x_t.dtype), state


_STEP_IMPLS = {
    "triton": lazy("zoo.kernels.ssd.triton_step", "ssd_step_triton"),
    "torch": _ssd_step_torch,
    # the one-token step is its own spec: there is no separate recurrent form of it
    "reference": _ssd_step_torch,
}


def ssd_step(
    x_t: torch.Tensor,
    dt_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D_skip: torch.Tensor | None,
    state: torch.Tensor,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``x_t [B,H,V]``, ``dt_t [B,H]``, ``B_t, C_t [B,G,K]``, ``state [B,H,K,V]``.

    Returns ``(y_t [B,H,V] in x_t's dtype, new_state [B,H,K,V] fp32)``; ``state`` is left unchanged.
    ``impl="triton"`` is one fused kernel, inference only (a ValueError if autograd would need a graph);
    ``"auto"`` takes it for CUDA tensors unless grad mode is on and an input requires grad, then the torch step.
    """
    check_shape("x_t", x_t, (None, None, None), "[B,H,V]")
    b, h, v = x_t.shape
    check_shape("dt_t", dt_t, (b, h), "[B,H]")
    check_shape("A", A, (h,), "[H]")
    check_shape("B_t", B_t, (b, None, None), "[B,G,K]")
    g, k = B_t.shape[1:]
    check_shape("C_t", C_t, (b, g, k), "[B,G,K]")
    if g == 0 or h % g:
        raise ValueError(f"H={h} heads must be a multiple of G={g} groups (each B/C group serves H/G heads)")
    if D_skip is not None:
        check_shape("D_skip", D_skip, (h,), "[H]")
    check_shape("state", state, (b, h, k, v), "[B,H,K,V]")
    tensors = (x_t, dt_t, A, B_t, C_t, D_skip, state)
    if impl == "auto" and torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        # a decode step called with trainable parameters outside no_grad: keep it differentiable
        impl = "torch"
    return dispatch(impl, _STEP_IMPLS, x_t)(x_t, dt_t, A, B_t, C_t, D_skip, state)
