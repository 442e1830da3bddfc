"""Public entry points of the sLSTM: chunked (training/prefill) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, dispatch, lazy
from zoo.kernels.slstm.reference import SLSTMState, _check, slstm_cell_step, slstm_chunk_ref, slstm_recurrent_ref

_IMPLS = {
    "triton": lazy("zoo.kernels.slstm.triton_op", "slstm_triton"),
    "torch": slstm_chunk_ref,
    "reference": slstm_recurrent_ref,
}

TRITON_MAX_HEAD_DIM = 64
"""Largest head dim of the Triton sequence kernel (one head's ``R`` stays in registers); kept here so that
``impl="auto"`` can decide without importing Triton (``triton_op`` reads it from here)."""


def slstm_chunk(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    initial_state: SLSTMState | None = None,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, SLSTMState]:
    """sLSTM over a sequence.

    ``gates_x [B,T,4,H,D]`` are the input contributions of the gates ``(i, f, z, o)``, ``R [H,D,4,D]`` the
    per-head recurrent weights (``h @ R[h][:, g]``), ``bias [4,H,D]``, ``initial_state = (h, c, n, m)``
    each ``[B,H,D]`` or None (zeros). Returns ``(h_seq [B,T,H,D], (h, c, n, m))``, the state in fp32.
    ``impl="triton"`` supports head dims ``D <= 64``; ``"auto"`` takes the torch form for larger ones.
    """
    if impl == "auto" and gates_x.ndim == 5 and gates_x.shape[-1] > TRITON_MAX_HEAD_DIM:
        # the sequence kernel keeps R on chip and cannot hold a larger head: the torch loop still works
        impl = "torch"
    return dispatch(impl, _IMPLS, gates_x)(gates_x, R, bias, initial_state)


_STEP_IMPLS = {
    "triton": lazy("zoo.kernels.slstm.triton_step", "slstm_step_triton"),
    "torch": slstm_cell_step,
    # the one-token step is its own spec: there is no separate recurrent form of it
    "reference": slstm_cell_step,
}


def slstm_step(
    gates_x_t: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    state: SLSTMState,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, SLSTMState]:
    """One token: ``gates_x_t [B,4,H,D]``, ``state = (h, c, n, m)`` each ``[B,H,D]``.

    Returns ``(h_t [B,H,D] in gates_x_t's dtype, new_state fp32)``; ``state`` is left unchanged.
    ``impl="triton"`` is one fused kernel, inference only (a ValueError if autograd would need a graph);
    ``"auto"`` takes it for CUDA tensors unless grad mode is on and an input requires grad, then the torch step.
    """
    _check(gates_x_t, R, bias, state, step=True)
    if impl == "auto" and torch.is_grad_enabled() and any(t.requires_grad for t in (gates_x_t, R, bias, *state)):
        # a decode step called with trainable parameters outside no_grad: keep it differentiable
        impl = "torch"
    return dispatch(impl, _STEP_IMPLS, gates_x_t)(gates_x_t, R, bias, state)
