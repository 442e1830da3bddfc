"""The selective scan (Mamba-1) as one autograd Function for CPU: fast and memory-lean training.

``selective_scan_cpu`` takes the arguments of ``reference.selective_scan_chunk_ref`` and returns the same
``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``. It follows the plan of mamba_ssm's fused scan, sized
for CPU caches rather than GPU registers:

* forward: chunks of ``L = min(chunk_size, 16)`` tokens; per chunk the discretised decay ``exp(dt A)`` and
  input ``dt u B`` are written into reused ``[L,B,N,D]`` buffers, turned into the states by one fused
  ``addcmul_`` per token, and read out against ``C`` with one batched product. Saved for the backward: the
  inputs, ``dt`` and (with a gate) ``y`` before it (``[T,B,D]`` each) and the state entering every chunk
  (``O(B T/L N D)``); never the ``[B,T,N,D]`` decays or states.
* backward: chunks last to first. A chunk's states are recomputed from its saved entry state into the same
  buffers, then the reverse recurrence ``dh_t = C_t g_t + exp(dt_{t+1} A) dh_{t+1}`` (one fused
  ``addcmul_`` per token) gives the gradient of every state; everything else is vectorised over the chunk:
  ``dC``, ``dB`` and ``d(dt u)``, and the gradient of the decay's argument ``dh_t * exp(dt_t A) * h_{t-1}``
  reduced to ``d dt`` (over ``N``) and ``dA`` (over ``B`` and ``T``).

Why it beats the torch form's training path (``cpu_autograd.py``): that path keeps every chunk's decays and
states for autograd (``O(B T N D)`` memory) and its backward replays the broadcast products of the
discretisation, ~25 passes over ``[B,L,N,D]`` per chunk in fresh allocations; here a chunk costs ~20 passes
in all (forward and backward, recomputation included) over small buffers allocated once (no page faults, and
they stay near the caches). Inside, tensors are time-major (``[T,B,...]``): a token's state ``[B,N,D]`` is then
one contiguous block, and any run of tokens a contiguous ``[l*B, N, D]`` view for ``bmm``. The state is laid
out ``[B,N,D]`` (as in the torch form) so elementwise ops run along the long ``D``. torch.compile was tried on
the backward's vectorised part: no faster than these eager ops (and ~30 s to compile), so it is plain eager.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from zoo.kernels.selective_scan.reference import _check


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """``[B,T,...]`` (any dtype, any strides) to a fresh contiguous fp32 ``[T,B,...]`` (for ``Bm``, ``Cm``:
    the ``[l*B, ...]`` views of a chunk need them contiguous)."""
    out = torch.empty(x.shape[1], x.shape[0], *x.shape[2:])
    return out.copy_(x.transpose(0, 1))


def _dt(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool) -> torch.Tensor:
    """``softplus(delta + delta_bias)`` (each part optional) in fp32, time-major ``[T,B,D]``, contiguous."""
    dt = torch.empty(delta.shape[1], delta.shape[0], delta.shape[2])
    # read through the transposed view (no separate copy); a [D] fp32 bias makes the sum fp32 for any delta
    if delta_bias is not None:
        torch.add(delta.transpose(0, 1), delta_bias.float(), out=dt)
    else:
        dt.copy_(delta.transpose(0, 1))
    return F.softplus(dt) if delta_softplus else dt


def _times(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b`` in fp32 into a fresh contiguous tensor of ``a``'s shape, whatever ``b``'s strides and dtype.

    The [T,B,D] inputs are read through transposed views rather than copied to time-major first (a pass
    over memory each); ``out=`` pins the result's layout, which broadcasting would otherwise take from them.
    """
    return torch.mul(a, b, out=torch.empty(a.shape))


class _Chunk(NamedTuple):
    """Views of the work buffers for a chunk of ``l`` tokens, whole and per token."""

    decay: torch.Tensor  # [l,B,N,D]: exp(dt A), later the gradient of dt A
    states: torch.Tensor  # [l+1,B,N,D]: slot 0 the state entering the chunk, slot i+1 the state after token i
    dh: torch.Tensor | None  # [l,B,N,D]: the gradient of each state (backward only)
    tmp: torch.Tensor | None  # [l,B,N,D]: scratch for products that are summed at once (backward only)
    decay_t: tuple[torch.Tensor, ...]
    states_t: tuple[torch.Tensor, ...]
    dh_t: tuple[torch.Tensor, ...] | None


