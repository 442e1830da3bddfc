"""Launches of the long-convolution Triton kernels and their autograd wrapper.

``long_conv_triton`` has the signature of ``long_conv_chunk_ref``: ``u [B,T,D]``, ``k [D,Lk]``, ``bias [D]?``,
``initial_state [B,D,Lk-1]?``, ``gate [B,T,D]?`` -> ``(y [B,T,D] in u's dtype, final_state [B,D,Lk-1] fp32)``.

The history is handled by prepending it to the signal (the pass-1 loader reads ``h0`` for the first ``Lk-1``
positions and ``u`` after them), which is exactly the reference's ``[state, u]`` convolution. Without a state
the taps past ``T`` only ever meet zeros and are dropped, so the transform is ``N >= T + min(Lk, T) - 1``.

Two batch elements share the (real) filter, so they share one complex transform: ``x = u[2p] + i u[2p+1]``
gives ``IFFT(FFT(x) K) = conv(u[2p], k) + i conv(u[2p+1], k)``, which halves the buffer, the passes' traffic
and their GEMMs. The filter spectrum is computed once per call (scaled by ``1/N``) and shared by the batch.

Backward (``c = conv(up, k)`` with ``up = [h0, u]``, ``dz = dy * gate``):

* ``d up`` is a correlation of ``dz`` with ``k``, i.e. a causal convolution of the time-reversed ``dz`` with
  ``k``: the same passes with the same filter spectrum, read reversed and written reversed into ``du`` (plus
  the skip term ``dz * bias``) and ``d h0``.
* ``dk[j] = sum_{b,t} dz[t] up[t - j]`` is the convolution of the reversed ``dz`` with ``up``: the spectrum of
  ``up`` is recomputed (pairs packed as ``up[2p] - i up[2p+1]``, so the real part of the product's inverse is
  the pair's sum), the middle pass multiplies the reversed ``dz``'s spectrum by both spectra at once, and the
  per-pair results are summed in torch.
* ``dbias``, ``dgate`` (``dy * z``, with the ungated ``z`` stored by the forward) and the final state's gradient
  are elementwise torch ops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import triton

from zoo.kernels.long_conv.reference import _check
from zoo.kernels.long_conv.triton_kernels import (
    long_conv_dft_mid_kernel,
    long_conv_dft_rows_kernel,
    long_conv_dft_rows_split_kernel,
    long_conv_idft_rows_kernel,
    long_conv_idft_rows_split_kernel,
)

# Launch parameters (to tune on a GPU; the defaults compile for sm_90 with (almost) no register spills, checked
# with cuobjdump on ahead-of-time builds at N = 32K, not timed: see README.md).
# Two-factor passes 1 and 3: BLOCK_M rows (K-steps of BLOCK_K) times BLOCK_COLS columns = (values of n2) x
# (BLOCK_D channels), ROWS_WARPS warps. Pass 2: all N2 rows times MID_BLOCK_COLS columns = (values of f1) x
# (channels), MID_WARPS warps; MAX_N2 bounds the middle factor, whose F2 and complex tiles pass 2 keeps in registers.
BLOCK_M = 32
BLOCK_K = 16
BLOCK_D = 32
BLOCK_COLS = 64
ROWS_WARPS = 8
MID_BLOCK_COLS = 32
MID_BLOCK_COLS_FP32 = 16  # fp32 inputs: tf32x3 dots hold about twice the values
MID_WARPS = 8
MAX_N2 = 64
# From N1 = SPLIT_MIN_N1 (N >= 16K) passes 1 and 3 split N1 = NA * NB inside one program holding all N1 rows of
# SPLIT_BLOCK_D channels x 1 value of n2 (GEMM depths NA + NB instead of N1), working through fa in chunks of
# SPLIT_CHUNK rows; set SPLIT_MIN_N1 past any N1 to disable. SPLIT_BLOCK_D = 4 removes their last spills (on
# batch pairs) at the price of 16-byte memory runs.
SPLIT_MIN_N1 = 256
SPLIT_BLOCK_D = 8
SPLIT_CHUNK = 16
SPLIT_WARPS = 8
MIN_N = 256  # 16 x 16: tl.dot needs every dimension >= 16

_MATRICES: dict[tuple[int, int, str], tuple[torch.Tensor, ...]] = {}


def _dft(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n x n`` DFT matrix ``exp(-2 pi i f m / n)`` as fp32 (real, imaginary), built in fp64."""
    idx = torch.arange(n, dtype=torch.int64)
    # reduce f*m mod n in integers so the angle stays exact for large n
    ang = (-2 * math.pi / n) * torch.remainder(idx[:, None] * idx[None, :], n).double()
    return ang.cos().float().to(device).contiguous(), ang.sin().float().to(device).contiguous()


