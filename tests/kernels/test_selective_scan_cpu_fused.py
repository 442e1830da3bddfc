"""The fused CPU selective scan (cpu_fused.py) against the token-by-token spec: outputs, final state and
every gradient, fp32 at 1e-4 and bf16 at 1e-2 relative RMSE."""

import pytest
import torch

from zoo.kernels.selective_scan import selective_scan_chunk, selective_scan_recurrent_ref
from zoo.kernels.selective_scan.cpu_fused import selective_scan_cpu
from zoo.testing import assert_close

NAMES = ("u", "delta", "A", "Bm", "Cm", "D_skip", "z", "delta_bias", "initial_state")

# (B, T, D, N, chunk_size): T=1, T below / equal to / not a multiple of the chunk, a chunk above the internal
# cap of 16 (so it is split), several chunks
SHAPES = [(1, 1, 3, 2, 4), (2, 7, 5, 3, 4), (2, 33, 8, 4, 8), (3, 16, 6, 16, 16), (2, 65, 4, 5, 64), (1, 40, 3, 2, 1)]
SHAPE_IDS = [f"B{b}-T{t}-D{d}-N{n}-L{c}" for b, t, d, n, c in SHAPES]


def make_inputs(B, T, D, N, dtype=torch.float32, optional=True, h0=True):
    """Inputs in a Mamba layer's regime; the optional ones (D_skip, z, delta_bias) and h0 may be None."""
    u = torch.randn(B, T, D)
    delta = 0.5 * torch.randn(B, T, D)
    A = -torch.exp(torch.randn(D, N))
    Bm, Cm = torch.randn(B, T, N), torch.randn(B, T, N)
    D_skip, z, delta_bias = torch.randn(D), torch.randn(B, T, D), torch.rand(D) * 2 - 3
    tensors = [t.to(dtype) for t in (u, delta, A, Bm, Cm, D_skip, z, delta_bias)]
    if not optional:
        tensors[5:8] = [None, None, None]
    tensors.append(torch.randn(B, D, N) if h0 else None)  # the state stays fp32
    return [None if t is None else t.requires_grad_() for t in tensors]


def call(fn, inputs, delta_softplus=True, **kwargs):
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 = inputs
    return fn(u, delta, A, Bm, Cm, D_skip, z, delta_bias, delta_softplus, h0, **kwargs)


def check_against_spec(inputs, rtol, delta_softplus=True, chunk_size=8, loss_on=("y", "state")):
    """Outputs and the gradient of every input that requires grad, with random upstream gradients."""
    y_ref, s_ref = call(selective_scan_recurrent_ref, inputs, delta_softplus)
    y, s = call(selective_scan_cpu, inputs, delta_softplus, chunk_size=chunk_size)
    assert y.dtype == inputs[0].dtype and s.dtype == torch.float32
    assert_close("y", y_ref.float(), y.float(), rtol)
    assert_close("final_state", s_ref, s, rtol)
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    loss_ref = sum((o * w).sum() for o, w, k in ((y_ref, dy, "y"), (s_ref, ds, "state")) if k in loss_on)
    loss = sum((o * w).sum() for o, w, k in ((y, dy, "y"), (s, ds, "state")) if k in loss_on)
    used = [(name, t) for name, t in zip(NAMES, inputs) if t is not None and t.requires_grad]
    grads_ref = torch.autograd.grad(loss_ref, [t for _, t in used], allow_unused=True)
    grads = torch.autograd.grad(loss, [t for _, t in used], allow_unused=True)
    for (name, t), g_ref, g in zip(used, grads_ref, grads):
        if g_ref is None:  # e.g. the final state depends on neither C, D_skip nor z
            assert g is None or not g.any(), name
            continue
        assert g is not None and g.dtype == t.dtype, name
        assert_close(f"d{name}", g_ref.float(), g.float(), rtol)


@pytest.mark.parametrize(("B", "T", "D", "N", "L"), SHAPES, ids=SHAPE_IDS)
def test_cpu_scan_matches_spec(B, T, D, N, L, nan_poisoned_empty):
    check_against_spec(make_inputs(B, T, D, N), 1e-4, chunk_size=L)


@pytest.mark.parametrize("delta_softplus", [False, True])
@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("h0", [False, True])
def test_cpu_scan_optional_inputs(delta_softplus, optional, h0, nan_poisoned_empty):
    inputs = make_inputs(2, 21, 6, 4, optional=optional, h0=h0)
    if not delta_softplus:  # a raw time step (delta + delta_bias) must be positive
        for i in (1, 7):
            if inputs[i] is not None:
                inputs[i] = (0.1 * inputs[i].detach().abs()).requires_grad_()
    check_against_spec(inputs, 1e-4, delta_softplus=delta_softplus)


@pytest.mark.parametrize("loss_on", [("y",), ("state",)])
def test_cpu_scan_grads_of_one_output(loss_on, nan_poisoned_empty):
    """Only y or only the final state in the loss: the unused output's gradient arrives as None."""
    check_against_spec(make_inputs(2, 37, 5, 3), 1e-4, loss_on=loss_on)


def test_cpu_scan_bf16(nan_poisoned_empty):
    check_against_spec(make_inputs(2, 29, 8, 4, dtype=torch.bfloat16), 1e-2)


