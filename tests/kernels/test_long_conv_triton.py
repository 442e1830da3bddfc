"""The Triton long conv (matrix-product FFT) against the spec, under TRITON_INTERPRET=1 on CPU at tiny shapes."""

import pytest
import torch

from zoo.kernels.long_conv import long_conv_chunk, long_conv_chunk_ref, long_conv_recurrent_ref, ops
from zoo.testing import assert_close

pytestmark = pytest.mark.interpret

GRAD_NAMES = ("du", "dk", "dbias", "dh0", "dgate")

# (B, T, D, Lk): T = 1, odd T, Lk < T, Lk == T, Lk > T, a non-power-of-two T, D not a multiple of 16;
# B = 3 leaves the second pair of batch elements (packed as one complex signal) without a partner
SHAPES = [(1, 1, 3, 1), (2, 7, 5, 4), (2, 33, 20, 33), (1, 100, 6, 40), (3, 7, 4, 12)]


def make_inputs(B, T, D, L, optional="bias+h0+gate", dtype=torch.float32):
    """``[u, k, bias | None, initial_state | None, gate | None]``, leaves that require grad."""
    inputs = [
        torch.randn(B, T, D, dtype=dtype),
        torch.randn(D, L, dtype=dtype) / L**0.5,
        torch.randn(D, dtype=dtype) if "bias" in optional else None,
        torch.randn(B, D, L - 1, dtype=dtype) if "h0" in optional else None,
        torch.randn(B, T, D, dtype=dtype) if "gate" in optional else None,
    ]
    return [None if x is None else x.requires_grad_() for x in inputs]


def _run_and_grad(fn, inputs, dy, ds, **kwargs):
    """``(y, final_state, grads of <y, dy> + <state, ds> w.r.t. every tensor input)``."""
    y, s = fn(*inputs, **kwargs)
    tensors = [x for x in inputs if x is not None]
    grads = torch.autograd.grad((y.float() * dy).sum() + (s * ds).sum(), tensors)
    return y, s, grads


def _assert_matches(inputs, rtol):
    u, k = inputs[0], inputs[1]
    dy = torch.randn(u.shape)
    ds = torch.randn(u.shape[0], u.shape[2], k.shape[1] - 1)
    # the spec runs on fp32 copies of the inputs: its own bf16 autograd would round every per-step gradient
    inputs_ref = [None if x is None else x.detach().float().requires_grad_() for x in inputs]
    y_ref, s_ref, grads_ref = _run_and_grad(long_conv_recurrent_ref, inputs_ref, dy, ds)
    y, s, grads = _run_and_grad(long_conv_chunk, inputs, dy, ds, impl="triton")
    assert y.dtype == u.dtype and s.dtype == torch.float32
    assert_close("y", y_ref, y.float(), rtol)
    assert_close("final_state", s_ref, s, rtol)
    names = [n for n, x in zip(GRAD_NAMES, inputs) if x is not None]
    leaves = [x for x in inputs if x is not None]
    for name, x, g_ref, g in zip(names, leaves, grads_ref, grads, strict=True):
        assert g.dtype == x.dtype, name
        assert_close(name, g_ref, g.float(), rtol)


@pytest.mark.parametrize("optional", ["bias+h0+gate", "none"])
@pytest.mark.parametrize(("B", "T", "D", "L"), SHAPES, ids=[f"B{b}-T{t}-D{d}-L{k}" for b, t, d, k in SHAPES])
def test_long_conv_triton_matches_recurrent(B, T, D, L, optional, nan_poisoned_empty):
    _assert_matches(make_inputs(B, T, D, L, optional), 1e-4)


@pytest.mark.parametrize("optional", ["bias", "h0", "gate"])
def test_long_conv_triton_one_optional_input(optional, nan_poisoned_empty):
    _assert_matches(make_inputs(2, 9, 5, 6, optional), 1e-4)


def test_long_conv_triton_bfloat16(nan_poisoned_empty):
    # fp32 transforms in both paths; only the bf16 rounding of the inputs' products and outputs differs
    inputs = make_inputs(2, 33, 16, 20, dtype=torch.bfloat16)
    inputs[1] = inputs[1].detach().float().requires_grad_()  # Hyena's filter stays fp32
    _assert_matches(inputs, 1e-2)


@pytest.mark.parametrize(("T", "L", "with_state"), [(130, 130, True), (160, 100, False)], ids=["state", "padded"])
def test_long_conv_triton_gpu_tiling(T, L, with_state, monkeypatch, nan_poisoned_empty):
    # The interpreter normally runs whole tiles; force the GPU tiling with tiny blocks so N1 = 32 > BM = 16,
    # the K loops take two steps (or skip the zero padding), n2 / f1 / channels span several programs, and
    # B = 3 packs two complex signals, the second without a partner.
    from zoo.kernels.long_conv import triton_op

    def small(rows, cols, channels, device, block_cols=None):
        return triton_op._gpu_blocks(rows, cols, channels, block_m=16, block_k=16, block_d=16, block_cols=128)

    monkeypatch.setattr(triton_op, "_blocks", small)
    optional = "bias+gate" + ("+h0" if with_state else "")
    _assert_matches(make_inputs(3, T, 17, L, optional), 1e-4)