def _plan(length: int, device: torch.device) -> tuple[int, int, tuple[torch.Tensor, ...]]:
    """``(N1, N2, (F1r, F1i, F2r, F2i, twr, twi))`` for the smallest power of two ``N = N1 N2 >= length``."""
    n = max(MIN_N, triton.next_power_of_2(length))
    log_n2 = min(MAX_N2.bit_length() - 1, (n.bit_length() - 1) // 2)
    n2 = 1 << log_n2
    n1 = n // n2
    key = (n1, n2, str(device))
    if key not in _MATRICES:
        f1r, f1i = _dft(n1, device)
        f2r, f2i = _dft(n2, device)
        f1 = torch.arange(n1, dtype=torch.int64)[:, None]
        m2 = torch.arange(n2, dtype=torch.int64)[None, :]
        ang = (-2 * math.pi / n) * (f1 * m2).double()  # f1 * n2 < N: exact
        _MATRICES[key] = (f1r, f1i, f2r, f2i, ang.cos().float().to(device), ang.sin().float().to(device))
    return n1, n2, _MATRICES[key]


def _split(n1: int, device: torch.device) -> tuple | None:
    """``(NA, NB, (FAr, FAi, FBr, FBi, t1r, t1i))`` for ``N1 = NA * NB`` (both >= 16), or None (no split)."""
    if n1 < max(SPLIT_MIN_N1, 256):
        return None
    nb = 1 << ((n1.bit_length() - 1) // 2)
    na = n1 // nb
    key = (na, nb, "split", str(device))
    if key not in _MATRICES:
        far, fai = _dft(na, device)
        fbr, fbi = _dft(nb, device)
        fa = torch.arange(na, dtype=torch.int64)[:, None]
        mb = torch.arange(nb, dtype=torch.int64)[None, :]
        ang = (-2 * math.pi / n1) * (fa * mb).double()
        _MATRICES[key] = (far, fai, fbr, fbi, ang.cos().float().to(device), ang.sin().float().to(device))
    return na, nb, _MATRICES[key]


def _split_blocks(n2: int, na: int, channels: int, device: torch.device) -> tuple[int, int, int]:
    """``(BD, BJ, FC)`` of the split passes: their tiles hold all ``N1`` rows, so few columns on a GPU, and the
    ``fa`` index is worked through in chunks of ``FC``."""
    if device.type != "cuda":
        return max(16, triton.next_power_of_2(channels)), n2, na
    # the dots' column counts are NB x BD and FC x BD (NB, FC >= 16), so BD may go below 16 here
    return min(SPLIT_BLOCK_D, triton.next_power_of_2(channels)), 1, min(na, SPLIT_CHUNK)


def _gpu_blocks(
    rows: int,
    cols: int,
    channels: int,
    block_m: int = BLOCK_M,
    block_k: int = BLOCK_K,
    block_d: int = BLOCK_D,
    block_cols: int = BLOCK_COLS,
) -> tuple[int, int, int, int]:
    """``(BM, BK, BD, BJ)`` for a pass whose tiles have ``rows`` rows and ``cols`` x ``channels`` columns."""
    bd = min(block_d, block_cols, max(16, triton.next_power_of_2(channels)))
    return min(rows, block_m), min(rows, block_k), bd, min(cols, max(1, block_cols // bd))


def _blocks(
    rows: int, cols: int, channels: int, device: torch.device, block_cols: int = BLOCK_COLS
) -> tuple[int, int, int, int]:
    """The launch blocks on ``device`` (see :func:`_gpu_blocks`)."""
    if device.type != "cuda":
        # CPU tensors run only under Triton's interpreter, where every program costs a fixed overhead:
        # one program per batch element (whole tiles), since there are no registers to run out of
        return rows, rows, max(16, triton.next_power_of_2(channels)), cols
    return _gpu_blocks(rows, cols, channels, block_cols=block_cols)


def _pairs(batch: int) -> int:
    """Complex signals for ``batch`` real ones: two batch elements share the filter, so they share a transform."""
    return (batch + 1) // 2 if batch > 1 else 1


def _dft_rows(x, h0, strides, batch, length, channels, hist, rev, plan, out, half, im_sign=1.0):
    """Pass 1 into ``out [2, P, N, D]``: the signal ``[h0 (hist steps), x (length steps)]`` or reversed ``x``.

    With ``batch > 1`` element ``2p + 1`` is the imaginary part (times ``im_sign``) of complex signal ``p``.
    """
    n1, n2, (f1r, f1i, _, _, twr, twi) = plan
    split = _split(n1, out.device)
    if split is not None:
        na, nb, (far, fai, fbr, fbi, t1r, t1i) = split
        bd, bj, fc = _split_blocks(n2, na, channels, out.device)
        grid = (n2 // bj * triton.cdiv(channels, bd), _pairs(batch))
        long_conv_dft_rows_split_kernel[grid](
            x, x if h0 is None else h0, far, fai, fbr, fbi, t1r, t1i, twr, twi, out[0], out[1],
            batch, length, channels, hist, *strides,
            NA=na, NB=nb, FC=fc, N2=n2, BJ=bj, BD=bd, HAS_H0=h0 is not None and hist > 0, REV=rev,
            PAIR=batch > 1, IM_SIGN=im_sign, HALF=half, num_warps=SPLIT_WARPS,
        )  # fmt: skip
        return
    bm, bk, bd, bj = _blocks(n1, n2, channels, out.device)
    signal = length if rev else hist + length
    nk = triton.cdiv(triton.cdiv(signal, n2), bk)  # blocks of n1 past the signal are zero padding
    grid = (n1 // bm, n2 // bj * triton.cdiv(channels, bd), _pairs(batch))
    long_conv_dft_rows_kernel[grid](
        x, x if h0 is None else h0, f1r, f1i, twr, twi, out[0], out[1],
        batch, length, channels, hist, nk, *strides,
        N1=n1, N2=n2, BM=bm, BK=bk, BJ=bj, BD=bd, HAS_H0=h0 is not None and hist > 0, REV=rev,
        PAIR=batch > 1, IM_SIGN=im_sign, HALF=half, num_warps=ROWS_WARPS,
    )  # fmt: skip


def _dft_mid(buf, plan, half, spectrum=None, second=None, scale=1.0):
    """Pass 2 in place on ``buf [2, P, N, D]``: store the spectrum times ``scale`` (no ``spectrum``), or the
    inverse-``F2`` step of ``X * spectrum`` (and of ``X * second`` into ``second``, in place)."""
    n1, n2, (_, _, f2r, f2i, twr, twi) = plan
    batch, channels = buf.shape[1], buf.shape[3]
    # the columns of pass 2 run over f1 (N1 values) where passes 1 and 3 run over n2
    cols = MID_BLOCK_COLS if half else MID_BLOCK_COLS_FP32
    _, _, bd, bj = _blocks(n2, n1, channels, buf.device, block_cols=cols)
    conv = spectrum is not None
    s = spectrum if conv else buf
    q = second if second is not None else buf
    grid = (n1 // bj * triton.cdiv(channels, bd), batch)
    long_conv_dft_mid_kernel[grid](
        buf[0], buf[1], s[0], s[1], q[0], q[1], f2r, f2i, twr, twi,
        channels, s[0].stride(0) if s.shape[1] > 1 else 0, scale,
        N1=n1, N2=n2, BJ=bj, BD=bd, CONV=conv, TWO=second is not None, HALF=half, num_warps=MID_WARPS,
    )  # fmt: skip


def _idft_rows(
    buf, plan, half, y, off, length, rev, batch, u=None, bias=None, gate=None, z=None, y2=None, off2=0, len2=0
):
    """Pass 3 from ``buf [2, P, N, D]``: ``y[o] = gate * (c[s] + u[o] * bias)`` at ``o = off -/+ s`` and
    ``y2[off2 - s] = c[s]``, for the ``batch`` elements packed in pairs (``batch == 1``: only the real part)."""
    n1, n2, (f1r, f1i, _, _, _, _) = plan
    pairs, channels = buf.shape[1], buf.shape[3]
    has_y2 = y2 is not None and len2 > 0
    s2 = y2.stride() if has_y2 else (0, 0, 0)
    split = _split(n1, buf.device)
    if split is not None:
        na, nb, (far, fai, fbr, fbi, t1r, t1i) = split
        bd, bj, fc = _split_blocks(n2, na, channels, buf.device)
        grid = (n2 // bj * triton.cdiv(channels, bd), pairs)
        long_conv_idft_rows_split_kernel[grid](
            buf[0], buf[1], far, fai, fbr, fbi, t1r, t1i,
            y, y if u is None else u, y if bias is None else bias, y if gate is None else gate,
            y if z is None else z, y2 if has_y2 else y,
            batch, channels, off, length, off2, len2, *y.stride(), *s2,
            NA=na, NB=nb, FC=fc, N2=n2, BJ=bj, BD=bd, REV=rev, HAS_BIAS=bias is not None, GATE=gate is not None,
            STORE_Z=z is not None, HAS_Y2=has_y2, PAIR=batch > 1, HALF=half, num_warps=SPLIT_WARPS,
        )  # fmt: skip
        return
    bm, bk, bd, bj = _blocks(n1, n2, channels, buf.device)
    grid = (n1 // bm, n2 // bj * triton.cdiv(channels, bd), pairs)
    long_conv_idft_rows_kernel[grid](
        buf[0], buf[1], f1r, f1i, y, y if u is None else u, y if bias is None else bias, y if gate is None else gate,
        y if z is None else z, y2 if has_y2 else y,
        batch, channels, off, length, off2, len2, *y.stride(), *s2,
        N1=n1, N2=n2, BM=bm, BK=bk, BJ=bj, BD=bd, REV=rev, HAS_BIAS=bias is not None, GATE=gate is not None,
        STORE_Z=z is not None, HAS_Y2=has_y2, PAIR=batch > 1, HALF=half, num_warps=ROWS_WARPS,
    )  # fmt: skip


def _sizes(u, k, initial_state):
    """``(history length H, taps used, transform plan)``."""
    length, taps = u.shape[1], k.shape[1]
    hist = taps - 1 if initial_state is not None else 0
    # without a state the taps past T only meet the zeros before the start
    used = taps if initial_state is not None else min(taps, length)
    return hist, used, _plan(length + used - 1, u.device)


def _half(u):
    return u.dtype in (torch.float16, torch.bfloat16)


def long_conv_fwd(u, k, bias, initial_state, gate, store_z=False):
    """Forward launches: ``(y [B,T,D], z [B,T,D] | None (the ungated output, if stored), filter spectrum)``.

    The filter spectrum ``[2, 1, N, D]`` (scaled by ``1/N``) is computed once and shared by the batch.
    """
    batch, length, channels = u.shape
    hist, used, plan = _sizes(u, k, initial_state)
    n = plan[0] * plan[1]
    half = _half(u)
    kf = torch.empty(2, 1, n, channels, device=u.device, dtype=torch.float32)
    # k [D, Lk] read as a signal [1, Lk, D] through its strides
    _dft_rows(k, None, (0, k.stride(1), k.stride(0)), 1, used, channels, 0, False, plan, kf, half)
    _dft_mid(kf, plan, half, scale=1.0 / n)

    buf = torch.empty(2, _pairs(batch), n, channels, device=u.device, dtype=torch.float32)
    _dft_rows(u, initial_state, u.stride(), batch, length, channels, hist, False, plan, buf, half)
    _dft_mid(buf, plan, half, spectrum=kf)
    y = torch.empty_like(u)
    z = torch.empty_like(u) if gate is not None and store_z else None
    _idft_rows(buf, plan, half, y, hist, length, False, batch, u=u, bias=bias, gate=gate, z=z)
    return y, z, kf


def _final_state(u, initial_state, taps):
    """The last ``Lk-1`` inputs of ``[initial_state (or zeros), u]``, ``[B,D,Lk-1]`` fp32."""
    length = u.shape[1]
    hist = taps - 1
    tail = u[:, max(length - hist, 0) :].transpose(1, 2).float()
    if length >= hist:
        # a copy even when the view is already dense (T = 1 = Lk-1): the state must not alias the input
        return tail.clone(memory_format=torch.contiguous_format)
    if initial_state is None:
        return F.pad(tail, (hist - length, 0))
    return torch.cat([initial_state[:, :, length:].float(), tail], dim=-1)


def long_conv_bwd(u, k, bias, initial_state, gate, z, kf, dy, dfinal_state, need_dk=True):
    """Backward launches: ``(du, dk, dbias, dinitial_state, dgate)`` in the inputs' dtypes (None where absent)."""
    batch, length, channels = u.shape
    taps = k.shape[1]
    hist, used, plan = _sizes(u, k, initial_state)
    n = plan[0] * plan[1]
    half = _half(u)
    dyf = dy.float()
    dz = (dyf * gate.float() if gate is not None else dyf).contiguous()
    dgate = (dyf * z.float()).to(gate.dtype) if gate is not None else None
    dbias = (dz * u.float()).sum((0, 1)).to(bias.dtype) if bias is not None else None

    pairs = _pairs(batch)
    buf = torch.empty(2, pairs, n, channels, device=u.device, dtype=torch.float32)
    _dft_rows(dz, None, dz.stride(), batch, length, channels, 0, True, plan, buf, half)
    bup = None
    if need_dk:
        # the spectrum of up = [h0, u], scaled by 1/N like the filter's. Pairs are packed as up[2p] - i up[2p+1]:
        # then Re IFFT((DZ[2p] + i DZ[2p+1]) (UP[2p] - i UP[2p+1])) = sum over the pair of conv(dz_rev, up).
        bup = torch.empty(2, pairs, n, channels, device=u.device, dtype=torch.float32)
        _dft_rows(u, initial_state, u.stride(), batch, length, channels, hist, False, plan, bup, half, im_sign=-1.0)
        _dft_mid(bup, plan, half, scale=1.0 / n)
    _dft_mid(buf, plan, half, spectrum=kf, second=bup)

    # reversed time: c[s] is d up at position T-1+H-s, i.e. du[T-1-s] and dh0[T-1+H-s]
    du = torch.empty(batch, length, channels, device=u.device, dtype=torch.float32)
    dh0 = None
    if initial_state is not None:
        dh0 = torch.empty(batch, channels, hist, device=u.device, dtype=torch.float32)
    # dh0 [B, D, H] is written through its [B, H, D] view: out 2 is addressed as (batch, time, channel)
    dh0_t = dh0.transpose(1, 2) if dh0 is not None else None
    _idft_rows(buf, plan, half, du, length - 1, length, True, batch, u=dz, bias=bias, y2=dh0_t,
               off2=length - 1 + hist, len2=hist)  # fmt: skip
    dk = None
    if need_dk:
        dk_part = torch.empty(pairs, used, channels, device=u.device, dtype=torch.float32)
        # one real output per pair (batch=1: no imaginary part to store)
        _idft_rows(bup, plan, half, dk_part, length - 1 + hist, used, True, 1)
        dk = F.pad(dk_part.sum(0).t(), (0, taps - used)).to(k.dtype)

    state_len = taps - 1  # the state's length, whether or not an initial state was given
    if dfinal_state is not None and state_len > 0:
        # final_state[i] = up[T + i] (up = [h0 or zeros, u]): its gradient goes to u, and to h0 when T < Lk-1
        start = max(state_len - length, 0)
        du[:, length - (state_len - start) :] += dfinal_state[:, :, start:].transpose(1, 2).float()
        if dh0 is not None and start > 0:
            dh0[:, :, length:] += dfinal_state[:, :, :start].float()
    dinitial = dh0.to(initial_state.dtype) if dh0 is not None else None
    return du.to(u.dtype), dk, dbias, dinitial, dgate


class LongConvFunction(torch.autograd.Function):
    """Autograd wrapper: saves the inputs, the filter spectrum and (with a gate) the ungated output."""

    @staticmethod
    def forward(ctx, u, k, bias, initial_state, gate):
        store_z = gate is not None and gate.requires_grad
        y, z, kf = long_conv_fwd(u, k, bias, initial_state, gate, store_z)
        final_state = _final_state(u, initial_state, k.shape[1])
        ctx.save_for_backward(u, k, bias, initial_state, gate, z, kf)
        # an unused output gets no gradient tensor instead of a materialised zero one
        ctx.set_materialize_grads(False)
        return y, final_state

    @staticmethod
    def backward(ctx, dy, dfinal_state):
        u, k, bias, initial_state, gate, z, kf = ctx.saved_tensors
        if dy is None:
            dy = torch.zeros_like(u)
        du, dk, dbias, dinitial, dgate = long_conv_bwd(
            u, k, bias, initial_state, gate, z, kf, dy, dfinal_state, need_dk=ctx.needs_input_grad[1]
        )
        return du, dk, dbias, dinitial, dgate


def long_conv_triton(
    u: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton FFT long conv of ``u [B,T,D]`` with ``k [D,Lk]``: ``(y [B,T,D], final_state [B,D,Lk-1] fp32)``.

    ``y = gate * (causal_conv(u, k) + u * bias)`` with the history ``initial_state`` before ``u``; see the
    module docstring and README.md for the passes.
    """
    _check(u, k, bias, initial_state, gate)
    u = u.contiguous()
    k = k.contiguous()
    if bias is not None:
        bias = bias.contiguous()
    if initial_state is not None:
        initial_state = initial_state.contiguous()
    if gate is not None:
        gate = gate.contiguous()
    return LongConvFunction.apply(u, k, bias, initial_state, gate)
