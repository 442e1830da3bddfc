"""Causal depthwise short convolution: the spec (a loop over time) and the chunked torch form.

    y[b, t, d] = act( bias[d] + sum_{w=0}^{W-1} weight[d, w] * xp[b, t + w, d] )

where ``xp`` is the input with the state (the previous ``W-1`` inputs, zeros at the start) prepended,
so ``weight[:, -1]`` multiplies the current token. This matches ``nn.Conv1d(groups=D, padding=W-1)``
followed by truncation to the first ``T`` outputs, the layout of Mamba, Mamba-2 and Hyena short filters.

Shapes: ``x [B,T,D]``, ``weight [D,W]``, ``bias [D]?``, state ``[B,D,W-1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape

ACTIVATIONS = (None, "silu")


def _check(x, weight, bias, activation, initial_state):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not one of {ACTIVATIONS}")
    check_shape("x", x, (None, None, None), "[B,T,D]")
    d = x.shape[-1]
    check_shape("weight", weight, (d, None), "[D,W]")
    if bias is not None:
        check_shape("bias", bias, (d,), "[D]")
    if initial_state is not None:
        check_shape("initial_state", initial_state, (x.shape[0], d, weight.shape[1] - 1), "[B,D,W-1]")


def _padded_input(x: torch.Tensor, width: int, initial_state: torch.Tensor | None) -> torch.Tensor:
    """``[B, D, W-1+T]`` in fp32: the carried history followed by the input, channels first."""
    xt = x.transpose(1, 2).float()
    if initial_state is None:
        return F.pad(xt, (width - 1, 0))
    return torch.cat([initial_state.float(), xt], dim=-1)


def _activate(y: torch.Tensor, activation: str | None) -> torch.Tensor:
    return F.silu(y) if activation == "silu" else y


def causal_conv1d_recurrent_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec: one token at a time through a sliding window. Returns ``(y [B,T,D], state [B,D,W-1])``."""
    _check(x, weight, bias, activation, initial_state)
    width = weight.shape[1]
    xp = _padded_input(x, width, initial_state)
    w = weight.float()
    ys = []
    for t in range(x.shape[1]):
        window = xp[:, :, t : t + width]  # [B, D, W]
        y_t = (window * w).sum(-1)
        if bias is not None:
            y_t = y_t + bias.float()
        ys.append(_activate(y_t, activation))
    y = torch.stack(ys, dim=1).to(x.dtype)
    return y, xp[:, :, xp.shape[-1] - (width - 1) :].contiguous()


def causal_conv1d_chunk_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All positions at once, in whichever memory layout ``x`` already has.

    A channels-first view (``x.transpose(1, 2)`` contiguous, as Hyena's projections produce) goes through
    one grouped ``F.conv1d``; a time-major ``x`` through ``W`` shifted multiply-adds that stay time-major.
    Either way no transposed copy is made and the next op gets the layout it reads fastest.
    """
    _check(x, weight, bias, activation, initial_state)
    if x.shape[1] > 1 and x.transpose(1, 2).is_contiguous():
        return _chunk_channels_first(x, weight, bias, activation, initial_state)
    return _chunk_time_major(x, weight, bias, activation, initial_state)


def _chunk_channels_first(x, weight, bias, activation, initial_state):
    width = weight.shape[1]
    xp = _padded_input(x, width, initial_state)
    y = F.conv1d(xp, weight.float().unsqueeze(1), None if bias is None else bias.float(), groups=x.shape[-1])
    y = _activate(y, activation).transpose(1, 2).to(x.dtype)
    return y, xp[:, :, xp.shape[-1] - (width - 1) :].contiguous()


def _chunk_time_major(x, weight, bias, activation, initial_state):
    batch, length, channels = x.shape
    width = weight.shape[1]
    if initial_state is None:
        history = x.new_zeros(batch, width - 1, channels, dtype=torch.float32)
    else:
        history = initial_state.float().transpose(1, 2)
    xp = torch.cat([history, x.float()], dim=1)  # [B, W-1+T, D]
    w = weight.float()
    y = xp[:, width - 1 :] * w[:, -1]
    for tap in range(width - 1):
        y = y.addcmul_(xp[:, tap : tap + length], w[:, tap])
    if bias is not None:
        y = y.add_(bias.float())
    final_state = xp[:, xp.shape[1] - (width - 1) :].transpose(1, 2).contiguous()
    return _activate(y, activation).to(x.dtype), final_state
