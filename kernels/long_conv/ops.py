"""Public entry points of the causal long convolution: chunked (training/prefill) and step (decode)."""

from __future__ import annotations

import torch

from zoo.kernels.common import Impl, check_shape, dispatch, lazy
from zoo.kernels.long_conv.reference import long_conv_chunk_ref, long_conv_recurrent_ref

_IMPLS = {
    "triton": lazy("zoo.kernels.long_conv.triton_op", "long_conv_triton"),
    "torch": long_conv_chunk_ref,
    "reference": long_conv_recurrent_ref,
}


def long_conv_chunk(
    u: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal conv of ``u [B,T,D]`` with a long filter ``k [D,Lk]`` plus ``u * bias``, times ``gate``.

    ``initial_state [B,D,Lk-1]?`` holds the previous ``Lk-1`` inputs; ``gate [B,T,D]?`` multiplies the output
    (Hyena's ``x0 * long_conv(...)`` in one kernel; the state is the ungated input history either way).
    Returns ``(y [B,T,D], final_state [B,D,Lk-1])``.
    """
    return dispatch(impl, _IMPLS, u)(u, k, bias, initial_state, gate)


def long_conv_step(
    u_t: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``u_t [B,D]``, ``k [D,Lk]``, ``state [B,D,Lk-1]`` -> ``(y_t [B,D], state [B,D,Lk-1])``."""
    check_shape("u_t", u_t, (None, None), "[B,D]")
    d = u_t.shape[-1]
    check_shape("k", k, (d, None), "[D,Lk]")
    if bias is not None:
        check_shape("bias", bias, (d,), "[D]")
    check_shape("state", state, (u_t.shape[0], d, k.shape[1] - 1), "[B,D,Lk-1]")
    u32 = u_t.float()
    window = torch.cat([state.float(), u32.unsqueeze(-1)], dim=-1)  # [B, D, Lk], oldest first
    y_t = (window * k.float().flip(-1)).sum(-1)
    if bias is not None:
        y_t = y_t + bias.float() * u32
    return y_t.to(u_t.dtype), window[:, :, 1:]