class _Buffers:
    """The chunk-sized work buffers, allocated once per call and reused by every chunk.

    A chunk shorter than ``L`` (the last one) uses views of the buffers' first elements, so that every view
    stays contiguous (flat slices, not slices along dim 0 of a larger shape). The views, per-token ones
    included, are made once per chunk length: made per chunk, they cost ~3 us each, as much as a token's
    fused op at B=2.
    """

    def __init__(self, L: int, b: int, n: int, d: int, grad: bool) -> None:
        self.shape = (b, n, d)
        self._decay = torch.empty(L * b * n * d)
        self._states = torch.empty((L + 1) * b * n * d)
        self._dh = torch.empty(L * b * n * d) if grad else None
        self._tmp = torch.empty(L * b * n * d) if grad else None
        self._views: dict[int, _Chunk] = {}

    def views(self, l: int) -> _Chunk:
        if l not in self._views:
            b, n, d = self.shape
            size = l * b * n * d
            decay = self._decay[:size].view(l, b, n, d)
            states = self._states[: size + b * n * d].view(l + 1, b, n, d)
            dh = tmp = None
            if self._dh is not None:
                dh, tmp = self._dh[:size].view(l, b, n, d), self._tmp[:size].view(l, b, n, d)
            self._views[l] = _Chunk(
                decay, states, dh, tmp, decay.unbind(0), states.unbind(0), None if dh is None else dh.unbind(0)
            )
        return self._views[l]


def _chunk_states(
    chunk: _Chunk,  # its states[0] already holds the entry state
    dt: torch.Tensor,  # [l,B,D]
    x: torch.Tensor,  # [l,B,D]: dt u
    Bt: torch.Tensor,  # [l,B,N]
    At: torch.Tensor,  # [N,D]
) -> None:
    """Discretise a chunk and run its recurrence, in place in the buffers (forward and backward's recompute)."""
    # the state-independent parts, vectorised over the chunk: one broadcast product (and exp) each
    torch.mul(dt[:, :, None, :], At, out=chunk.decay).exp_()
    torch.mul(x[:, :, None, :], Bt[:, :, :, None], out=chunk.states[1:])
    # the recurrence, one fused op per token over a cache-resident [B,N,D]: h_t = dt u B (already there)
    # + decay_t h_{t-1}. Only decays <= 1 are multiplied, so nothing overflows whatever dt |A| is.
    hs, ds = chunk.states_t, chunk.decay_t
    for i in range(len(ds)):
        hs[i + 1].addcmul_(ds[i], hs[i])


# Chunks longer than this are processed as several: the work buffers ([L,B,N,D] fp32, four of them in the
# backward) then stay near the L2/L3 caches (at B=8, D=256, N=16 a 16-token chunk is 2 MiB). The result does
# not depend on it; 16 measured fastest on one thread at B=2..8 (64 was ~20-40% slower).
_MAX_CHUNK = 16


