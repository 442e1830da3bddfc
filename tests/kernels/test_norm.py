"""RMSNorm with a fused residual add: the spec's own contract, and the Triton kernel against it
under TRITON_INTERPRET=1 on CPU (tier ``interpret``) at tiny shapes."""

import pytest
import torch

from zoo.kernels.norm import ops, rms_norm, rms_norm_ref
from zoo.testing import assert_close

GRAD_NAMES = ("dx", "dweight", "dresidual")

# (B, T, D): odd T, D below / at / between powers of two
SHAPES = [(1, 1, 8), (2, 7, 5), (2, 33, 64), (1, 65, 48)]


def make_inputs(B, T, D, residual=True, dtype=torch.float32):
    """``[x, weight, residual | None]``, leaves that require grad."""
    inputs = [
        torch.randn(B, T, D, dtype=dtype),
        1.0 + 0.1 * torch.randn(D, dtype=dtype),
        torch.randn(B, T, D, dtype=dtype) if residual else None,
    ]
    return [None if u is None else u.requires_grad_() for u in inputs]


def _run_and_grad(fn, inputs, residual_in_fp32, dy, dr, **kwargs):
    """``(y, new_residual, grads of <y, dy> + <new_residual, dr> w.r.t. every tensor input)``."""
    x, weight, residual = inputs
    y, r = fn(x, weight, residual, 1e-5, residual_in_fp32, **kwargs)
    tensors = [u for u in inputs if u is not None]
    grads = torch.autograd.grad((y.float() * dy).sum() + (r.float() * dr).sum(), tensors)
    return y, r, grads


def _assert_matches(inputs, residual_in_fp32, rtol):
    x = inputs[0]
    dy, dr = torch.randn(x.shape), torch.randn(x.shape)
    y_ref, r_ref, grads_ref = _run_and_grad(rms_norm_ref, inputs, residual_in_fp32, dy, dr)
    y, r, grads = _run_and_grad(rms_norm, inputs, residual_in_fp32, dy, dr, impl="triton")
    assert y.dtype == x.dtype and r.dtype == (torch.float32 if residual_in_fp32 else x.dtype)
    assert_close("y", y_ref.float(), y.float(), rtol)
    assert_close("new_residual", r_ref.float(), r.float(), rtol)
    names = [n for n, u in zip(GRAD_NAMES, inputs) if u is not None]
    for name, g_ref, g in zip(names, grads_ref, grads, strict=True):
        assert g.dtype == g_ref.dtype, name
        assert_close(name, g_ref.float(), g.float(), rtol)


def test_rms_norm_ref_is_the_formula():
    x, weight, residual = torch.randn(2, 3, 8), torch.randn(8), torch.randn(2, 3, 8)
    y, r = rms_norm_ref(x, weight, residual, eps=1e-6)
    s = x + residual
    assert_close("new_residual", s, r, 1e-7)
    assert_close("y", s / (s.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * weight, y, 1e-6)
    assert r.dtype == torch.float32


def test_rms_norm_ref_dtypes():
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    y, r = rms_norm_ref(x, torch.ones(8), torch.randn(4, 8, dtype=torch.bfloat16), residual_in_fp32=False)
    assert y.dtype == torch.bfloat16 and r.dtype == torch.bfloat16
    assert rms_norm_ref(x, torch.ones(8))[1].dtype == torch.float32


@pytest.mark.interpret
@pytest.mark.parametrize("residual_in_fp32", [True, False], ids=["res-fp32", "res-xdtype"])
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "no-residual"])
@pytest.mark.parametrize(("B", "T", "D"), SHAPES, ids=[f"B{b}-T{t}-D{d}-float32" for b, t, d in SHAPES])
def test_rms_norm_triton_matches_reference(B, T, D, residual, residual_in_fp32, nan_poisoned_empty):
    _assert_matches(make_inputs(B, T, D, residual), residual_in_fp32, 1e-4)


@pytest.mark.interpret
@pytest.mark.parametrize("residual_in_fp32", [True, False], ids=["res-fp32", "res-xdtype"])
def test_rms_norm_triton_bfloat16(residual_in_fp32, nan_poisoned_empty):
    _assert_matches(make_inputs(2, 33, 48, dtype=torch.bfloat16), residual_in_fp32, 1e-2)


@pytest.mark.interpret
def test_rms_norm_triton_gradient_into_one_output_only(nan_poisoned_empty):
    # Autograd hands the backward None for an unused output: y alone (last block) or new_residual alone.
    x, weight, residual = make_inputs(2, 7, 16)
    outs_ref = rms_norm_ref(x, weight, residual)
    outs = rms_norm(x, weight, residual, impl="triton")
    kwargs = {"retain_graph": True, "allow_unused": True, "materialize_grads": True}
    for out_ref, out in zip(outs_ref, outs):
        grads_ref = torch.autograd.grad(out_ref.sum(), (x, weight, residual), **kwargs)
        grads = torch.autograd.grad(out.sum(), (x, weight, residual), **kwargs)
        for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads, strict=True):
            assert_close(name, g_ref, g, 1e-4, atol=1e-6)


@pytest.mark.interpret
def test_rms_norm_triton_strided_rows(nan_poisoned_empty):
    # A column slice of a wider tensor: rows are strided, the last dim is not.
    wide = torch.randn(2, 9, 40)
    x = wide[..., :24].requires_grad_()
    _assert_matches([x, *make_inputs(2, 9, 24)[1:]], True, 1e-4)


def test_rms_norm_auto_on_cpu_takes_the_torch_path(monkeypatch):
    def no_triton(*args, **kwargs):
        raise AssertionError("impl='auto' on CPU tensors must not run the Triton kernel")

    monkeypatch.setitem(ops._IMPLS, "triton", no_triton)
    x, weight, residual = torch.randn(3, 8), torch.randn(8), torch.randn(3, 8)
    y, r = rms_norm(x, weight, residual)
    y_ref, r_ref = rms_norm_ref(x, weight, residual)
    assert_close("y", y_ref, y, 1e-7)
    assert_close("new_residual", r_ref, r, 1e-7)


def test_rms_norm_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"weight must have shape \[D\]"):
        rms_norm(torch.randn(2, 8), torch.randn(7))
    with pytest.raises(ValueError, match="residual must have the shape of x"):
        rms_norm(torch.randn(2, 8), torch.randn(8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="impl='cuda'"):
        rms_norm(torch.randn(2, 8), torch.randn(8), impl="cuda")


@pytest.mark.parametrize("residual", [True, False], ids=["residual", "no-residual"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_torch_path_matches_the_spec(residual, dtype):
    x, weight, res = make_inputs(2, 33, 48, residual=residual, dtype=dtype)
    y_ref, r_ref = rms_norm_ref(x, weight, res)
    y, r = rms_norm(x, weight, res, impl="torch")
    assert_close("y", y_ref.float(), y.float(), rtol=1e-6 if dtype == torch.float32 else 1e-2)
    assert torch.equal(r, r_ref) and y.dtype == dtype
    leaves, dy = [u for u in (x, weight, res) if u is not None], y_ref.detach().float()
    grads = torch.autograd.grad((y.float() * dy).sum(), leaves)
    grads_ref = torch.autograd.grad((y_ref.float() * dy).sum(), leaves)
    for name, g, g_ref in zip(GRAD_NAMES, grads, grads_ref):
        assert_close(name, g_ref.float(), g.float(), rtol=1e-5 if dtype == torch.float32 else 1e-2)
