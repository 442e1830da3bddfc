import pytest
import torch

from zoo.kernels.selective_scan import (
    selective_scan_chunk,
    selective_scan_chunk_ref,
    selective_scan_recurrent_ref,
    selective_scan_step,
)
from zoo.kernels.selective_scan.cpu_autograd import chunk_recurrence
from zoo.testing import assert_close

# (B, T, D, N, chunk_size): odd lengths, T below / equal to / not a multiple of the chunk
SHAPES = [(1, 1, 3, 2, 4), (2, 17, 8, 4, 8), (3, 63, 5, 16, 16), (2, 130, 16, 8, 32), (1, 64, 4, 3, 64)]
SHAPE_IDS = [f"B{b}-T{t}-D{d}-N{n}-L{c}" for b, t, d, n, c in SHAPES]
GRAD_NAMES = ("du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias", "dh0")


def make_inputs(B, T, D, N, dtype=torch.float32, requires_grad=True):
    """Inputs in the regime of a Mamba layer: dt ~ softplus(delta + bias) in (0.001, 0.1)-ish."""
    u = torch.randn(B, T, D)
    delta = 0.5 * torch.randn(B, T, D)
    A = -torch.exp(torch.randn(D, N))  # the layer's -exp(A_log)
    Bm, Cm = torch.randn(B, T, N), torch.randn(B, T, N)
    D_skip, z = torch.randn(D), torch.randn(B, T, D)
    delta_bias = torch.rand(D) * 2 - 3  # softplus of it: 0.05 .. 0.31
    h0 = torch.randn(B, D, N)
    tensors = [u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0]
    # the state stays fp32 whatever the input dtype
    tensors = [t.to(dtype) if i < 8 else t for i, t in enumerate(tensors)]
    return [t.requires_grad_(requires_grad) for t in tensors]


def run(fn, inputs, **kwargs):
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 = inputs
    return fn(u, delta, A, Bm, Cm, D_skip, z, delta_bias, True, h0, **kwargs)


@pytest.mark.parametrize(("B", "T", "D", "N", "L"), SHAPES, ids=SHAPE_IDS)
def test_selective_scan_chunk_matches_recurrent(B, T, D, N, L, nan_poisoned_empty):
    inputs = make_inputs(B, T, D, N)
    y_ref, s_ref = run(selective_scan_recurrent_ref, inputs)
    y, s = run(selective_scan_chunk, inputs, chunk_size=L)
    assert y.dtype == torch.float32 and s.dtype == torch.float32
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), inputs)
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), inputs)
    for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


@pytest.mark.parametrize("delta_softplus", [False, True])
def test_selective_scan_optional_inputs(delta_softplus):
    """Without D_skip, z, delta_bias and initial state (and with a raw positive delta)."""
    u, Bm, Cm = torch.randn(2, 37, 6), torch.randn(2, 37, 5), torch.randn(2, 37, 5)
    delta, A = torch.rand(2, 37, 6), -torch.rand(6, 5)
    y_ref, s_ref = selective_scan_recurrent_ref(u, delta, A, Bm, Cm, delta_softplus=delta_softplus)
    y, s = selective_scan_chunk(u, delta, A, Bm, Cm, delta_softplus=delta_softplus, chunk_size=8)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)


def test_selective_scan_large_decay_stays_finite():
    """dt * |A| summed over a chunk far beyond exp's fp32 range (~88) must not overflow."""
    inputs = make_inputs(1, 40, 4, 3, requires_grad=False)
    inputs[1] = inputs[1] + 6.0  # dt ~ 6 per step, |A| up to ~20: a chunk spans exponents of ~1e4
    y_ref, s_ref = run(selective_scan_recurrent_ref, inputs)
    y, s = run(selective_scan_chunk, inputs, chunk_size=40)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)


def test_selective_scan_pieces_with_state_equal_one_pass():
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, _ = make_inputs(2, 50, 6, 4, requires_grad=False)

    def part(lo, hi, state):
        s = slice(lo, hi)
        return selective_scan_chunk(
            u[:, s],
            delta[:, s],
            A,
            Bm[:, s],
            Cm[:, s],
            D_skip,
            z[:, s],
            delta_bias,
            True,
            state,
            chunk_size=8,
        )

    y_full, s_full = part(0, 50, None)
    y1, s1 = part(0, 1, None)
    y2, s2 = part(1, 31, s1)
    y3, s3 = part(31, 50, s2)
    assert_close("y", y_full, torch.cat([y1, y2, y3], 1), 1e-6)
    assert_close("state", s_full, s3, 1e-6)


