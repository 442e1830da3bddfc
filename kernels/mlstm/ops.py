"""Public entry points of the mLSTM cell: chunked (training / prefill, autograd) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, check_shape, dispatch, lazy, resolve_impl
from zoo.kernels.mlstm.reference import (
    MLSTMStateTuple,
    _check_state,
    _step,
    mlstm_chunk_ref,
    mlstm_recurrent_ref,
)

_IMPLS = {
    "triton": lazy("zoo.kernels.mlstm.triton_op", "mlstm_triton"),
    "torch": mlstm_chunk_ref,
    "reference": mlstm_recurrent_ref,
}
#: the step's implementations: a fused Triton kernel (inference only) and the torch step (``reference`` too)
_STEP_IMPLS = ("triton", "torch", "reference")
_step_triton = lazy("zoo.kernels.mlstm.triton_step", "mlstm_step_triton")


def mlstm_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    initial_state: MLSTMStateTuple | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """mLSTM over a sequence.

    ``q, k [B,T,H,K]``, ``v [B,T,H,V]``, ``igate, fgate [B,T,H]`` (pre-activations),
    ``initial_state = (C [B,H,K,V], n [B,H,K], m [B,H])`` or None (zeros).
    Returns ``(h [B,T,H,V] in q's dtype, (C, n, m) in fp32)``. ``impl="auto"`` is the Triton kernel
    (``triton_op.py``, forward and backward in Triton) for CUDA tensors, the chunked torch form on CPU.
    """
    return dispatch(impl, _IMPLS, q)(q, k, v, igate, fgate, initial_state, eps, chunk_size)


def mlstm_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    i_t: torch.Tensor,
    f_t: torch.Tensor,
    state: MLSTMStateTuple,
    eps: float = 1e-6,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """One token: ``q_t, k_t [B,H,K]``, ``v_t [B,H,V]``, ``i_t, f_t [B,H]``, ``state (C, n, m)``.

    Returns ``(h_t [B,H,V] in q_t's dtype, new state in fp32)``. ``impl="auto"`` runs the fused Triton step
    (``triton_step.py``) on CUDA tensors when no gradient is needed, else the torch step (``"torch"`` and
    ``"reference"`` are both the torch step). The Triton step has no autograd: decode / inference only.
    """
    check_shape("q_t", q_t, (None, None, None), "[B,H,K]")
    b, h, dk = q_t.shape
    check_shape("k_t", k_t, (b, h, dk), "[B,H,K]")
    check_shape("v_t", v_t, (b, h, None), "[B,H,V]")
    check_shape("i_t", i_t, (b, h), "[B,H]")
    check_shape("f_t", f_t, (b, h), "[B,H]")
    _check_state(state, b, h, dk, v_t.shape[-1], "state")
    tensors = (q_t, k_t, v_t, i_t, f_t, *state)
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in tensors)
    which = resolve_impl(impl, _STEP_IMPLS, q_t)
    if impl == "auto" and needs_grad:
        which = "torch"  # the fused step has no backward
    if which == "triton":
        if needs_grad:
            raise ValueError("mlstm_step(impl='triton') is inference only; use impl='torch' to backpropagate")
        return _step_triton(q_t, k_t, v_t, i_t, f_t, state, eps)
    C, n, m = (s.float() for s in state)
    h_t, new_state = _step(q_t.float(), k_t.float(), v_t.float(), i_t.float(), f_t.float(), C, n, m, eps)
    return h_t.to(q_t.dtype), new_state
