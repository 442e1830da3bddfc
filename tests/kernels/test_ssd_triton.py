"""The Triton SSD scan against the spec, under TRITON_INTERPRET=1 on CPU (tier ``interpret``) at tiny shapes."""

import tempfile
from itertools import pairwise

import pytest
import torch

from zoo.kernels.ssd import ssd_chunk, ssd_recurrent_ref
from zoo.testing import assert_close

pytestmark = pytest.mark.interpret

GRAD_NAMES = ("dx", "ddt", "dA", "dB", "dC", "dD", "dh0")

# (B, T, H, P, N, G): odd T below / across / past chunk boundaries of L = 16, G = 1 and G = H
SHAPES = [
    (1, 1, 2, 8, 16, 1),
    (2, 7, 1, 16, 8, 1),
    (1, 33, 2, 16, 16, 2),
    (2, 65, 2, 5, 3, 1),
]
IDS = [f"B{b}-T{t}-H{h}-P{p}-N{n}-G{g}" for b, t, h, p, n, g in SHAPES]


def make_inputs(B, T, H, P, N, G, S=None):
    """Inputs in Mamba-2's working range (as tests/kernels/test_ssd.py): ``x, dt, A, Bm, Cm, D, h0``.

    ``S``: the number of packed sequences (``h0`` is then ``[S,H,N,P]``).
    """
    return [
        torch.randn(B, T, H, P),
        torch.rand(B, T, H) * 0.49 + 0.01,
        -(torch.rand(H) * 2 + 0.1),
        torch.randn(B, T, G, N) / N**0.5,
        torch.randn(B, T, G, N),
        torch.randn(H),
        torch.randn(B if S is None else S, H, N, P),
    ]


def _run_and_grad(fn, inputs, dy, ds, **kwargs):
    """``(y, final_state, grads of <y, dy> + <state, ds> w.r.t. every tensor input)``; ``dy=None``: state only."""
    y, s = fn(*inputs, **kwargs)
    tensors = [u for u in inputs if u is not None]
    loss = (s * ds).sum() if dy is None else (y.float() * dy).sum() + (s * ds).sum()
    grads = torch.autograd.grad(loss, tensors, allow_unused=True, materialize_grads=True)
    return y, s, grads


def _check_all(inputs, y_ref, s_ref, grads_ref, y, s, grads, rtol):
    assert_close("y", y_ref, y, rtol)
    assert_close("final_state", s_ref, s, rtol)
    names = [n for n, u in zip(GRAD_NAMES, inputs) if u is not None]
    for name, g_ref, g in zip(names, grads_ref, grads, strict=True):
        assert_close(name, g_ref, g, rtol)


@pytest.mark.parametrize("optional", ["D+h0", "h0", "none"])
@pytest.mark.parametrize(("B", "T", "H", "P", "N", "G"), SHAPES, ids=IDS)
def test_ssd_triton_matches_recurrent(B, T, H, P, N, G, optional, nan_poisoned_empty):
    inputs = make_inputs(B, T, H, P, N, G)
    if optional != "D+h0":
        inputs[5] = None
    if optional == "none":
        inputs[6] = None
    inputs = [None if u is None else u.requires_grad_() for u in inputs]
    dy, ds = torch.randn(B, T, H, P), torch.randn(B, H, N, P)
    y_ref, s_ref, grads_ref = _run_and_grad(ssd_recurrent_ref, inputs, dy, ds)
    y, s, grads = _run_and_grad(ssd_chunk, inputs, dy, ds, chunk_size=16, impl="triton")
    assert y.dtype == torch.float32 and s.dtype == torch.float32
    _check_all(inputs, y_ref, s_ref, grads_ref, y, s, grads, 1e-4)


def test_ssd_triton_grad_from_final_state_only(nan_poisoned_empty):
    # y unused: autograd hands the backward no dy at all, only the final state's gradient
    inputs = [u.requires_grad_() for u in make_inputs(1, 20, 2, 8, 16, 1)]
    ds = torch.randn(1, 2, 16, 8)
    _, s_ref, grads_ref = _run_and_grad(ssd_recurrent_ref, inputs, None, ds)
    _, s, grads = _run_and_grad(ssd_chunk, inputs, None, ds, chunk_size=16, impl="triton")
    assert_close("final_state", s_ref, s, 1e-4)
    for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads, strict=True):
        if name in ("dC", "dD"):  # C and D only reach y
            assert float(g.abs().max()) == 0.0, name
            continue
        assert_close(name, g_ref, g, 1e-4)


