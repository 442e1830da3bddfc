"""Public entry points of the mLSTM cell: chunked (training / prefill, autograd) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, check_shape, dispatch
from zoo.kernels.mlstm.reference import (
    MLSTMStateTuple,
    _check_state,
    _step,
    mlstm_chunk_ref,
    mlstm_recurrent_ref,
)

_IMPLS = {"torch": mlstm_chunk_ref, "reference": mlstm_recurrent_ref}


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
    Returns ``(h [B,T,H,V] in q's dtype, (C, n, m) in fp32)``.
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
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """One token: ``q_t, k_t [B,H,K]``, ``v_t [B,H,V]``, ``i_t, f_t [B,H]``, ``state (C, n, m)``.

    Returns ``(h_t [B,H,V] in q_t's dtype, new state in fp32)``.
    """
    check_shape("q_t", q_t, (None, None, None), "[B,H,K]")
    b, h, dk = q_t.shape
    check_shape("k_t", k_t, (b, h, dk), "[B,H,K]")
    check_shape("v_t", v_t, (b, h, None), "[B,H,V]")
    check_shape("i_t", i_t, (b, h), "[B,H]")
    check_shape("f_t", f_t, (b, h), "[B,H]")
    _check_state(state, b, h, dk, v_t.shape[-1], "state")
    C, n, m = (s.float() for s in state)
    h_t, new_state = _step(q_t.float(), k_t.float(), v_t.float(), i_t.float(), f_t.float(), C, n, m, eps)
    return h_t.to(q_t.dtype), new_state