def _forward(u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, L, save):
    """The scan. Returns ``(y, final_state, saved)``; ``saved`` (when ``save``) holds what the backward needs:
    the state entering every chunk ``[NC,B,N,D]``, ``dt [T,B,D]`` and, with a gate, ``y`` before it."""
    b, t, d = u.shape
    n = A.shape[1]
    nc = -(-t // L)
    At = A.float().t().contiguous()  # [N,D]
    u_tm = u.transpose(0, 1)  # a view: read in place, never copied
    dt = _dt(delta, delta_bias, delta_softplus)  # [T,B,D]
    x = _times(dt, u_tm)
    Bt, Ct = _time_major(Bm), _time_major(Cm)  # [T,B,N]
    bufs = _Buffers(min(L, t), b, n, d, grad=False)
    entry = torch.empty(nc, b, n, d) if save else None
    y = torch.empty(t, b, d)
    h = torch.zeros(b, n, d) if initial_state is None else initial_state.float().transpose(1, 2)
    for c in range(nc):
        s, e = c * L, min(t, (c + 1) * L)
        chunk = bufs.views(e - s)
        states = chunk.states
        # the previous chunk's last state is the last slot of the same buffer: copy before it is overwritten
        states[0].copy_(h)
        if entry is not None:
            entry[c].copy_(states[0])
        _chunk_states(chunk, dt[s:e], x[s:e], Bt[s:e], At)
        # y_t = C_t h_t for the whole chunk: [l*B,1,N] @ [l*B,N,D]
        torch.bmm(Ct[s:e].view(-1, 1, n), states[1:].view(-1, n, d), out=y[s:e].view(-1, 1, d))
        h = states[-1]
    final_state = h.transpose(1, 2).contiguous()  # [B,D,N]
    del x, Bt, Ct, bufs
    if D_skip is not None:
        y.addcmul_(u_tm, D_skip.float())
    y_pre = None
    if z is not None:
        y_pre = y.clone() if save else None
        y.mul_(F.silu(z.transpose(0, 1).float()))
    saved = (entry, dt, y_pre) if save else None
    out = torch.empty(b, t, d, dtype=u.dtype)
    out.transpose(0, 1).copy_(y)
    return out, final_state, saved


class _SelectiveScanCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, chunk_size):
        L = min(chunk_size, _MAX_CHUNK)
        y, final_state, (entry, dt, y_pre) = _forward(
            u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, L, True
        )
        # Beyond the inputs, saved: the chunks' entry states (O(B T/L N D)) and two [T,B,D] fp32 tensors. dt
        # spares the backward delta, the bias and softplus (whose derivative sigmoid(delta + bias) is
        # 1 - exp(-dt)); y before the gate spares it the read-out (only kept when there is a gate).
        ctx.save_for_backward(u, A, Bm, Cm, D_skip, z, initial_state, entry, dt, y_pre)
        ctx.dtypes = (delta.dtype, None if delta_bias is None else delta_bias.dtype)
        ctx.delta_softplus, ctx.L = bool(delta_softplus), L
        # an unused output's gradient arrives as None: no [B,T,D] (or [B,D,N]) of zeros made and read
        ctx.set_materialize_grads(False)
        return y, final_state

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, d_final):
        u, A, Bm, Cm, D_skip, z, initial_state, entry, dt, y_pre = ctx.saved_tensors
        need = ctx.needs_input_grad
        b, t, d = u.shape
        n, L, nc = A.shape[1], ctx.L, entry.shape[0]
        At = A.float().t().contiguous()  # [N,D]
        u_tm = u.transpose(0, 1)  # views, read in place
        x = _times(dt, u_tm)
        Bt, Ct = _time_major(Bm), _time_major(Cm)
        # g: the gradient of C h (y before skip and gate); None when y is unused
        g = dz = None
        if dy is not None:
            dy_tm = dy.transpose(0, 1)
            if z is None:
                g = torch.empty(t, b, d).copy_(dy_tm)
            else:
                # y = y_pre silu(z): dz = dy y_pre silu'(z), silu'(z) = sig (1 + z (1 - sig)); g = dy silu(z).
                # These [T,B,D] temporaries keep z's memory layout (dz then goes back without a copy).
                z_tm = z.transpose(0, 1).float()
                sig = torch.sigmoid(z_tm)
                if need[6]:
                    dz = (1 - sig).mul_(z_tm).add_(1).mul_(sig).mul_(dy_tm).mul_(y_pre)
                g = _times(sig.mul_(z_tm), dy_tm)
                del z_tm, sig

        bufs = _Buffers(min(L, t), b, n, d, grad=True)
        d_x = torch.empty(t, b, d)  # d(dt u), through B
        d_dt = torch.empty(t, b, d)  # d dt, through the decay
        dB = torch.empty(t, b, n)
        dC = torch.empty(t, b, n) if g is not None else None
        dA = torch.zeros(n, d)
        # carry: the gradient of the state leaving the chunk being processed, from everything after it
        carry = torch.zeros(b, n, d) if d_final is None else d_final.float().transpose(1, 2).contiguous()
        for c in range(nc - 1, -1, -1):
            s, e = c * L, min(t, (c + 1) * L)
            l = e - s
            chunk = bufs.views(l)
            decay, states, dh, tmp = chunk.decay, chunk.states, chunk.dh, chunk.tmp
            dhs, ds = chunk.dh_t, chunk.decay_t
            states[0].copy_(entry[c])
            _chunk_states(chunk, dt[s:e], x[s:e], Bt[s:e], At)
            # dh_t = C_t g_t (the read-out's gradient, vectorised) + decay_{t+1} dh_{t+1} (the recurrence)
            if g is not None:
                torch.mul(Ct[s:e, :, :, None], g[s:e, :, None, :], out=dh)
                dh[-1].add_(carry)
            else:
                dh.zero_()
                dh[-1].copy_(carry)
            for i in range(l - 2, -1, -1):
                dhs[i].addcmul_(ds[i + 1], dhs[i + 1])
            torch.mul(ds[0], dhs[0], out=carry)
            # vectorised over the chunk. The sum over N is a batched product [l*B,1,N] @ [l*B,N,D]; sums over D
            # are a broadcast product and a sum along the contiguous D, ~2x faster than a matrix-vector bmm.
            if g is not None:
                torch.sum(torch.mul(states[1:], g[s:e, :, None, :], out=tmp), dim=-1, out=dC[s:e])
            torch.sum(torch.mul(dh, x[s:e, :, None, :], out=tmp), dim=-1, out=dB[s:e])
            torch.bmm(Bt[s:e].view(-1, 1, n), dh.view(l * b, n, d), out=d_x[s:e].view(-1, 1, d))
            # the decay's argument dt A: its gradient is dh_t * decay_t * h_{t-1}, built in the decay buffer
            arg = decay.mul_(states[:-1]).mul_(dh)
            if need[2]:  # dA = sum over (t, b) of arg * dt
                dA.add_(torch.mul(arg, dt[s:e, :, None, :], out=tmp).sum((0, 1)))
            torch.sum(arg.mul_(At), dim=2, out=d_dt[s:e])
        del bufs, x, Bt, Ct

        # the per-token [T,B,D] parts, vectorised over the whole input
        d_dt.addcmul_(d_x, u_tm)  # x = dt u
        du = d_x.mul_(dt)
        if g is not None and D_skip is not None:
            du.addcmul_(g, D_skip.float())
        d_delta = d_dt
        if ctx.delta_softplus:
            # softplus'(v) = sigmoid(v) = 1 - exp(-softplus(v)) = -expm1(-dt)
            d_delta.mul_(torch.neg(dt).expm1_().neg_())
        delta_dtype, bias_dtype = ctx.dtypes
        grads = [None] * 11
        grads[0] = du.transpose(0, 1).to(u.dtype)
        grads[1] = d_delta.transpose(0, 1).to(delta_dtype)
        grads[2] = dA.t().to(A.dtype)
        grads[3] = dB.transpose(0, 1).to(Bm.dtype)
        if dC is not None:
            grads[4] = dC.transpose(0, 1).to(Cm.dtype)
        if g is not None and D_skip is not None and need[5]:
            grads[5] = (g * u_tm).sum((0, 1)).to(D_skip.dtype)
        if dz is not None:
            grads[6] = dz.transpose(0, 1).to(z.dtype)
        if bias_dtype is not None and need[7]:
            grads[7] = d_delta.sum((0, 1)).to(bias_dtype)
        if initial_state is not None and need[9]:
            grads[9] = carry.transpose(1, 2).to(initial_state.dtype)
        return tuple(grad if need[i] else None for i, grad in enumerate(grads))


def selective_scan_cpu(
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
    """The fused CPU scan: returns ``(y [B,T,D] in u's dtype, final_state [B,D,N] fp32)``.

    Same arguments and results as ``selective_scan_chunk_ref``. ``chunk_size`` is the recompute interval:
    training saves the state entering every chunk (``O(B T/L N D)``) and the work buffers are ``O(L B N D)``.
    With no input requiring grad (or grad mode off) it runs the forward alone and saves nothing. The backward
    is not twice differentiable.
    """
    _check(u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state, chunk_size)
    tensors = (u, delta, A, Bm, Cm, D_skip, z, delta_bias, initial_state)
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors):
        return _SelectiveScanCPU.apply(
            u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, chunk_size
        )
    y, final_state, _ = _forward(
        u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, initial_state, min(chunk_size, _MAX_CHUNK), False
    )
    return y, final_state
