import pytest
import torch

from zoo.kernels.long_conv import (
    long_conv_chunk,
    long_conv_recurrent_ref,
    long_conv_step,
)
from zoo.kernels.long_conv.reference import fft_size
from zoo.testing import assert_close

# (B, T, D, Lk): Lk < T, Lk == T, Lk > T, a single tap, odd lengths
SHAPES = [(1, 1, 3, 1), (2, 17, 8, 5), (3, 33, 5, 33), (2, 19, 6, 40), (1, 64, 4, 1), (2, 129, 16, 64)]


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "with-state"])
@pytest.mark.parametrize(("B", "T", "D", "L"), SHAPES, ids=[f"B{b}-T{t}-D{d}-L{k}" for b, t, d, k in SHAPES])
def test_long_conv_chunk_matches_recurrent(B, T, D, L, with_state, nan_poisoned_empty):
    u = torch.randn(B, T, D, requires_grad=True)
    k = (torch.randn(D, L) / L**0.5).requires_grad_()
    bias = torch.randn(D, requires_grad=True)
    h0 = torch.randn(B, D, L - 1, requires_grad=True) if with_state else None
    y_ref, s_ref = long_conv_recurrent_ref(u, k, bias, h0)
    y, s = long_conv_chunk(u, k, bias, h0)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    inputs = (u, k, bias) + ((h0,) if with_state else ())
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), inputs)
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), inputs)
    for name, g_ref, g in zip(("du", "dk", "dbias", "dh0"), grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "with-state"])
def test_long_conv_gate_matches_recurrent_and_gating_outside(with_state, nan_poisoned_empty):
    u, k = torch.randn(2, 19, 5, requires_grad=True), (torch.randn(5, 7) / 3).requires_grad_()
    bias, gate = torch.randn(5, requires_grad=True), torch.randn(2, 19, 5, requires_grad=True)
    h0 = torch.randn(2, 5, 6, requires_grad=True) if with_state else None
    y_ref, s_ref = long_conv_recurrent_ref(u, k, bias, h0, gate)
    y, s = long_conv_chunk(u, k, bias, h0, gate)
    # the gate multiplies the output only: the state is the ungated input history
    y_plain, s_plain = long_conv_chunk(u, k, bias, h0)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("y = gate * ungated", gate * y_plain, y, 1e-6)
    assert_close("final_state", s_plain, s, 0.0, atol=0.0)
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    inputs = (u, k, bias, gate) + ((h0,) if with_state else ())
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), inputs)
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), inputs)
    for name, g_ref, g in zip(("du", "dk", "dbias", "dgate", "dh0"), grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


def test_long_conv_without_bias_and_in_bf16():
    u, k = torch.randn(2, 21, 4), torch.randn(4, 9) / 3
    y_ref, _ = long_conv_recurrent_ref(u, k)
    y, _ = long_conv_chunk(u, k)
    assert_close("y", y_ref, y, 1e-5)
    y16, s16 = long_conv_chunk(u.bfloat16(), k)
    assert y16.dtype == torch.bfloat16 and s16.dtype == torch.float32
    assert_close("y bf16", y_ref, y16, 1e-2)


@pytest.mark.parametrize("L", [1, 7, 50], ids=lambda n: f"L{n}")
def test_long_conv_pieces_with_state_equal_one_pass(L):
    u, k, bias = torch.randn(2, 45, 6), torch.randn(6, L) / L**0.5, torch.randn(6)
    y_full, s_full = long_conv_chunk(u, k, bias)
    y1, s1 = long_conv_chunk(u[:, :3], k, bias)  # shorter than the filter
    y2, s2 = long_conv_chunk(u[:, 3:30], k, bias, s1)
    y3, s3 = long_conv_chunk(u[:, 30:], k, bias, s2)
    assert_close("y", y_full, torch.cat([y1, y2, y3], 1), 1e-5)
    assert_close("state", s_full, s3, 1e-6, atol=1e-7)


def test_long_conv_step_matches_chunk():
    u, k, bias = torch.randn(2, 13, 6), torch.randn(6, 8) / 3, torch.randn(6)
    y_full, s_full = long_conv_chunk(u, k, bias)
    state = torch.zeros(2, 6, 7)
    ys = []
    for t in range(13):
        y_t, state = long_conv_step(u[:, t], k, bias, state)
        ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-5)
    assert_close("state", s_full, state, 1e-6, atol=1e-7)


def test_fft_size_is_the_smallest_5_smooth_length():
    def smooth(n):
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 600):
        m = fft_size(n)
        assert m >= n and smooth(m) and not any(smooth(j) for j in range(n, m)), n


def test_long_conv_rejects_bad_shapes():
    u = torch.randn(1, 4, 3)
    with pytest.raises(ValueError, match=r"k must have shape \[D,Lk\]"):
        long_conv_chunk(u, torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"u must have shape \[B,T,D\]"):
        long_conv_chunk(torch.randn(4, 3), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"bias must have shape \[D\]"):
        long_conv_chunk(u, torch.randn(3, 4), torch.randn(4))
    with pytest.raises(ValueError, match=r"initial_state must have shape \[B,D,Lk-1\]"):
        long_conv_chunk(u, torch.randn(3, 4), None, torch.randn(1, 3, 4))
    with pytest.raises(ValueError, match=r"gate must have shape \[B,T,D\]"):
        long_conv_chunk(u, torch.randn(3, 4), gate=torch.randn(1, 4, 2))
    with pytest.raises(ValueError, match="at least one tap"):
        long_conv_chunk(u, torch.randn(3, 0))
    with pytest.raises(ValueError, match="impl='cuda'"):
        long_conv_chunk(u, torch.randn(3, 4), impl="cuda")
    with pytest.raises(ValueError, match=r"state must have shape \[B,D,Lk-1\]"):
        long_conv_step(u[:, 0], torch.randn(3, 4), None, torch.zeros(1, 3, 4))