def test_selective_scan_step_matches_chunk():
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 = make_inputs(2, 19, 6, 4, requires_grad=False)
    y_full, s_full = selective_scan_chunk(u, delta, A, Bm, Cm, D_skip, z, delta_bias, True, h0, chunk_size=8)
    state, ys = h0, []
    for t in range(u.shape[1]):
        y_t, state = selective_scan_step(
            u[:, t], delta[:, t], A, Bm[:, t], Cm[:, t], D_skip, z[:, t], delta_bias, True, state
        )
        ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-6)
    assert_close("state", s_full, state, 1e-6)


def test_selective_scan_bf16_inputs():
    """bf16 in, bf16 out, fp32 state; the recurrence itself runs in fp32."""
    inputs = make_inputs(2, 45, 8, 4, dtype=torch.bfloat16, requires_grad=False)
    y, s = run(selective_scan_chunk, inputs, chunk_size=16)
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32
    y_ref, s_ref = run(selective_scan_recurrent_ref, [t.float() for t in inputs])
    assert_close("y", y_ref, y, 1e-2)
    assert_close("final_state", s_ref, s, 1e-5)
    y_ref_bf16, _ = run(selective_scan_recurrent_ref, inputs)
    assert_close("y vs bf16 reference", y_ref_bf16, y, 1e-2)


def test_selective_scan_chunk_ref_is_the_torch_impl():
    inputs = make_inputs(1, 9, 3, 2, requires_grad=False)
    y, s = run(selective_scan_chunk, inputs, impl="torch", chunk_size=4)
    y_ref, s_ref = run(selective_scan_chunk_ref, inputs, chunk_size=4)
    assert torch.equal(y, y_ref) and torch.equal(s, s_ref)


def test_selective_scan_rejects_bad_shapes():
    u, delta, A, Bm, Cm = (
        torch.randn(1, 4, 3),
        torch.randn(1, 4, 3),
        torch.randn(3, 2),
        torch.randn(1, 4, 2),
        torch.randn(1, 4, 2),
    )
    with pytest.raises(ValueError, match=r"u must have shape \[B,T,D\]"):
        selective_scan_chunk(u[0], delta, A, Bm, Cm)
    with pytest.raises(ValueError, match=r"delta must have shape \[B,T,D\] = \(1, 4, 3\), got \(1, 5, 3\)"):
        selective_scan_chunk(u, torch.randn(1, 5, 3), A, Bm, Cm)
    with pytest.raises(ValueError, match=r"A must have shape \[D,N\]"):
        selective_scan_chunk(u, delta, torch.randn(4, 2), Bm, Cm)
    with pytest.raises(ValueError, match=r"Cm must have shape \[B,T,N\]"):
        selective_scan_chunk(u, delta, A, Bm, torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match=r"z must have shape \[B,T,D\]"):
        selective_scan_chunk(u, delta, A, Bm, Cm, z=torch.randn(1, 4, 2))
    with pytest.raises(ValueError, match=r"initial_state must have shape \[B,D,N\]"):
        selective_scan_chunk(u, delta, A, Bm, Cm, initial_state=torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match=r"at least one token"):
        selective_scan_chunk(u[:, :0], delta[:, :0], A, Bm[:, :0], Cm[:, :0])
    with pytest.raises(ValueError, match="chunk_size=0"):
        selective_scan_chunk(u, delta, A, Bm, Cm, chunk_size=0)
    with pytest.raises(ValueError, match="impl='cuda'"):
        selective_scan_chunk(u, delta, A, Bm, Cm, impl="cuda")
    with pytest.raises(ValueError, match=r"state must have shape \[B,D,N\]"):
        selective_scan_step(u[:, 0], delta[:, 0], A, Bm[:, 0], Cm[:, 0], None, None, None, False, torch.zeros(1, 3, 3))


def test_selective_scan_no_grad_path_matches_autograd_path():
    """Without autograd the chunked form accumulates its states in place; it must agree exactly."""
    inputs = make_inputs(2, 70, 6, 4)
    y_grad, s_grad = run(selective_scan_chunk, inputs, chunk_size=16)
    with torch.no_grad():
        y, s = run(selective_scan_chunk, inputs, chunk_size=16)
    assert_close("y", y_grad, y, 1e-6)
    assert_close("final_state", s_grad, s, 1e-6)


