"""Public entry points of the sLSTM: chunked (training/prefill) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, dispatch
from zoo.kernels.slstm.reference import SLSTMState, slstm_cell_step, slstm_chunk_ref, slstm_recurrent_ref

_IMPLS = {"torch": slstm_chunk_ref, "reference": slstm_recurrent_ref}


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
    """
    return dispatch(impl, _IMPLS, gates_x)(gates_x, R, bias, initial_state)


def slstm_step(
    gates_x_t: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    state: SLSTMState,
) -> tuple[torch.Tensor, SLSTMState]:
    """One token: ``gates_x_t [B,4,H,D]``, ``state = (h, c, n, m)`` each ``[B,H,D]``.

    Returns ``(h_t [B,H,D], new_state)``.
    """
    return slstm_cell_step(gates_x_t, R, bias, state)
