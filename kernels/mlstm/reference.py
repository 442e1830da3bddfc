"""The mLSTM cell (xLSTM, Beck et al. 2024): the spec (a loop over time) and the chunkwise-parallel form.

Notation (kernels/README.md): ``q, k [B,T,H,K]``, ``v [B,T,H,V]``, gate pre-activations ``i, f [B,T,H]``,
state ``(C [B,H,K,V], n [B,H,K], m [B,H])``, all fp32. Per head, with ``q~ = q / sqrt(K)``:

    m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)                 # running max of the log gates (stabiliser)
    C_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t^T v_t
    n_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) n_{t-1} + exp(i_t - m_t) k_t
    h_t = q~_t C_t / (max(|q~_t . n_t|, exp(-m_t)) + eps)

The empty state is ``C = 0, n = 0, m = 0`` (``m = 0``, not ``-inf``: it enters the ``exp(-m)`` floor of the
normaliser). This is exactly the math of NX-AI's ``mlstm_kernels`` native kernels and of transformers'
``xLSTM`` (the key is not scaled, the query is scaled by ``1/sqrt(K)`` before both dot products, ``eps`` is
added after the max), so a layer built on it matches theirs to fp32 round-off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape

MLSTMStateTuple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

#: elements of the [.., L, L] intra-chunk temporaries processed at once (about 1 MiB in fp32)
_GROUP_ELEMENTS = 1 << 18


def _check(q, k, v, igate, fgate, initial_state, chunk_size) -> None:
    check_shape("q", q, (None, None, None, None), "[B,T,H,K]")
    b, t, h, dk = q.shape
    check_shape("k", k, (b, t, h, dk), "[B,T,H,K]")
    check_shape("v", v, (b, t, h, None), "[B,T,H,V]")
    check_shape("igate", igate, (b, t, h), "[B,T,H]")
    check_shape("fgate", fgate, (b, t, h), "[B,T,H]")
    if t == 0:
        raise ValueError("mlstm got an empty sequence (T=0); pass at least one token")
    for name, x in (("q", q), ("k", k), ("v", v), ("igate", igate), ("fgate", fgate)):
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if initial_state is not None:
        _check_state(initial_state, b, h, dk, v.shape[-1], "initial_state")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive int")


def _check_state(state, b: int, h: int, dk: int, dv: int, who: str) -> None:
    if not isinstance(state, (tuple, list)) or len(state) != 3:
        raise ValueError(f"{who} must be a tuple (C [B,H,K,V], n [B,H,K], m [B,H]), got {type(state).__name__}")
    C, n, m = state
    check_shape(f"{who}.C", C, (b, h, dk, dv), "[B,H,K,V]")
    check_shape(f"{who}.n", n, (b, h, dk), "[B,H,K]")
    check_shape(f"{who}.m", m, (b, h), "[B,H]")


def _initial_state(q: torch.Tensor, dv: int, initial_state) -> MLSTMStateTuple:
    """The fp32 initial state: the given one, or zeros (``m = 0``, as mlstm_kernels and transformers)."""
    if initial_state is not None:
        return tuple(s.float() for s in initial_state)  # type: ignore[return-value]
    b, _, h, dk = q.shape
    zeros = dict(device=q.device, dtype=torch.float32)
    return torch.zeros(b, h, dk, dv, **zeros), torch.zeros(b, h, dk, **zeros), torch.zeros(b, h, **zeros)


def _step(
    q_t: torch.Tensor,  # [B,H,K] fp32
    k_t: torch.Tensor,  # [B,H,K] fp32
    v_t: torch.Tensor,  # [B,H,V] fp32
    i_t: torch.Tensor,  # [B,H] fp32
    f_t: torch.Tensor,  # [B,H] fp32
    C: torch.Tensor,  # [B,H,K,V] fp32
    n: torch.Tensor,  # [B,H,K] fp32
    m: torch.Tensor,  # [B,H] fp32
    eps: float,
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """One recurrence step in fp32: ``(h_t [B,H,V], (C, n, m))``."""
    logf = F.logsigmoid(f_t)
    m_new = torch.maximum(logf + m, i_t)
    f_act = torch.exp(logf + m - m_new)
    i_act = torch.exp(i_t - m_new)
    C = f_act[..., None, None] * C + (i_act[..., None] * k_t)[..., :, None] * v_t[..., None, :]
    n = f_act[..., None] * n + i_act[..., None] * k_t
    q_t = q_t * q_t.shape[-1] ** -0.5
    num = (q_t.unsqueeze(-2) @ C).squeeze(-2)  # [B,H,V]
    qn = (q_t * n).sum(-1)  # [B,H]
    den = torch.maximum(qn.abs(), torch.exp(-m_new)) + eps
    return num / den[..., None], (C, n, m_new)


def mlstm_recurrent_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    initial_state: MLSTMStateTuple | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """The spec: one token at a time. Returns ``(h [B,T,H,V], (C [B,H,K,V], n [B,H,K], m [B,H]))``.

    ``chunk_size`` is accepted for signature parity with the chunked form and ignored.
    """
    _check(q, k, v, igate, fgate, initial_state, chunk_size)
    C, n, m = _initial_state(q, v.shape[-1], initial_state)
    hs = []
    for t in range(q.shape[1]):
        inputs_t = (x[:, t].float() for x in (q, k, v, igate, fgate))
        h_t, (C, n, m) = _step(*inputs_t, C, n, m, eps)
        hs.append(h_t)
    return torch.stack(hs, dim=1).to(q.dtype), (C, n, m)


def _bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a [..., M, K] @ b [..., K, N]`` as one ``bmm`` over the flattened leading dims (views, no copy).

    ``torch.matmul`` on 5-d operands copies transposed or sliced inputs first; ``bmm`` reads them in place.
    With ``out`` given, adds the product to it in place.
    """
    a3, b3 = a.flatten(0, -3), b.flatten(0, -3)
    if out is None:
        return torch.bmm(a3, b3).unflatten(0, a.shape[:-2])
    return out.flatten(0, -3).baddbmm_(a3, b3).unflatten(0, a.shape[:-2])