# --- the chunk recurrence's autograd Function (cpu_autograd.py), the torch form's training path ---


def _recurrence_inputs(B, L, N, D, dtype=torch.float64):
    """Decays in (0.2, 1) as exp(dt A) gives them; inputs and initial state of either sign."""
    decay = (0.2 + 0.8 * torch.rand(B, L, N, D, dtype=dtype)).requires_grad_()
    inp = torch.randn(B, L, N, D, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, N, D, dtype=dtype, requires_grad=True)
    return decay, inp, h0


def _two_chunks(decay, inp, h0):
    """Two chunks chained through the carried state, as the chunked form runs them; ``inp`` is cloned
    because the Function overwrites it in place (it must be a temporary, never a leaf)."""
    s1, h1 = chunk_recurrence(decay[:, :3], inp[:, :3].clone(), h0)
    s2, h2 = chunk_recurrence(decay[:, 3:], inp[:, 3:].clone(), h1)
    return s1, s2, h2


def test_chunk_recurrence_gradcheck():
    """float64 gradcheck of every input (initial state included) across a chunk boundary."""
    inputs = _recurrence_inputs(2, 5, 2, 3)
    assert torch.autograd.gradcheck(_two_chunks, inputs)


@pytest.mark.parametrize("used", ["states", "final_state"])
def test_chunk_recurrence_gradcheck_one_output_used(used):
    """An unused output's gradient arrives as None (not zeros): both backward branches must be right."""
    inputs = _recurrence_inputs(1, 4, 2, 3)

    def fn(decay, inp, h0):
        states, h_last = chunk_recurrence(decay, inp.clone(), h0)
        return states if used == "states" else h_last

    assert torch.autograd.gradcheck(fn, inputs)


def test_chunk_recurrence_matches_autograd_loop(nan_poisoned_empty):
    """fp32: states, final state and gradients equal those of the plain per-token autograd loop."""
    decay, inp, h0 = (t.detach().float().requires_grad_() for t in _recurrence_inputs(2, 9, 4, 5))
    h, hs = h0, []
    for t in range(decay.shape[1]):
        h = torch.addcmul(inp[:, t], decay[:, t], h)
        hs.append(h)
    states_ref = torch.stack(hs, 1)
    states, h_last = chunk_recurrence(decay, inp.clone(), h0)
    assert_close("states", states_ref, states, 1e-6)
    assert_close("h_last", h, h_last, 1e-6)
    ds, dh = torch.randn_like(states), torch.randn_like(h)
    grads_ref = torch.autograd.grad((states_ref * ds).sum() + (h * dh).sum(), (decay, inp, h0))
    grads = torch.autograd.grad((states * ds).sum() + (h_last * dh).sum(), (decay, inp, h0))
    for name, g_ref, g in zip(("ddecay", "dinp", "dh0"), grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


@pytest.mark.parametrize("loss_on", ["y", "final_state"])
def test_selective_scan_chunk_grads_of_one_output(loss_on, nan_poisoned_empty):
    """Only y or only the final state in the loss, several chunks and an initial state: fp32 gradients
    (every input, the initial state's included) match the recurrent spec to 1e-4."""
    inputs = make_inputs(2, 21, 6, 4)
    y_ref, s_ref = run(selective_scan_recurrent_ref, inputs)
    y, s = run(selective_scan_chunk, inputs, chunk_size=8)
    out_ref, out = (y_ref, y) if loss_on == "y" else (s_ref, s)
    w = torch.randn_like(out)
    grads_ref = torch.autograd.grad((out_ref * w).sum(), inputs, allow_unused=True)
    grads = torch.autograd.grad((out * w).sum(), inputs, allow_unused=True)
    for name, g_ref, g in zip(GRAD_NAMES, grads_ref, grads):
        if g_ref is None:  # the final state depends on neither C, D_skip nor z
            assert g is None or not g.any(), name
        else:
            assert_close(name, g_ref, g, 1e-4)


def _graph_size(tensor):
    """Number of autograd nodes reachable from ``tensor``."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(next_fn for next_fn, _ in node.next_functions)
    return len(seen)


def test_selective_scan_chunk_graph_does_not_grow_with_chunk_length():
    """The recurrence is one autograd node per chunk, not one per token (the point of the Function)."""
    sizes = []
    for T in (8, 64):
        y, _ = run(selective_scan_chunk, make_inputs(1, T, 3, 2), chunk_size=T)
        sizes.append(_graph_size(y))
    assert sizes[0] == sizes[1]
