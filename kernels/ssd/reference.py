"""Mamba-2's state-space duality (SSD) scan: the spec (a loop over time) and the chunked torch form.

Notation (kernels/README.md): ``x [B,T,H,V]`` (``V`` = Mamba-2's head dim ``P``), ``dt [B,T,H]`` (already
softplus-ed and biased, > 0), ``A [H]`` (< 0), ``Bm, Cm [B,T,G,K]`` (``K`` = the state size ``N``; group
``g`` serves heads ``g*H/G .. (g+1)*H/G - 1``), ``D_skip [H]?``, state ``S [B,H,K,V]``:

    S_t = exp(dt_t A) S_{t-1} + dt_t B_t^T x_t        # [K,V] per head; B_t [K], x_t [V]
    y_t = C_t S_t + D x_t

The state layout is ``[B,H,K,V] = [B,H,N,P]``; mamba_ssm and transformers keep ``[B,H,P,N]``.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape


def _check(x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size, cu_seqlens=None) -> list[int] | None:
    """Raise a clear ValueError on any bad input; returns ``cu_seqlens`` as a list of ints (or None)."""
    check_shape("x", x, (None, None, None, None), "[B,T,H,V]")
    b, t, h, v = x.shape
    check_shape("dt", dt, (b, t, h), "[B,T,H]")
    check_shape("A", A, (h,), "[H]")
    check_shape("Bm", Bm, (b, t, None, None), "[B,T,G,K]")
    g, k = Bm.shape[2:]
    check_shape("Cm", Cm, (b, t, g, k), "[B,T,G,K]")
    if g == 0 or h % g:
        raise ValueError(f"H={h} heads must be a multiple of G={g} groups (each B/C group serves H/G heads)")
    if D_skip is not None:
        check_shape("D_skip", D_skip, (h,), "[H]")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive int")
    if cu_seqlens is None:
        if initial_state is not None:
            check_shape("initial_state", initial_state, (b, h, k, v), "[B,H,K,V]")
        return None
    cu = _check_cu_seqlens(cu_seqlens, b, t)
    if initial_state is not None:
        check_shape("initial_state", initial_state, (len(cu) - 1, h, k, v), "[S,H,K,V] (one per sequence)")
    return cu


def _check_cu_seqlens(cu_seqlens: torch.Tensor, b: int, t: int) -> list[int]:
    """Validate packed-sequence boundaries ``[S+1]`` (0, ..., T; non-decreasing) for ``B == 1`` inputs."""
    int_types = (torch.int32, torch.int64)
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.ndim != 1 or cu_seqlens.dtype not in int_types:
        raise ValueError("cu_seqlens must be a 1-D int32/int64 tensor [S+1] of sequence boundaries")
    if b != 1:
        raise ValueError(f"cu_seqlens packs sequences along time and needs B == 1, got B={b}")
    cu = cu_seqlens.tolist()  # one host sync: the chunk tables depend on the boundaries
    if len(cu) < 2 or cu[0] != 0 or cu[-1] != t:
        raise ValueError(f"cu_seqlens must start at 0 and end at T={t} with at least one sequence, got {cu}")
    if any(hi < lo for lo, hi in pairwise(cu)):
        raise ValueError(f"cu_seqlens must be non-decreasing, got {cu}")
    return cu


def _heads(m: torch.Tensor, heads: int) -> torch.Tensor:
    """``[..., G, K] -> [..., H, K]``: each group's row repeated for its ``H/G`` heads."""
    return m.repeat_interleave(heads // m.shape[-2], dim=-2)


def _step(
    x_t: torch.Tensor,  # [B,H,V] fp32
    dt_t: torch.Tensor,  # [B,H] fp32
    A: torch.Tensor,  # [H] fp32
    B_t: torch.Tensor,  # [B,H,K] fp32 (already per head)
    C_t: torch.Tensor,  # [B,H,K] fp32
    D_skip: torch.Tensor | None,  # [H] fp32
    state: torch.Tensor,  # [B,H,K,V] fp32
) -> tuple[torch.Tensor, torch.Tensor]:
    """One recurrence step in fp32: ``(y_t [B,H,V], new_state [B,H,K,V])``."""
    decay = torch.exp(dt_t * A)[..., None, None]
    state = decay * state + (dt_t[..., None] * B_t)[..., :, None] * x_t[..., None, :]
    y_t = (C_t.unsqueeze(-2) @ state).squeeze(-2)
    if D_skip is not None:
        y_t = y_t + D_skip[:, None] * x_t
    return y_t, state


def ssd_recurrent_ref(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D_skip: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec: one token at a time. Returns ``(y [B,T,H,V], final_state [B,H,K,V] fp32)``.

    ``chunk_size`` is accepted for a signature shared with the chunked form and ignored. With ``cu_seqlens``
    (``[S+1]``, ``B == 1``) the packed sequences run one by one, each from its own ``initial_state[s]``
    (zeros if none), and the final state is ``[S,H,K,V]``.
    """
    cu = _check(x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size, cu_seqlens)
    if cu is not None:
        return _per_sequence(ssd_recurrent_ref, cu, x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size)
    b, t, h, v = x.shape
    k = Bm.shape[-1]
    xf, dtf, Af = x.float(), dt.float(), A.float()
    Bh, Ch = _heads(Bm.float(), h), _heads(Cm.float(), h)  # [B,T,H,K]
    Df = None if D_skip is None else D_skip.float()
    state = x.new_zeros(b, h, k, v, dtype=torch.float32) if initial_state is None else initial_state.float()
    ys = []
    for i in range(t):
        y_t, state = _step(xf[:, i], dtf[:, i], Af, Bh[:, i], Ch[:, i], Df, state)
        ys.append(y_t)
    return torch.stack(ys, dim=1).to(x.dtype), state


def _per_sequence(fn, cu, x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size):
    """Packed sequences (boundaries ``cu``) run one at a time through ``fn``: the varlen spec, by definition."""
    h, v = x.shape[2:]
    k = Bm.shape[-1]
    ys, finals = [], []
    for i, (lo, hi) in enumerate(pairwise(cu)):
        h0 = None if initial_state is None else initial_state[i : i + 1]
        if hi == lo:  # an empty sequence keeps its initial state
            ys.append(x[:, lo:hi])
            zeros = x.new_zeros(1, h, k, v, dtype=torch.float32)
            finals.append(zeros if h0 is None else h0.float())
            continue
        y, s = fn(x[:, lo:hi], dt[:, lo:hi], A, Bm[:, lo:hi], Cm[:, lo:hi], D_skip, h0, chunk_size)
        ys.append(y)
        finals.append(s)
    return torch.cat(ys, dim=1), torch.cat(finals, dim=0)


def _pad_time(u: torch.Tensor, pad: int) -> torch.Tensor:
    """Zeros appended along dim 1 (time); ``dt = 0`` there makes the padded steps identities."""
    if pad == 0:
        return u
    return F.pad(u, (0, 0) * (u.ndim - 2) + (0, pad))


#: Tokens per segment of the chunked form: segments run one after another with the state carried, so
#: every intermediate (``O(segment L H)``) stays cache-sized however long the input is.
SEGMENT_TOKENS = 1024


def ssd_chunk_ref(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D_skip: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunked SSD form: returns ``(y [B,T,H,V], final_state [B,H,K,V] fp32)``.

    Within a chunk of ``L`` tokens the output is a masked "attention" ``(C B^T * decay) (dt x)``; the
    state at each chunk boundary is passed on by a short loop over chunks; the carried state reaches
    the next chunk's outputs through ``C``. Work is ``O(T L (G K + H V) + T H K V)``. Inputs longer
    than ``SEGMENT_TOKENS`` run segment by segment, so memory is ``O(SEGMENT_TOKENS L H)`` plus the
    output. B/C are contracted per group, never repeated per head, and every product with ``K``
    happens before anything of size ``L x L x K`` could appear. A ragged last chunk is zero-padded
    internally (``dt = 0`` steps change nothing). ``cu_seqlens`` (``[S+1]``, ``B == 1``): packed sequences, run
    one by one (``initial_state`` and the final state are ``[S,H,K,V]``).
    """
    cu = _check(x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size, cu_seqlens)
    if cu is not None:
        return _per_sequence(ssd_chunk_ref, cu, x, dt, A, Bm, Cm, D_skip, initial_state, chunk_size)
    t = x.shape[1]
    L = min(chunk_size, t)  # a chunk longer than the input only wastes L^2 work
    seg = max(1, SEGMENT_TOKENS // L) * L
    if t <= seg:
        return _ssd_segment(x, dt, A, Bm, Cm, D_skip, initial_state, L)
    ys, state = [], initial_state
    for lo in range(0, t, seg):
        hi = lo + seg
        y, state = _ssd_segment(x[:, lo:hi], dt[:, lo:hi], A, Bm[:, lo:hi], Cm[:, lo:hi], D_skip, state, L)
        ys.append(y)
    return torch.cat(ys, dim=1), state


def _ssd_segment(x, dt, A, Bm, Cm, D_skip, initial_state, L):
    """The chunked form over one segment, in chunks of ``L`` (see :func:`ssd_chunk_ref`)."""
    b, t, h, v = x.shape
    g, k = Bm.shape[2:]
    hg = h // g
    n = -(-t // L)
    pad = n * L - t

    xf = x.float()
    dtf = _pad_time(dt.float(), pad)
    xdt = (_pad_time(xf, pad) * dtf[..., None]).view(b, n, L, g, hg, v)
    Bc = _pad_time(Bm.float(), pad).view(b, n, L, g, k).transpose(2, 3)  # [B,n,G,L,K]
    Cc = _pad_time(Cm.float(), pad).view(b, n, L, g, k).transpose(2, 3)  # [B,n,G,L,K]
    # log-decay from the chunk start through position l (inclusive): [B,n,G,hg,L]. Summed in fp64:
    # differences of fp32 sums of ~L terms would lose ~L ulps where the decay between two
    # positions is close to 1, which is exactly where it matters.
    cum = (dtf.double() * A.double()).view(b, n, L, g, hg).permute(0, 1, 3, 4, 2).cumsum(-1)

    # 1. within each chunk: y_l += sum_{s<=l} (C_l . B_s) exp(cum_l - cum_s) dt_s x_s
    scores = Cc @ Bc.transpose(-1, -2)  # [B,n,G,L,L], shared by the group's heads
    causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
    # mask before exp: above the diagonal the difference is positive and could overflow to inf
    decay = (cum[..., :, None] - cum[..., None, :]).float().masked_fill_(~causal, float("-inf")).exp_()
    xdt_h = xdt.permute(0, 1, 3, 4, 2, 5)  # [B,n,G,hg,L,V]
    y = (decay * scores.unsqueeze(3)) @ xdt_h  # [B,n,G,hg,L,V]

    # 2. each chunk's own contribution to the state at its end: sum_s exp(cum_end - cum_s) B_s^T dt_s x_s
    to_end = torch.exp((cum[..., -1:] - cum).float())  # [B,n,G,hg,L]
    w = (xdt_h * to_end[..., None]).permute(0, 1, 2, 4, 3, 5).reshape(b, n, g, L, hg * v)
    chunk_states = (Bc.transpose(-1, -2) @ w).view(b, n, g, k, hg, v)

    # 3. pass the state across chunk boundaries (a loop over the segment's chunks, each O(H K V))
    chunk_decay = torch.exp(cum[..., -1].float())  # [B,n,G,hg]
    if initial_state is None:
        state = x.new_zeros(b, g, k, hg, v, dtype=torch.float32)
    else:
        state = initial_state.float().view(b, g, hg, k, v).transpose(2, 3)  # [B,G,K,hg,V]
    starts = []
    for c in range(n):
        starts.append(state)
        state = torch.addcmul(chunk_states[:, c], state, chunk_decay[:, c, :, None, :, None])
    start_states = torch.stack(starts, dim=1)  # [B,n,G,K,hg,V]

    # 4. the carried state seen from inside each chunk: exp(cum_l) C_l S_start
    y_off = (Cc @ start_states.view(b, n, g, k, hg * v)).view(b, n, g, L, hg, v)
    y = y + y_off.transpose(3, 4) * torch.exp(cum.float())[..., None]  # [B,n,G,hg,L,V]

    y = y.permute(0, 1, 4, 2, 3, 5).reshape(b, n * L, h, v)[:, :t]
    if D_skip is not None:
        y = y + xf * D_skip.float()[:, None]
    final_state = state.transpose(2, 3).reshape(b, h, k, v)
    return y.to(x.dtype), final_state
