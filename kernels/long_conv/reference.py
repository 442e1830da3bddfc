"""Causal long convolution: the spec (a direct sum over taps, one step at a time) and the FFT form.

    y[b, t, d] = gate[b, t, d] * (sum_{j=0}^{Lk-1} k[d, j] * up[b, t - j, d]  +  bias[d] * u[b, t, d])

where ``up`` is the input preceded by the state (the previous ``Lk-1`` inputs, zeros at the start), so
tap ``k[:, 0]`` multiplies the current token. This is HyenaDNA's ``fftconv`` (``bias`` is its ``D``
skip term) extended with a carried history, so a long input can be processed in pieces, and with an
optional output gate (Hyena's ``x0 * long_conv(...)``; no gate means ``gate = 1``).

Shapes: ``u [B,T,D]``, ``k [D,Lk]``, ``bias [D]?``, ``gate [B,T,D]?``, state ``[B,D,Lk-1]`` (oldest input first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape


def _check(u, k, bias, initial_state, gate=None):
    check_shape("u", u, (None, None, None), "[B,T,D]")
    d = u.shape[-1]
    check_shape("k", k, (d, None), "[D,Lk]")
    if k.shape[1] < 1:
        raise ValueError(f"k must have at least one tap, got shape {tuple(k.shape)}")
    if bias is not None:
        check_shape("bias", bias, (d,), "[D]")
    if initial_state is not None:
        check_shape("initial_state", initial_state, (u.shape[0], d, k.shape[1] - 1), "[B,D,Lk-1]")
    if gate is not None:
        check_shape("gate", gate, tuple(u.shape), "[B,T,D]")


def _history(u: torch.Tensor, taps: int, initial_state: torch.Tensor | None) -> torch.Tensor:
    """``[B, D, Lk-1+T]`` in fp32: the carried history (zeros if none), then the input, channels first."""
    ut = u.transpose(1, 2).float()
    if initial_state is None:
        return F.pad(ut, (taps - 1, 0))
    return torch.cat([initial_state.float(), ut], dim=-1)


def _final_state(up: torch.Tensor, taps: int) -> torch.Tensor:
    """The last ``Lk-1`` inputs of the padded sequence ``up [B, D, Lk-1+T]``."""
    return up[:, :, up.shape[-1] - (taps - 1) :].contiguous()


def long_conv_recurrent_ref(
    u: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec: a direct causal sum over the ``Lk`` taps for one token at a time.

    ``u [B,T,D]``, ``k [D,Lk]``, ``bias [D]?``, ``initial_state [B,D,Lk-1]?``, ``gate [B,T,D]?`` ->
    ``(y [B,T,D], final_state [B,D,Lk-1])``; the gate multiplies the output, not the state.
    """
    _check(u, k, bias, initial_state, gate)
    taps = k.shape[1]
    up = _history(u, taps, initial_state)
    # the window is oldest-first, so the taps run backwards along it
    k_rev = k.float().flip(-1)
    ys = []
    for t in range(u.shape[1]):
        y_t = (up[:, :, t : t + taps] * k_rev).sum(-1)
        if bias is not None:
            y_t = y_t + bias.float() * up[:, :, t + taps - 1]
        if gate is not None:
            y_t = y_t * gate[:, t].float()
        ys.append(y_t)
    y = torch.stack(ys, dim=1).to(u.dtype)
    return y, _final_state(up, taps)


def fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: a length pocketfft / cuFFT transform quickly."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # the smallest power of two lifting p35 to at least n
            m = p35 << max(0, (-(-n // p35) - 1).bit_length())
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def long_conv_chunk_ref(
    u: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All positions at once: an fp32 FFT convolution over ``[history, chunk]``.

    Same arguments and results as :func:`long_conv_recurrent_ref`. Cost ``O(D (Lk+T) log(Lk+T))``.
    """
    _check(u, k, bias, initial_state, gate)
    T = u.shape[1]
    taps = k.shape[1]
    ut = u.transpose(1, 2).float()  # [B, D, T]
    if initial_state is None:
        # taps past T only ever meet the zeros before the start: drop them
        kk = k.float()[:, : min(taps, T)]
        # zero padding to T + taps - 1 turns the circular convolution into a linear one
        n = fft_size(T + kk.shape[1] - 1)
        y = torch.fft.irfft(torch.fft.rfft(ut, n=n) * torch.fft.rfft(kk, n=n), n=n)[..., :T]
        state = _final_state(F.pad(ut, (max(taps - 1 - T, 0), 0)), taps)
    else:
        up = torch.cat([initial_state.float(), ut], dim=-1)  # [B, D, Lk-1+T]
        # outputs at positions >= Lk-1 of a circular convolution of length >= Lk-1+T never wrap around
        n = fft_size(up.shape[-1])
        y = torch.fft.irfft(torch.fft.rfft(up, n=n) * torch.fft.rfft(k.float(), n=n), n=n)
        y = y[..., taps - 1 : taps - 1 + T]
        state = _final_state(up, taps)
    if bias is not None:
        y = torch.addcmul(y, ut, bias.float().unsqueeze(-1))
    if gate is not None:
        y = y * gate.transpose(1, 2).float()
    return y.transpose(1, 2).to(u.dtype), state