def test_long_conv_triton_long_filter_two_factor_limit(nan_poisoned_empty):
    # N = 8192 = 128 x 64: the middle factor at its cap, the outer one past it (forward against the FFT form)
    u, k, bias = torch.randn(1, 3000, 3), torch.randn(3, 3000) / 50, torch.randn(3)
    y_ref, s_ref = long_conv_chunk_ref(u, k, bias)
    y, s = long_conv_chunk(u, k, bias, impl="triton")
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-6)


def test_long_conv_triton_three_factors(monkeypatch, nan_poisoned_empty):
    # N = 8192 = (32 x 16) x 16 with the middle factor capped at 16 (64 in use, where the split starts at N = 16K):
    # passes 1 and 3 split N1 inside a program, work through fa in two chunks of 16, and spread their columns
    # (4 values of n2 x 8 channels: below 16 is allowed here) over several programs per pair.
    # Against the FFT form (itself tested against the spec), forward and every gradient.
    from zoo.kernels.long_conv import triton_op

    monkeypatch.setattr(triton_op, "MAX_N2", 16)
    monkeypatch.setattr(triton_op, "_split_blocks", lambda n2, na, channels, device: (8, 4, 16))
    inputs = make_inputs(3, 1500, 2, 4000)
    dy, ds = torch.randn(3, 1500, 2), torch.randn(3, 2, 3999)
    y_ref, s_ref, grads_ref = _run_and_grad(long_conv_chunk_ref, inputs, dy, ds)
    y, s, grads = _run_and_grad(long_conv_chunk, inputs, dy, ds, impl="triton")
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-6)
    for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads, strict=True):
        assert_close(name, g_ref, g, 1e-4)


def test_long_conv_triton_only_state_or_only_output_used(nan_poisoned_empty):
    # Autograd hands the backward None for an unused output; both cases must still give every gradient.
    inputs = make_inputs(1, 5, 4, 8)
    y_ref, s_ref = long_conv_recurrent_ref(*inputs)
    y, s = long_conv_chunk(*inputs, impl="triton")
    kwargs = {"retain_graph": True, "allow_unused": True, "materialize_grads": True}
    for out_ref, out in ((y_ref, y), (s_ref, s)):
        grads_ref = torch.autograd.grad(out_ref.sum(), inputs, **kwargs)
        grads = torch.autograd.grad(out.sum(), inputs, **kwargs)
        for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads, strict=True):
            assert_close(name, g_ref, g, 1e-4, atol=1e-6)


def test_long_conv_triton_filter_without_grad(nan_poisoned_empty):
    # a frozen filter skips the dk path (the spectrum of [h0, u] is not recomputed)
    u, k, bias, h0, gate = make_inputs(2, 11, 3, 5)
    k = k.detach()
    inputs = [u, k, bias, h0, gate]
    dy = torch.randn(u.shape)
    y_ref, _ = long_conv_recurrent_ref(*inputs)
    y, _ = long_conv_chunk(*inputs, impl="triton")
    leaves = (u, bias, h0, gate)
    for name, g_ref, g in zip(
        ("du", "dbias", "dh0", "dgate"),
        torch.autograd.grad((y_ref * dy).sum(), leaves),
        torch.autograd.grad((y * dy).sum(), leaves),
        strict=True,
    ):
        assert_close(name, g_ref, g, 1e-4)


@pytest.mark.parametrize("L", [1, 6, 30], ids=lambda n: f"L{n}")
def test_long_conv_triton_pieces_with_state_equal_one_pass(L):
    u, k, bias, gate = torch.randn(2, 25, 6), torch.randn(6, L) / L**0.5, torch.randn(6), torch.randn(2, 25, 6)
    y_full, s_full = long_conv_chunk(u, k, bias, None, gate, impl="triton")
    y1, s1 = long_conv_chunk(u[:, :3], k, bias, None, gate[:, :3], impl="triton")  # shorter than the filter
    y2, s2 = long_conv_chunk(u[:, 3:], k, bias, s1, gate[:, 3:], impl="triton")
    assert_close("y", y_full, torch.cat([y1, y2], 1), 1e-5)
    assert_close("state", s_full, s2, 1e-6, atol=1e-7)


def test_long_conv_triton_strided_inputs(nan_poisoned_empty):
    # Hyena's branches are slices / transposed views; the wrapper makes them dense
    u = torch.randn(2, 6, 9).transpose(1, 2).requires_grad_()
    gate = torch.randn(2, 9, 12)[..., ::2].requires_grad_()
    inputs = [u, torch.randn(6, 4).requires_grad_(), None, None, gate]
    _assert_matches(inputs, 1e-4)


def test_long_conv_triton_rejects_bad_gate():
    u, k = torch.randn(1, 4, 3), torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"gate must have shape \[B,T,D\]"):
        long_conv_chunk(u, k, gate=torch.randn(1, 5, 3), impl="triton")


def test_long_conv_auto_on_cpu_takes_the_torch_path(monkeypatch):
    def no_triton(*args, **kwargs):
        raise AssertionError("impl='auto' on CPU tensors must not run the Triton kernel")

    monkeypatch.setitem(ops._IMPLS, "triton", no_triton)
    u, k, gate = torch.randn(1, 5, 3), torch.randn(3, 4), torch.randn(1, 5, 3)
    y, s = long_conv_chunk(u, k, None, None, gate)
    y_ref, s_ref = long_conv_recurrent_ref(u, k, None, None, gate)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("state", s_ref, s, 1e-5)