def test_ssd_triton_bf16(nan_poisoned_empty):
    inputs = [u.to(torch.bfloat16).requires_grad_() for u in make_inputs(2, 33, 2, 16, 16, 1)]
    dy, ds = torch.randn(2, 33, 2, 16), torch.randn(2, 2, 16, 16)
    y, s, grads = _run_and_grad(ssd_chunk, inputs, dy, ds, chunk_size=16, impl="triton")
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32
    assert all(g.dtype == torch.bfloat16 for g in grads)
    inputs_ref = [u.detach().float().requires_grad_() for u in inputs]
    y_ref, s_ref, grads_ref = _run_and_grad(ssd_recurrent_ref, inputs_ref, dy, ds)
    _check_all(inputs, y_ref, s_ref, grads_ref, y, s, grads, 1e-2)


def test_ssd_triton_pieces_with_state_equal_one_pass(nan_poisoned_empty):
    x, dt, A, Bm, Cm, D, _ = make_inputs(2, 40, 2, 8, 16, 2)
    y_full, s_full = ssd_chunk(x, dt, A, Bm, Cm, D, chunk_size=16, impl="triton")
    ys, state = [], None
    for lo, hi in [(0, 1), (1, 21), (21, 40)]:
        y, state = ssd_chunk(x[:, lo:hi], dt[:, lo:hi], A, Bm[:, lo:hi], Cm[:, lo:hi], D, state, 16, "triton")
        ys.append(y)
    assert_close("y", y_full, torch.cat(ys, 1), 1e-5)
    assert_close("state", s_full, state, 1e-5)


def test_ssd_triton_non_contiguous_inputs(nan_poisoned_empty):
    # the kernels take every input's strides: time-major views of head-major tensors, B/C sliced from one tensor
    x, dt, A, Bm, Cm, D, h0 = make_inputs(1, 20, 2, 8, 16, 2)
    x_nc = x.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    dt_nc = dt.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    bc = torch.cat([Bm, Cm], dim=-1).requires_grad_()
    h0_nc = h0.transpose(-1, -2).contiguous().transpose(-1, -2)
    dy, ds = torch.randn(1, 20, 2, 8), torch.randn(1, 2, 16, 8)
    inputs_ref = [u.requires_grad_() for u in (x, dt, A, Bm, Cm, D, h0)]
    y_ref, s_ref, grads_ref = _run_and_grad(ssd_recurrent_ref, inputs_ref, dy, ds)
    inputs = [x_nc, dt_nc, A, bc[..., :16], bc[..., 16:], D, h0_nc]
    y, s = ssd_chunk(*inputs, chunk_size=16, impl="triton")
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), [x_nc, dt_nc, bc])
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-4)
    assert_close("dx", grads_ref[0], grads[0], 1e-4)
    assert_close("ddt", grads_ref[1], grads[1], 1e-4)
    assert_close("dBC", torch.cat(grads_ref[3:5], -1), grads[2], 1e-4)


# boundaries of packed sequences: mid-chunk, an empty sequence, a sequence longer than a chunk, a 1-token one
CU_SEQLENS = [0, 5, 5, 24, 25, 45]


@pytest.mark.parametrize("with_h0", [True, False])
def test_ssd_triton_varlen_matches_each_sequence_alone(with_h0, nan_poisoned_empty):
    S, T, H, P, N, G = len(CU_SEQLENS) - 1, CU_SEQLENS[-1], 2, 8, 16, 2
    inputs = [u.requires_grad_() for u in make_inputs(1, T, H, P, N, G, S=S)]
    if not with_h0:
        inputs[6] = None
    dy, ds = torch.randn(1, T, H, P), torch.randn(S, H, N, P)
    cu = torch.tensor(CU_SEQLENS, dtype=torch.int32)
    y, s, grads = _run_and_grad(ssd_chunk, inputs, dy, ds, chunk_size=16, impl="triton", cu_seqlens=cu)
    assert s.shape == (S, H, N, P)

    # the spec of varlen: every sequence run alone through the recurrence, from its own initial state
    x, dt, A, Bm, Cm, D, h0 = inputs
    ys, finals = [], []
    for i, (lo, hi) in enumerate(pairwise(CU_SEQLENS)):
        h0_i = torch.zeros(1, H, N, P) if h0 is None else h0[i : i + 1]
        if hi == lo:
            ys.append(x[:, lo:hi])
            finals.append(h0_i)
            continue
        y_i, s_i = ssd_recurrent_ref(x[:, lo:hi], dt[:, lo:hi], A, Bm[:, lo:hi], Cm[:, lo:hi], D, h0_i)
        ys.append(y_i)
        finals.append(s_i)
    y_ref, s_ref = torch.cat(ys, 1), torch.cat(finals, 0)
    tensors = [u for u in inputs if u is not None]
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), tensors)
    _check_all(inputs, y_ref, s_ref, grads_ref, y, s, grads, 1e-4)


