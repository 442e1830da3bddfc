"""The Triton sLSTM (sequence kernel, decode step) against the spec, under TRITON_INTERPRET=1 on CPU, tiny shapes."""

import pytest
import torch

from zoo.kernels.slstm import ops, slstm_chunk, slstm_recurrent_ref, slstm_step
from zoo.testing import assert_close

pytestmark = pytest.mark.interpret
pytest.importorskip("triton")

GRAD_NAMES = ("dgates_x", "dR", "dbias", "dh0", "dc0", "dn0", "dm0")

# (B, T, H, D): T = 1 and odd lengths; H = 1 and 2; D = 16 and 32, D = 20 (padded to 32 inside the kernel);
# B = 17 spans two batch blocks of 16
SHAPES = [(1, 1, 2, 16), (2, 7, 2, 16), (1, 33, 1, 32), (3, 7, 2, 20), (17, 7, 1, 16)]


def make_inputs(B, T, H, D, dtype=torch.float32, scale_x=1.0):
    """``(gates_x, R, bias)`` leaves that require grad."""
    gates_x = scale_x * torch.randn(B, T, 4, H, D)
    R = 0.5 * torch.randn(H, D, 4, D) / D**0.5
    bias = torch.randn(4, H, D)
    return tuple(t.to(dtype).requires_grad_() for t in (gates_x, R, bias))


def make_state(B, H, D, dtype=torch.float32):
    """A state a run could have produced (``n > 0``, ``|c| <= n``), leaves that require grad."""
    n = torch.rand(B, H, D) + 0.5
    state = (torch.randn(B, H, D).tanh(), n * (2 * torch.rand(B, H, D) - 1), n, torch.randn(B, H, D))
    return tuple(s.to(dtype).requires_grad_() for s in state)


def _run_and_grad(fn, gates_x, R, bias, state, dy, ds):
    """``(h_seq, final_state, grads of <h_seq, dy> + <final_state, ds> w.r.t. every tensor input)``."""
    y, final = fn(gates_x, R, bias, state)
    loss = (y.float() * dy).sum() + sum((s * d).sum() for s, d in zip(final, ds))
    inputs = [gates_x, R, bias, *(state or ())]
    return y, final, torch.autograd.grad(loss, inputs)


def _triton(gates_x, R, bias, state):
    return slstm_chunk(gates_x, R, bias, state, impl="triton")


def _assert_matches(gates_x, R, bias, state, rtol):
    B, T, _, H, D = gates_x.shape
    dy, ds = torch.randn(B, T, H, D), [torch.randn(B, H, D) for _ in range(4)]
    y_ref, s_ref, g_ref = _run_and_grad(slstm_recurrent_ref, gates_x, R, bias, state, dy, ds)
    y, s, g = _run_and_grad(_triton, gates_x, R, bias, state, dy, ds)
    assert y.dtype == gates_x.dtype and all(t.dtype == torch.float32 for t in s)
    assert_close("h_seq", y_ref.float(), y.float(), rtol)
    for name, a, b in zip("hcnm", s_ref, s, strict=True):
        assert_close(f"final {name}", a, b, rtol)
    for name, a, b in zip(GRAD_NAMES, g_ref, g):
        assert b.dtype == a.dtype, name
        assert_close(name, a.float(), b.float(), rtol)


@pytest.mark.parametrize("with_state", [False, True], ids=["no-state", "initial-state"])
@pytest.mark.parametrize(("B", "T", "H", "D"), SHAPES, ids=[f"B{b}-T{t}-H{h}-D{d}" for b, t, h, d in SHAPES])
def test_slstm_triton_matches_recurrent(B, T, H, D, with_state, nan_poisoned_empty):
    state = make_state(B, H, D) if with_state else None
    _assert_matches(*make_inputs(B, T, H, D), state, 1e-4)


def test_slstm_triton_zero_initial_state_takes_the_empty_branch(nan_poisoned_empty):
    # an explicit all-zero state (n = 0) must give the same gradients as None, including d state;
    # D = 5 is padded to 16 channels inside the kernel
    B, H, D = 2, 2, 5
    state = tuple(torch.zeros(B, H, D, requires_grad=True) for _ in range(4))
    _assert_matches(*make_inputs(B, 7, H, D), state, 1e-4)


def test_slstm_triton_large_preactivations(nan_poisoned_empty):
    # |raw| ~ 30: exp(raw_i) overflows fp32 without the stabiliser m; sigmoid / tanh saturate
    gates_x, R, bias = make_inputs(2, 33, 2, 16, scale_x=30.0)
    _assert_matches(gates_x, R, bias, make_state(2, 2, 16), 1e-4)


def test_slstm_triton_head_dim_64(nan_poisoned_empty):
    _assert_matches(*make_inputs(1, 5, 1, 64), make_state(1, 1, 64), 1e-4)


def test_slstm_triton_bfloat16(nan_poisoned_empty):
    # recurrence and accumulation are fp32 in both paths; only the bf16 rounding of h_seq and the grads differs
    B, H, D = 2, 2, 16
    _assert_matches(*make_inputs(B, 33, H, D, dtype=torch.bfloat16), make_state(B, H, D), 1e-2)


