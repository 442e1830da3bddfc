"""The Triton causal_conv1d against the spec, under TRITON_INTERPRET=1 on CPU (tier ``interpret``) at tiny shapes."""

import pytest
import torch

from zoo.kernels.causal_conv1d import causal_conv1d_chunk, causal_conv1d_recurrent_ref, ops
from zoo.testing import assert_close

GRAD_NAMES = ("dx", "dweight", "dbias", "dh0")

# (B, T, D, W): odd T below the kernel width, inside one T-block and across T-blocks of 64; D not a multiple of 16
SHAPES = [(1, 1, 8, 4), (2, 7, 5, 4), (2, 33, 64, 2), (1, 65, 20, 4)]
OPTIONALS = ["bias+h0", "none"]


def make_inputs(B, T, D, W, optional="bias+h0", dtype=torch.float32):
    """``[x, weight, bias | None, initial_state | None]``, leaves that require grad."""
    inputs = [
        torch.randn(B, T, D, dtype=dtype),
        torch.randn(D, W, dtype=dtype) / W**0.5,
        torch.randn(D, dtype=dtype) if "bias" in optional else None,
        torch.randn(B, D, W - 1, dtype=dtype) if "h0" in optional else None,
    ]
    return [None if u is None else u.requires_grad_() for u in inputs]


def _run_and_grad(fn, inputs, activation, dy, ds, **kwargs):
    """``(y, final_state, grads of <y, dy> + <state, ds> w.r.t. every tensor input)``."""
    x, weight, bias, h0 = inputs
    y, s = fn(x, weight, bias, activation, h0, **kwargs)
    tensors = [u for u in inputs if u is not None]
    grads = torch.autograd.grad((y.float() * dy).sum() + (s * ds).sum(), tensors)
    return y, s, grads


def _assert_matches(inputs, activation, rtol, **kwargs):
    x, weight = inputs[0], inputs[1]
    dy = torch.randn(x.shape)
    ds = torch.randn(x.shape[0], x.shape[2], weight.shape[1] - 1)
    y_ref, s_ref, grads_ref = _run_and_grad(causal_conv1d_recurrent_ref, inputs, activation, dy, ds)
    y, s, grads = _run_and_grad(causal_conv1d_chunk, inputs, activation, dy, ds, impl="triton", **kwargs)
    assert y.dtype == x.dtype and s.dtype == torch.float32
    assert_close("y", y_ref.float(), y.float(), rtol)
    assert_close("final_state", s_ref, s, rtol)
    names = [n for n, u in zip(GRAD_NAMES, inputs) if u is not None]
    for name, g_ref, g in zip(names, grads_ref, grads, strict=True):
        assert g.dtype == g_ref.dtype, name
        assert_close(name, g_ref.float(), g.float(), rtol)


@pytest.mark.interpret
@pytest.mark.parametrize("optional", OPTIONALS)
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize(
    ("B", "T", "D", "W"), SHAPES, ids=[f"B{b}-T{t}-D{d}-W{w}-float32" for b, t, d, w in SHAPES]
)
def test_causal_conv1d_triton_matches_recurrent(B, T, D, W, activation, optional, nan_poisoned_empty):
    _assert_matches(make_inputs(B, T, D, W, optional), activation, 1e-4)


@pytest.mark.interpret
@pytest.mark.parametrize("optional", ["bias", "h0"])
def test_causal_conv1d_triton_bias_or_state_alone(optional, nan_poisoned_empty):
    _assert_matches(make_inputs(2, 7, 5, 4, optional), "silu", 1e-4)


@pytest.mark.interpret
def test_causal_conv1d_triton_bfloat16(nan_poisoned_empty):
    # Accumulation is fp32 in both paths; only the bf16 rounding of y and the gradients differs.
    _assert_matches(make_inputs(2, 33, 16, 4, dtype=torch.bfloat16), "silu", 1e-2)


@pytest.mark.interpret
def test_causal_conv1d_triton_channels_first_input(nan_poisoned_empty):
    # Hyena hands over a transposed [B,D,T] view; the kernel reads it through strides, without a copy.
    x = torch.randn(2, 12, 17).transpose(1, 2).requires_grad_()
    inputs = [x, *make_inputs(2, 17, 12, 3)[1:]]
    _assert_matches(inputs, "silu", 1e-4)


@pytest.mark.interpret
def test_causal_conv1d_triton_halo_across_small_blocks(nan_poisoned_empty):
    # Blocks of 16 steps: every block start reads its W-1 halo from the previous block or from h0.
    from zoo.kernels.causal_conv1d.triton_op import causal_conv1d_bwd, causal_conv1d_fwd

    x, weight, bias, h0 = make_inputs(1, 37, 6, 4)
    y_ref, s_ref = causal_conv1d_recurrent_ref(x, weight, bias, "silu", h0)
    dy, ds = torch.randn_like(y_ref), torch.randn_like(s_ref)
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), (x, weight, bias, h0))
    with torch.no_grad():
        y, s = causal_conv1d_fwd(x, weight, bias, "silu", h0, block_t=16)
        grads = causal_conv1d_bwd(x, weight, bias, "silu", h0, dy, ds, block_t=16)
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-4)
    for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads, strict=True):
        assert_close(name, g_ref, g, 1e-4)


@pytest.mark.interpret
def test_causal_conv1d_triton_only_state_or_only_output_used(nan_poisoned_empty):
    # Autograd hands the backward None for an unused output; both cases must still give every gradient.
    x, weight, bias, h0 = make_inputs(1, 9, 4, 4)
    y_ref, s_ref = causal_conv1d_recurrent_ref(x, weight, bias, None, h0)
    y, s = causal_conv1d_chunk(x, weight, bias, None, h0, impl="triton")
    for out_ref, out in ((y_ref, y), (s_ref, s)):
        # The final state does not depend on weight or bias: their gradients are zero.
        kwargs = {"retain_graph": True, "allow_unused": True, "materialize_grads": True}
        grads_ref = torch.autograd.grad(out_ref.sum(), (x, weight, bias, h0), **kwargs)
        grads = torch.autograd.grad(out.sum(), (x, weight, bias, h0), **kwargs)
        for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads, strict=True):
            assert_close(name, g_ref, g, 1e-4, atol=1e-6)


@pytest.mark.interpret
def test_causal_conv1d_triton_pieces_with_state_equal_one_pass():
    x, weight = torch.randn(2, 20, 6), torch.randn(6, 4)
    y_full, s_full = causal_conv1d_chunk(x, weight, None, "silu", impl="triton")
    y1, s1 = causal_conv1d_chunk(x[:, :2], weight, None, "silu", impl="triton")  # shorter than the kernel
    y2, s2 = causal_conv1d_chunk(x[:, 2:], weight, None, "silu", s1, impl="triton")
    assert_close("y", y_full, torch.cat([y1, y2], 1), 1e-6)
    assert_close("state", s_full, s2, 1e-6)


def test_causal_conv1d_auto_on_cpu_takes_the_torch_path(monkeypatch):
    def no_triton(*args, **kwargs):
        raise AssertionError("impl='auto' on CPU tensors must not run the Triton kernel")

    monkeypatch.setitem(ops._IMPLS, "triton", no_triton)
    x, weight = torch.randn(1, 5, 3), torch.randn(3, 4)
    y, s = causal_conv1d_chunk(x, weight, None, "silu")
    y_ref, s_ref = causal_conv1d_recurrent_ref(x, weight, None, "silu")
    assert_close("y", y_ref, y, 1e-5)
    assert_close("state", s_ref, s, 1e-5)