def _chunks(
    q: torch.Tensor,  # [NC,B,H,L,K] fp32 (not yet scaled by 1/sqrt(K))
    k: torch.Tensor,  # [NC,B,H,L,K] fp32
    v: torch.Tensor,  # [NC,B,H,L,V] fp32
    igate: torch.Tensor,  # [NC,B,H,L] fp32
    logf: torch.Tensor,  # [NC,B,H,L] fp32, logsigmoid of the forget gate
    C: torch.Tensor,  # [B,H,K,V] fp32
    n: torch.Tensor,  # [B,H,K] fp32
    m: torch.Tensor,  # [B,H] fp32
    eps: float,
    out: torch.Tensor,  # [NC,B,H,L,V] fp32, written: a view into the [B,T,H,V] output
) -> MLSTMStateTuple:
    """``NC`` chunks of length ``L``, chunk-major: writes ``h`` into ``out`` and returns ``(C, n, m)``.

    Within a chunk, ``b_t = sum_{s<=t} logsigmoid(f_s)`` and ``u_s = i_s - b_s``; the weight of token ``s``
    in the state seen at ``t >= s`` is ``exp(b_t + u_s)``, and ``m_t = b_t + max(m_prev, max_{s<=t} u_s)``.
    """
    NC, B, H, L, K = q.shape
    log_scale = -0.5 * math.log(K)  # the 1/sqrt(K) query scale, folded into the exponentials below
    b = logf.cumsum(-1)
    g = b[..., -1]  # [NC,B,H] log decay across each chunk
    u = igate - b  # [NC,B,H,L]
    a = u + g.unsqueeze(-1)  # log weight of each token in its chunk's end state

    # m at every chunk end, m_c = max(g_c + m_{c-1}, max_s a_s), unrolled into a cumsum and a cummax;
    # fp64 so that the cumsum over the whole sequence adds no round-off to the stabiliser.
    G = g.double().cumsum(0)
    m_run = (a.amax(-1).double() - G).cummax(0).values
    m_end = (G + torch.maximum(m.double(), m_run)).float()  # [NC,B,H]
    m_start = torch.cat([m.unsqueeze(0), m_end[:-1]])

    # Each chunk's contribution to the state, all chunks in one batched matmul; the scan over chunks
    # is then a cheap elementwise loop.
    k_w = k * torch.exp(a - m_end.unsqueeze(-1)).unsqueeze(-1)
    C_local = _bmm(k_w.transpose(-1, -2), v)  # [NC,B,H,K,V]
    n_local = k_w.sum(-2)  # [NC,B,H,K]
    decay = torch.exp(g + m_start - m_end)  # [NC,B,H]
    C_start, n_start = [], []
    for c in range(NC):
        C_start.append(C)
        n_start.append(n)
        C = torch.addcmul(C_local[c], decay[c, :, :, None, None], C)
        n = torch.addcmul(n_local[c], decay[c, :, :, None], n)
    C_start = torch.stack(C_start)  # [NC,B,H,K,V] state entering each chunk
    n_start = torch.stack(n_start)  # [NC,B,H,K]

    # r_t = m_t - b_t; every intra-chunk log weight u_s - r_t (s <= t) is <= 0, so nothing overflows.
    r = torch.maximum(m_start.unsqueeze(-1), u.cummax(-1).values)  # [NC,B,H,L]
    q_inter = q * torch.exp(m_start.unsqueeze(-1) - r + log_scale).unsqueeze(-1)
    den_floor = torch.exp(-(b + r))
    r_scaled = r - log_scale
    future = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)
    # The L x L work runs a group of chunks at a time so that its temporaries stay in cache.
    group = max(1, _GROUP_ELEMENTS // (B * H * L * L))
    for c0 in range(0, NC, group):
        cs = slice(c0, c0 + group)
        log_w = (u[cs].unsqueeze(-2) - r_scaled[cs].unsqueeze(-1)).masked_fill_(future, -math.inf)
        scores = _bmm(q[cs], k[cs].transpose(-1, -2)) * torch.exp(log_w)  # [G,B,H,L(t),L(s)]
        # in place: a matmul keeps its inputs, not its output, for the backward pass
        num = _bmm(scores, v[cs], out=_bmm(q_inter[cs], C_start[cs]))  # [G,B,H,L,V]
        qn = (q_inter[cs] * n_start[cs].unsqueeze(-2)).sum(-1) + scores.sum(-1)  # [G,B,H,L]
        den = torch.maximum(qn.abs(), den_floor[cs]) + eps
        if num.requires_grad:  # autograd records the write into the slice, not an out= argument
            out[cs] = num / den.unsqueeze(-1)
        else:
            torch.div(num, den.unsqueeze(-1), out=out[cs])
    return C, n, m_end[-1]


def mlstm_chunk_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    initial_state: MLSTMStateTuple | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMStateTuple]:
    """Chunkwise-parallel form: quadratic within chunks of ``chunk_size``, recurrent across them.

    Same arguments and results as :func:`mlstm_recurrent_ref`; any ``T`` is accepted (a shorter last chunk
    is run on its own, carrying the state, rather than padded). Memory is ``O(T L)`` for the intra-chunk
    weights plus one ``[K, V]`` state per chunk.
    """
    _check(q, k, v, igate, fgate, initial_state, chunk_size)
    B, T, H, _ = q.shape
    state = _initial_state(q, v.shape[-1], initial_state)
    h = torch.empty(B, T, H, v.shape[-1], dtype=torch.float32, device=q.device)
    L = min(chunk_size, T)
    full = T - T % L
    for start, stop, length in ((0, full, L), (full, T, T - full)):
        if stop == start:
            continue
        nc = (stop - start) // length

        # [B,T,H,*] -> chunk-major [NC,B,H,L,*] in one copy: slices of whole chunks are then contiguous
        # and every per-chunk matmul runs on contiguous per-head blocks.
        def chunked(x: torch.Tensor, start=start, stop=stop, nc=nc, length=length) -> torch.Tensor:
            x = x[:, start:stop].unflatten(1, (nc, length))  # [B,NC,L,H,*]
            perm = (1, 0, 3, 2, 4)[: x.ndim]
            return x.permute(perm).contiguous().float()

        out = h[:, start:stop].unflatten(1, (nc, length)).permute(1, 0, 3, 2, 4)  # [NC,B,H,L,V] view
        state = _chunks(
            chunked(q), chunked(k), chunked(v), chunked(igate), F.logsigmoid(chunked(fgate)), *state, eps, out
        )
    return h.to(q.dtype), state
