"""Mamba-1's selective scan: the spec (a loop over time) and the chunked torch form.

Notation (kernels/README.md): ``u, delta [B,T,D]``, ``A [D,N]`` (< 0), ``Bm, Cm [B,T,N]`` (shared by all
channels), ``D_skip [D]?``, ``z [B,T,D]?``, ``delta_bias [D]?``, state ``h [B,D,N]``:

    dt_t = softplus(delta_t + delta_bias)             # [D]; without softplus if delta_softplus=False
    h_t  = exp(dt_t A) * h_{t-1} + (dt_t u_t) B_t      # [D,N], elementwise: N scalar SSMs per channel
    y_t  = (h_t C_t) + D_skip u_t                      # [D], sum over N
    y_t  = y_t * silu(z_t)                             # when z is given

This is ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref`` with real ``A`` and B/C shared by
all channels (the Mamba-1 layer's case), in a time-major layout (mamba_ssm uses ``u: r(B D L)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape
from zoo.kernels.selective_scan.cpu_autograd import chunk_recurrence


def _check(u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state, chunk_size) -> None:
    check_shape("u", u, (None, None, None), "[B,T,D]")
    b, t, d = u.shape
    if t == 0:
        raise ValueError(f"u has shape {tuple(u.shape)}: the scan needs at least one token (T >= 1)")
    check_shape("delta", delta, (b, t, d), "[B,T,D]")
    check_shape("A", A, (d, None), "[D,N]")
    n = A.shape[1]
    check_shape("Bm", Bm, (b, t, n), "[B,T,N]")
    check_shape("Cm", Cm, (b, t, n), "[B,T,N]")
    if D_skip is not None:
        check_shape("D_skip", D_skip, (d,), "[D]")
    if z is not None:
        check_shape("z", z, (b, t, d), "[B,T,D]")
    if delta_bias is not None:
        check_shape("delta_bias", delta_bias, (d,), "[D]")
    if initial_state is not None:
        check_shape("initial_state", initial_state, (b, d, n), "[B,D,N]")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive int")


def _time_step(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool) -> torch.Tensor:
    """``softplus(delta + delta_bias)`` in fp32 (each part optional); any shape ending in ``D``."""
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()
    return F.softplus(dt) if delta_softplus else dt


def _readout(
    y: torch.Tensor,  # [B,...,D] fp32: h C
    u: torch.Tensor,  # [B,...,D]
    D_skip: torch.Tensor | None,  # [D]
    z: torch.Tensor | None,  # [B,...,D]
) -> torch.Tensor:
    """Skip term and output gate in fp32: ``(y + D_skip u) * silu(z)``."""
    if D_skip is not None:
        y = y + D_skip.float() * u.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y


def _zero_state(u: torch.Tensor, n: int) -> torch.Tensor:
    return u.new_zeros(u.shape[0], u.shape[-1], n, dtype=torch.float32)


def selective_scan_recurrent_ref(
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec: one token at a time. Returns ``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``.

    ``chunk_size`` is accepted for a signature shared with the chunked form and ignored.
    """
    _check(u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state, chunk_size)
    dt = _time_step(delta, delta_bias, delta_softplus)  # [B,T,D]
    uf, Af, Bf, Cf = u.float(), A.float(), Bm.float(), Cm.float()
    h = _zero_state(u, A.shape[1]) if initial_state is None else initial_state.float()
    ys = []
    for t in range(u.shape[1]):
        dA = torch.exp(dt[:, t, :, None] * Af)  # [B,D,N]
        h = dA * h + (dt[:, t] * uf[:, t])[:, :, None] * Bf[:, t, None, :]
        ys.append((h * Cf[:, t, None, :]).sum(-1))
    y = _readout(torch.stack(ys, dim=1), u, D_skip, z)
    return y.to(u.dtype), h


def selective_scan_chunk_ref(
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunked form: returns ``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``.

    Chunks of ``L = chunk_size`` tokens run one after another with the state carried. Within a chunk
    everything that does not depend on the state is vectorised over the ``L`` tokens: the time step,
    the discretisation ``exp(dt A)`` and ``dt u B`` (``[B,L,N,D]``), the read-out against ``C`` (one
    batched product) and the skip / gate terms. What is left is the recurrence itself, one fused
    multiply-add over ``[B,N,D]`` per token (in training one autograd node per chunk, whose backward is the
    reverse loop: ``cpu_autograd.py``); only decays ``<= 1`` are ever multiplied, so nothing can
    overflow however large ``dt |A|`` gets (README.md says why this beats a log-space cumulative-sum
    form on CPU). Without grad, memory beyond the inputs and the output is ``O(B L N D)`` however long the
    input is, and a chunk's intermediates stay cache-sized; training keeps every chunk's decays and states
    for the backward, ``O(B T N D)``.
    """
    _check(u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state, chunk_size)
    # Inside, the state is laid out [B,N,D]: every [.., N, D] op then runs along D (contiguous and long)
    # rather than along the short N, and the read-out becomes a row-vector times matrix product.
    At = A.float().t()  # [N,D]
    h = _zero_state(u, A.shape[1]) if initial_state is None else initial_state.float()
    h = h.transpose(1, 2)  # [B,N,D]
    ys = []
    # split (not slicing per chunk): in training, the backward of a slice scatters its gradient into a
    # zero-filled tensor of the whole input, T/L full-size fills and additions per input (~15% of a Mamba
    # layer's step at T=1024); split's backward gathers all chunks' gradients with one cat.
    pieces = [x.split(chunk_size, dim=1) for x in (u, delta, Bm, Cm)]
    pieces.append(z.split(chunk_size, dim=1) if z is not None else [None] * len(pieces[0]))
    for u_c, delta_c, B_c, C_c, z_c in zip(*pieces):
        # a copy per chunk: u often arrives channels-first in memory (a convolution's output), and
        # every op below would otherwise stride through it
        u_c = u_c.float().contiguous()  # [B,L,D]
        dt_c = _time_step(delta_c, delta_bias, delta_softplus)[:, :, None, :]  # [B,L,1,D]
        decay = (dt_c * At).exp_()  # [B,L,N,D]
        inp = (dt_c * u_c[:, :, None, :]) * B_c[:, :, :, None].float()  # [B,L,N,D]
        if any(t.requires_grad for t in (decay, inp, h)):
            # One autograd node for the chunk's recurrence (cpu_autograd.py): recorded token by token, the
            # recurrence cost more in autograd's per-op bookkeeping (forward and backward) than in arithmetic.
            states, h = chunk_recurrence(decay, inp, h)
        else:
            # Nothing to differentiate: turn the chunk's inputs into its states in place, which saves
            # an allocation per token and the stack (~20% of the no-grad scan on CPU).
            for decay_t, inp_t in zip(decay.unbind(1), inp.unbind(1)):
                h = inp_t.addcmul_(decay_t, h)
            states = inp
        # [B,L,1,N] @ [B,L,N,D]: the read-out of every token of the chunk in one batched product
        y_c = (C_c[:, :, None, :].float() @ states).squeeze(2)  # [B,L,D]
        ys.append(_readout(y_c, u_c, D_skip, z_c).to(u.dtype))
    return torch.cat(ys, dim=1), h.transpose(1, 2).contiguous()