def test_ssd_triton_varlen_rejects_bad_cu_seqlens():
    x, dt, A, Bm, Cm, D, h0 = make_inputs(1, 10, 2, 8, 16, 1)
    args = (x, dt, A, Bm, Cm, D)
    for cu, match in [
        (torch.tensor([1, 10]), "start at 0"),
        (torch.tensor([0, 9]), "end at T=10"),
        (torch.tensor([0, 6, 4, 10]), "non-decreasing"),
        (torch.tensor([0.0, 10.0]), "int32/int64"),
        (torch.tensor([[0, 10]]), "1-D"),
    ]:
        with pytest.raises(ValueError, match=match):
            ssd_chunk(*args, impl="triton", cu_seqlens=cu)
    with pytest.raises(ValueError, match=r"initial_state must have shape \[S,H,K,V\]"):
        ssd_chunk(*args, h0, impl="triton", cu_seqlens=torch.tensor([0, 4, 10]))
    x2, dt2, _, Bm2, Cm2, _, _ = make_inputs(2, 10, 2, 8, 16, 1)
    with pytest.raises(ValueError, match="B == 1"):
        ssd_chunk(x2, dt2, A, Bm2, Cm2, impl="triton", cu_seqlens=torch.tensor([0, 10]))


def test_ssd_triton_offsets_past_int32(nan_poisoned_empty):
    # 64-bit offsets, tested for real: x, dt, B and C are slices of one packed projection (as Mamba-2's in_proj
    # output) whose time stride is 2^27 elements, so the element index t * stride_t of the inputs passes 2^31
    # from t = 16 on. The storage is a ~10 GB sparse file mapped copy-on-write: only the pages written below
    # are ever touched. The view starts 2^31 elements into it, so an index wrapped to a negative int32 still
    # lands inside the mapping (zeros) and the comparison fails cleanly instead of crashing.
    T, H, P, N, G = 20, 2, 16, 16, 1
    row, start = 1 << 27, 1 << 31
    size = start + T * row
    with tempfile.NamedTemporaryFile() as f:
        try:
            f.truncate(size * 2)
            big = torch.from_file(f.name, shared=False, size=size, dtype=torch.bfloat16)
        except (OSError, RuntimeError) as e:  # no sparse files / not enough address space here
            pytest.skip(f"cannot map a sparse {size * 2 >> 30} GiB file: {e}")
        channels = H * P + H + 2 * G * N
        packed = big.as_strided((1, T, channels), (T * row, row, 1), start)
        x, dt, A, Bm, Cm, _, _ = make_inputs(1, T, H, P, N, G)
        packed.copy_(torch.cat([x.flatten(2), dt, Bm.flatten(2), Cm.flatten(2)], -1))
        cut = [H * P, H, G * N, G * N]
        x_v, dt_v, b_v, c_v = packed.split(cut, dim=-1)
        views = [x_v.unflatten(-1, (H, P)), dt_v, b_v.unflatten(-1, (G, N)), c_v.unflatten(-1, (G, N))]
        views = [u.requires_grad_() for u in views]
        assert views[0].stride(1) * (T - 1) > 2**31
        inputs = [views[0], views[1], A.requires_grad_(), views[2], views[3], None, None]
        dy, ds = torch.randn(1, T, H, P), torch.randn(1, H, N, P)
        y, s, grads = _run_and_grad(ssd_chunk, inputs, dy, ds, chunk_size=16, impl="triton")
        inputs_ref = [u.detach().float().requires_grad_() for u in inputs[:5]]
        y_ref, s_ref, grads_ref = _run_and_grad(ssd_recurrent_ref, inputs_ref, dy, ds)
        _check_all(inputs_ref, y_ref, s_ref, grads_ref, y, s, grads, 1e-2)


def test_ssd_triton_long_chunk_size_is_capped(nan_poisoned_empty):
    # chunk_size past the kernels' register budget runs as chunks of MAX_CHUNK tokens: same result
    inputs = make_inputs(1, 70, 2, 8, 16, 1)
    y_ref, s_ref = ssd_recurrent_ref(*inputs)
    y, s = ssd_chunk(*inputs, chunk_size=256, impl="triton")
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-4)
