import pytest
import torch

from zoo.kernels.slstm import slstm_chunk, slstm_chunk_ref, slstm_recurrent_ref, slstm_step
from zoo.testing import assert_close

SHAPES = [(1, 1, 1, 4), (2, 17, 3, 4), (1, 63, 2, 8), (3, 32, 4, 5)]
IDS = [f"B{b}-T{t}-H{h}-D{d}" for b, t, h, d in SHAPES]


def make_inputs(B, T, H, D, scale_r=0.5):
    gates_x = torch.randn(B, T, 4, H, D)
    R = scale_r * torch.randn(H, D, 4, D) / D**0.5
    bias = torch.randn(4, H, D)
    return gates_x, R, bias


def make_state(B, H, D):
    # a state that a run could have produced: n > 0, |c| <= n
    n = torch.rand(B, H, D) + 0.5
    return (torch.randn(B, H, D).tanh(), n * (2 * torch.rand(B, H, D) - 1), n, torch.randn(B, H, D))


def run_with_grads(fn, inputs, dy, ds):
    y, s = fn(*inputs)
    loss = (y * dy).sum() + sum((a * b).sum() for a, b in zip(s, ds))
    grads = torch.autograd.grad(loss, [inputs[0], inputs[1], inputs[2], *inputs[3]])
    return y, s, grads


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "carried-state"])
@pytest.mark.parametrize(("B", "T", "H", "D"), SHAPES, ids=IDS)
def test_slstm_chunk_matches_recurrent(B, T, H, D, with_state, nan_poisoned_empty):
    gates_x, R, bias = (t.requires_grad_() for t in make_inputs(B, T, H, D))
    state = make_state(B, H, D) if with_state else tuple(torch.zeros(B, H, D) for _ in range(4))
    state = tuple(s.requires_grad_() for s in state)
    dy = torch.randn(B, T, H, D)
    ds = [torch.randn(B, H, D) for _ in range(4)]
    y_ref, s_ref, g_ref = run_with_grads(slstm_recurrent_ref, (gates_x, R, bias, state), dy, ds)
    y, s, g = run_with_grads(slstm_chunk, (gates_x, R, bias, state), dy, ds)
    assert_close("h_seq", y_ref, y, 1e-5)
    for name, a, b in zip("hcnm", s_ref, s):
        assert_close(f"final {name}", a, b, 1e-5)
    names = ("dgates_x", "dR", "dbias", "dh0", "dc0", "dn0", "dm0")
    for name, a, b in zip(names, g_ref, g):
        assert_close(name, a, b, 1e-5)


def test_slstm_no_state_is_the_zero_state():
    gates_x, R, bias = make_inputs(2, 9, 2, 4)
    zeros = tuple(torch.zeros(2, 2, 4) for _ in range(4))
    for fn in (slstm_recurrent_ref, slstm_chunk_ref):
        y0, s0 = fn(gates_x, R, bias)
        y1, s1 = fn(gates_x, R, bias, zeros)
        assert torch.equal(y0, y1)
        assert all(torch.equal(a, b) for a, b in zip(s0, s1))
    # the first step of an empty state sets m = raw_i, so i = 1, n = 1
    _, (_, _, n, m) = slstm_chunk(gates_x[:, :1], R, bias)
    assert_close("m", gates_x[:, 0, 0] + bias[0], m, 1e-6)
    assert_close("n", torch.ones_like(n), n, 1e-6)


def test_slstm_pieces_with_state_equal_one_pass():
    gates_x, R, bias = make_inputs(2, 40, 3, 4)
    y_full, s_full = slstm_chunk(gates_x, R, bias)
    y1, s1 = slstm_chunk(gates_x[:, :1], R, bias)
    y2, s2 = slstm_chunk(gates_x[:, 1:23], R, bias, s1)
    y3, s3 = slstm_chunk(gates_x[:, 23:], R, bias, s2)
    assert_close("h_seq", y_full, torch.cat([y1, y2, y3], 1), 1e-6)
    for name, a, b in zip("hcnm", s_full, s3):
        assert_close(f"final {name}", a, b, 1e-6)


def test_slstm_step_matches_chunk():
    gates_x, R, bias = make_inputs(2, 11, 2, 4)
    y_full, s_full = slstm_chunk(gates_x, R, bias)
    state = tuple(torch.zeros(2, 2, 4) for _ in range(4))
    ys = []
    for t in range(11):
        y_t, state = slstm_step(gates_x[:, t], R, bias, state)
        ys.append(y_t)
    assert_close("h_seq", y_full, torch.stack(ys, 1), 1e-6)
    for name, a, b in zip("hcnm", s_full, state):
        assert_close(f"final {name}", a, b, 1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_slstm_low_precision_inputs_recur_in_fp32(dtype):
    gates_x, R, bias = make_inputs(1, 12, 2, 4)
    y32, s32 = slstm_chunk(gates_x.to(dtype).float(), R.to(dtype).float(), bias.to(dtype).float())
    y, s = slstm_chunk(gates_x.to(dtype), R.to(dtype), bias.to(dtype))
    assert y.dtype == dtype
    assert all(t.dtype == torch.float32 for t in s)
    assert_close("h_seq", y32.to(dtype), y, 1e-6)
    assert_close("final c", s32[1], s[1], 1e-6)


def test_slstm_rejects_bad_shapes():
    gates_x, R, bias = make_inputs(1, 5, 2, 4)
    with pytest.raises(ValueError, match=r"gates_x must have shape \[B,T,4,H,D\]"):
        slstm_chunk(gates_x.flatten(2), R, bias)
    with pytest.raises(ValueError, match=r"R must have shape \[H,D,4,D\]"):
        slstm_chunk(gates_x, R[:, :, :3], bias)
    with pytest.raises(ValueError, match=r"bias must have shape \[4,H,D\]"):
        slstm_chunk(gates_x, R, bias.transpose(0, 1))
    with pytest.raises(ValueError, match=r"state n must have shape \[B,H,D\]"):
        bad = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), torch.zeros(2, 2, 4), torch.zeros(1, 2, 4))
        slstm_chunk(gates_x, R, bias, bad)
    with pytest.raises(ValueError, match=r"\(h, c, n, m\)"):
        slstm_chunk(gates_x, R, bias, (torch.zeros(1, 2, 4),) * 2)
    with pytest.raises(ValueError, match="T=0"):
        slstm_chunk(gates_x[:, :0], R, bias)
    with pytest.raises(ValueError, match=r"gates_x_t must have shape \[B,4,H,D\]"):
        slstm_step(gates_x, R, bias, tuple(torch.zeros(1, 2, 4) for _ in range(4)))
    with pytest.raises(ValueError, match="impl='cuda'"):
        slstm_chunk(gates_x, R, bias, impl="cuda")