def test_slstm_triton_only_state_or_only_output_used(nan_poisoned_empty):
    # autograd hands zeros for the unused outputs; every gradient must still match
    gates_x, R, bias = make_inputs(2, 7, 2, 16)
    state = make_state(2, 2, 16)
    inputs = [gates_x, R, bias, *state]
    y_ref, s_ref = slstm_recurrent_ref(gates_x, R, bias, state)
    y, s = slstm_chunk(gates_x, R, bias, state, impl="triton")
    for out_ref, out in ((y_ref.sum(), y.sum()), (s_ref[1].sum() + s_ref[3].sum(), s[1].sum() + s[3].sum())):
        g_ref = torch.autograd.grad(out_ref, inputs, retain_graph=True)
        g = torch.autograd.grad(out, inputs, retain_graph=True)
        for name, a, b in zip(GRAD_NAMES, g_ref, g, strict=True):
            assert_close(name, a, b, 1e-4, atol=1e-6)


def test_slstm_triton_pieces_with_state_equal_one_pass(nan_poisoned_empty):
    with torch.no_grad():
        gates_x, R, bias = make_inputs(2, 20, 2, 16)
        y_full, s_full = slstm_chunk(gates_x, R, bias, impl="triton")
        y1, s1 = slstm_chunk(gates_x[:, :1], R, bias, impl="triton")
        y2, s2 = slstm_chunk(gates_x[:, 1:9], R, bias, s1, impl="triton")
        y3, s3 = slstm_chunk(gates_x[:, 9:], R, bias, s2, impl="triton")
    assert_close("h_seq", y_full, torch.cat([y1, y2, y3], 1), 1e-6)
    for name, a, b in zip("hcnm", s_full, s3, strict=True):
        assert_close(f"final {name}", a, b, 1e-6)


def test_slstm_triton_rejects_large_head_dim_and_auto_falls_back(monkeypatch):
    gates_x, R, bias = make_inputs(1, 2, 1, 80)
    with pytest.raises(ValueError, match=r"D <= 64"):
        slstm_chunk(gates_x, R, bias, impl="triton")
    with pytest.raises(ValueError, match=r"R must have shape"):
        slstm_chunk(gates_x, R[:, :, :3], bias, impl="triton")

    def no_triton(*args, **kwargs):
        raise AssertionError("impl='auto' on CPU tensors must not run the Triton kernel")

    monkeypatch.setitem(ops._IMPLS, "triton", no_triton)
    monkeypatch.setitem(ops._STEP_IMPLS, "triton", no_triton)
    y, _ = slstm_chunk(gates_x, R, bias)
    y_ref, _ = slstm_recurrent_ref(gates_x, R, bias)
    assert_close("h_seq", y_ref, y, 1e-5)
    state = make_state(1, 1, 80)
    slstm_step(gates_x[:, 0], R, bias, state)


# ---------------------------------------------------------------- decode step

STEP_SHAPES = [(1, 1, 16), (3, 2, 20), (2, 1, 80), (17, 2, 32)]  # D = 80: two input blocks, three output tiles


def _strided(t: torch.Tensor) -> torch.Tensor:
    """The same values as a non-contiguous view (a slice of a wider tensor, as a projection's split gives)."""
    wide = torch.cat([t, torch.full_like(t, float("nan"))], dim=-1)
    return wide[..., : t.shape[-1]]


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize(("B", "H", "D"), STEP_SHAPES, ids=[f"B{b}-H{h}-D{d}" for b, h, d in STEP_SHAPES])
def test_slstm_step_triton_matches_torch_step(B, H, D, strided, nan_poisoned_empty):
    with torch.no_grad():
        gates_x, R, bias = make_inputs(B, 1, H, D, scale_x=3.0)
        gates_x_t = _strided(gates_x[:, 0]) if strided else gates_x[:, 0]
        for state in (make_state(B, H, D), tuple(torch.zeros(B, H, D) for _ in range(4))):
            before = [s.clone() for s in state]
            y_ref, s_ref = slstm_step(gates_x_t, R, bias, state, impl="torch")
            y, s = slstm_step(gates_x_t, R, bias, state, impl="triton")
            assert_close("h_t", y_ref, y, 1e-5)
            for name, a, b in zip("hcnm", s_ref, s, strict=True):
                assert b.dtype == torch.float32
                assert_close(f"new {name}", a, b, 1e-5)
            assert all(torch.equal(a, b) for a, b in zip(before, state)), "the step wrote into its input state"


def test_slstm_step_triton_bfloat16_and_steps_equal_sequence(nan_poisoned_empty):
    with torch.no_grad():
        gates_x, R, bias = make_inputs(2, 5, 2, 16, dtype=torch.bfloat16)
        y_seq, s_seq = slstm_chunk(gates_x, R, bias, impl="triton")
        state = tuple(torch.zeros(2, 2, 16) for _ in range(4))
        ys = []
        for t in range(5):
            y_t, state = slstm_step(gates_x[:, t], R, bias, state, impl="triton")
            ys.append(y_t)
    assert ys[0].dtype == torch.bfloat16
    assert_close("h_seq", y_seq.float(), torch.stack(ys, 1).float(), 1e-2)
    for name, a, b in zip("hcnm", s_seq, state, strict=True):
        assert_close(f"final {name}", a, b, 1e-5)


def test_slstm_step_triton_is_inference_only():
    gates_x, R, bias = make_inputs(1, 1, 1, 16)
    state = make_state(1, 1, 16)
    with pytest.raises(ValueError, match="no backward"):
        slstm_step(gates_x[:, 0], R, bias, state, impl="triton")
    # 'auto' keeps a step with trainable inputs differentiable (the torch step)
    y, _ = slstm_step(gates_x[:, 0], R, bias, state)
    assert y.requires_grad
