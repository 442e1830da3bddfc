import pytest
import torch

from zoo.kernels.causal_conv1d import (
    causal_conv1d_chunk,
    causal_conv1d_recurrent_ref,
    causal_conv1d_step,
)
from zoo.testing import assert_close

SHAPES = [(1, 1, 3, 2), (2, 17, 8, 4), (3, 64, 5, 3), (2, 129, 16, 4)]


@pytest.mark.parametrize("layout", ["time-major", "channels-first"])
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize(("B", "T", "D", "W"), SHAPES, ids=[f"B{b}-T{t}-D{d}-W{w}" for b, t, d, w in SHAPES])
def test_causal_conv1d_chunk_matches_recurrent(B, T, D, W, activation, layout, nan_poisoned_empty):
    # The chunked form picks its algorithm by memory layout; both must equal the spec.
    if layout == "time-major":
        x = torch.randn(B, T, D, requires_grad=True)
    else:
        x = torch.randn(B, D, T).transpose(1, 2).requires_grad_()
    w = torch.randn(D, W, requires_grad=True)
    b = torch.randn(D, requires_grad=True)
    h0 = torch.randn(B, D, W - 1, requires_grad=True)
    y_ref, s_ref = causal_conv1d_recurrent_ref(x, w, b, activation, h0)
    y, s = causal_conv1d_chunk(x, w, b, activation, h0)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), (x, w, b, h0))
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), (x, w, b, h0))
    for name, g_ref, g in zip(("dx", "dw", "db", "dh0"), grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


def test_causal_conv1d_pieces_with_state_equal_one_pass():
    x, w = torch.randn(2, 50, 6), torch.randn(6, 4)
    y_full, s_full = causal_conv1d_chunk(x, w, None, "silu")
    y1, s1 = causal_conv1d_chunk(x[:, :2], w, None, "silu")  # shorter than the kernel
    y2, s2 = causal_conv1d_chunk(x[:, 2:31], w, None, "silu", s1)
    y3, s3 = causal_conv1d_chunk(x[:, 31:], w, None, "silu", s2)
    assert_close("y", y_full, torch.cat([y1, y2, y3], 1), 1e-6)
    assert_close("state", s_full, s3, 1e-6)


def test_causal_conv1d_step_matches_chunk():
    x, w, b = torch.randn(2, 9, 6), torch.randn(6, 4), torch.randn(6)
    y_full, s_full = causal_conv1d_chunk(x, w, b, "silu")
    state = torch.zeros(2, 6, 3)
    ys = []
    for t in range(9):
        y_t, state = causal_conv1d_step(x[:, t], w, b, "silu", state)
        ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-6)
    assert_close("state", s_full, state, 1e-6)


def test_causal_conv1d_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"weight must have shape \[D,W\]"):
        causal_conv1d_chunk(torch.randn(1, 4, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="activation='relu'"):
        causal_conv1d_chunk(torch.randn(1, 4, 3), torch.randn(3, 4), activation="relu")
    with pytest.raises(ValueError, match="impl='cuda'"):
        causal_conv1d_chunk(torch.randn(1, 4, 3), torch.randn(3, 4), impl="cuda")