def test_cpu_scan_some_inputs_require_grad():
    """Gradients only for what requires grad (here u and A), still exact."""
    inputs = [t.detach() for t in make_inputs(2, 19, 4, 3)]
    inputs[0].requires_grad_()
    inputs[2].requires_grad_()
    check_against_spec(inputs, 1e-4)


def test_cpu_scan_pieces_with_state_equal_one_pass():
    inputs = [t.detach() for t in make_inputs(2, 30, 5, 4)]
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 = inputs
    y, s = call(selective_scan_cpu, inputs, chunk_size=4)
    y1, s1 = selective_scan_cpu(u[:, :11], delta[:, :11], A, Bm[:, :11], Cm[:, :11], D_skip, z[:, :11],
                                delta_bias, True, h0, chunk_size=4)  # fmt: skip
    y2, s2 = selective_scan_cpu(u[:, 11:], delta[:, 11:], A, Bm[:, 11:], Cm[:, 11:], D_skip, z[:, 11:],
                                delta_bias, True, s1, chunk_size=4)  # fmt: skip
    assert_close("y", y, torch.cat([y1, y2], dim=1), 1e-6)
    assert_close("final_state", s, s2, 1e-6)


def test_cpu_scan_no_grad_equals_training_forward():
    inputs = make_inputs(2, 26, 6, 4)
    y, s = call(selective_scan_cpu, inputs)
    with torch.no_grad():
        y0, s0 = call(selective_scan_cpu, inputs)
    assert y.grad_fn is not None and y0.grad_fn is None
    assert torch.equal(y, y0) and torch.equal(s, s0)


def test_cpu_scan_leaves_inputs_and_upstream_gradient_untouched():
    """B=1 and T=1 make the internal time-major copies no-op transposes: nothing may be updated in place."""
    for B, T in ((1, 9), (3, 1)):
        inputs = make_inputs(B, T, 4, 3)
        before = [t.detach().clone() for t in inputs]
        y, s = call(selective_scan_cpu, inputs)
        dy = torch.randn_like(y)
        dy_before = dy.clone()
        torch.autograd.grad((y * dy).sum() + s.sum(), inputs)
        assert torch.equal(dy, dy_before)
        for name, t, t0 in zip(NAMES, inputs, before):
            assert torch.equal(t.detach(), t0), name


def test_cpu_scan_strided_inputs():
    """u and delta channels-first in memory (a convolution's output), z and Bm as slices of a projection."""
    inputs = make_inputs(2, 17, 6, 4)
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 = [t.detach() for t in inputs]
    u_s = u.transpose(1, 2).contiguous().transpose(1, 2)
    proj = torch.cat([z, Bm], dim=-1)
    args = (delta.transpose(1, 2).contiguous().transpose(1, 2), A, proj[..., 6:], Cm, D_skip, proj[..., :6])
    y_ref, s_ref = selective_scan_recurrent_ref(u, delta, A, Bm, Cm, D_skip, z, delta_bias, True, h0)
    y, s = selective_scan_cpu(u_s, *args, delta_bias, True, h0, chunk_size=4)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)


def test_dispatch_cpu_and_auto():
    """impl="cpu" is this path; "auto" takes it for CPU tensors (with and without grad); "torch" stays the
    chunked form."""
    inputs = make_inputs(2, 12, 4, 3)
    y, s = call(selective_scan_chunk, inputs, chunk_size=4, impl="cpu")
    assert type(y.grad_fn).__name__ == "_SelectiveScanCPUBackward"
    y_auto, _ = call(selective_scan_chunk, inputs, chunk_size=4)
    assert type(y_auto.grad_fn).__name__ == "_SelectiveScanCPUBackward"
    y_torch, _ = call(selective_scan_chunk, inputs, chunk_size=4, impl="torch")
    assert type(y_torch.grad_fn).__name__ != "_SelectiveScanCPUBackward"
    assert_close("y", y_torch, y, 1e-5)
    with torch.no_grad():
        y_ng, s_ng = call(selective_scan_chunk, inputs, chunk_size=4)
    assert torch.equal(y_ng, y) and torch.equal(s_ng, s)


def test_cpu_scan_rejects_bad_input():
    u, delta, A, Bm, Cm = torch.randn(2, 5, 3), torch.rand(2, 5, 3), -torch.rand(3, 4), torch.randn(2, 5, 4), None
    with pytest.raises(ValueError, match="Cm must have shape"):
        selective_scan_cpu(u, delta, A, Bm, torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan_cpu(u, delta, A, Bm, Bm, chunk_size=0)
    with pytest.raises(ValueError, match="T >= 1"):
        selective_scan_cpu(u[:, :0], delta[:, :0], A, Bm[:, :0], Bm[:, :0])
    del Cm


def test_dispatch_cpu_rejects_other_devices():
    u, delta, A, Bm = (torch.empty(s, device="meta") for s in ((2, 5, 3), (2, 5, 3), (3, 4), (2, 5, 4)))
    with pytest.raises(ValueError, match="impl='cpu' needs CPU tensors"):
        selective_scan_chunk(u, delta, A, Bm, Bm, impl="cpu")
