"""The Triton mLSTM (chunkwise kernel and fused step) against the spec, under TRITON_INTERPRET=1 on CPU (tier
``interpret``) at tiny shapes."""

import pytest
import torch

from zoo.kernels.mlstm import mlstm_chunk, mlstm_recurrent_ref, mlstm_step, reference
from zoo.testing import assert_close

pytestmark = pytest.mark.interpret

NAMES = ("dq", "dk", "dv", "digate", "dfgate", "dC0", "dn0", "dm0")

# (B, T, H, K, V): odd T below / across / past chunk boundaries of L = 16, K != V
SHAPES = [(1, 1, 2, 8, 16), (2, 7, 1, 16, 8), (1, 33, 2, 16, 24), (1, 65, 1, 8, 20)]
IDS = [f"B{b}-T{t}-H{h}-K{k}-V{v}" for b, t, h, k, v in SHAPES]


def make_inputs(B, T, H, K, V, igate_range=None, fgate_std=2.0):
    """``[q, k, v, igate, fgate]`` and an initial state ``(C, n, m)`` (as tests/kernels/test_mlstm.py).

    ``igate_range=a`` draws the input gate uniformly from ``[-a, a]`` (stability checks).
    """
    igate = torch.randn(B, T, H) if igate_range is None else (torch.rand(B, T, H) * 2 - 1) * igate_range
    inputs = [torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V), igate]
    inputs.append(3 + fgate_std * torch.randn(B, T, H))
    state = (torch.randn(B, H, K, V), torch.randn(B, H, K), torch.randn(B, H))
    return inputs, state


def _run_and_grad(fn, inputs, state, dh, ds, **kwargs):
    """``(h, final_state, grads of <h, dh> + <state, ds> w.r.t. the inputs and the initial state if given)``."""
    h, s = fn(*inputs, state, **kwargs)
    loss = (h.float() * dh).sum() + sum((x * d).sum() for x, d in zip(s, ds))
    wrt = [*inputs, *(state or ())]
    return h, s, torch.autograd.grad(loss, wrt)


def _leaves(tensors, dtype=None):
    """Fresh leaf copies (optionally cast) that require grad."""
    return [x.detach().to(dtype or x.dtype).requires_grad_() for x in tensors]


@pytest.mark.parametrize("with_state", [True, False], ids=["initial-state", "zero-state"])
@pytest.mark.parametrize(("B", "T", "H", "K", "V"), SHAPES, ids=IDS)
def test_mlstm_triton_matches_recurrent(B, T, H, K, V, with_state, nan_poisoned_empty):
    inputs, state = make_inputs(B, T, H, K, V)
    inputs = _leaves(inputs)
    state = tuple(_leaves(state)) if with_state else None
    dh, ds = torch.randn(B, T, H, V), [torch.randn(B, H, K, V), torch.randn(B, H, K), torch.randn(B, H)]
    h_ref, s_ref, g_ref = _run_and_grad(mlstm_recurrent_ref, inputs, state, dh, ds)
    h, s, g = _run_and_grad(mlstm_chunk, inputs, state, dh, ds, chunk_size=16, impl="triton")
    assert h.dtype == torch.float32 and all(x.dtype == torch.float32 for x in s)
    assert_close("h", h_ref, h, 1e-4)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"final_state.{name}", a, b, 1e-4)
    for name, a, b in zip(NAMES, g_ref, g, strict=False):
        assert_close(name, a, b, 1e-4)


@pytest.mark.parametrize("chunk_size", [8, 40])
def test_mlstm_triton_several_blocks(chunk_size, monkeypatch, nan_poisoned_empty):
    # 16-wide K / V blocks and 16-token sub-blocks: K = 40 and V = 24 take three and two blocks (ragged);
    # L = 8 is shorter than one 16-slot sub-block, L = 40 is three sub-blocks (the last ragged) per chunk
    import zoo.kernels.mlstm.triton_op as triton_op

    monkeypatch.setattr(triton_op, "_BLOCK_CAP", 16)
    monkeypatch.setattr(triton_op, "_SUB_CAP", 16)
    inputs, state = make_inputs(1, 45, 1, 40, 24)
    inputs, state = _leaves(inputs), tuple(_leaves(state))
    dh, ds = torch.randn(1, 45, 1, 24), [torch.randn(1, 1, 40, 24), torch.randn(1, 1, 40), torch.randn(1, 1)]
    h_ref, s_ref, g_ref = _run_and_grad(mlstm_recurrent_ref, inputs, state, dh, ds)
    h, s, g = _run_and_grad(mlstm_chunk, inputs, state, dh, ds, chunk_size=chunk_size, impl="triton")
    assert_close("h", h_ref, h, 1e-4)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"final_state.{name}", a, b, 1e-4)
    for name, a, b in zip(NAMES, g_ref, g, strict=True):
        assert_close(name, a, b, 1e-4)


def _recurrent_fp64(inputs, state, eps=1e-6):
    """The spec's step in fp64 (``mlstm_recurrent_ref`` itself computes in fp32): a round-off-free target."""
    C, n, m = (x.double() for x in state)
    hs = []
    for t in range(inputs[0].shape[1]):
        h_t, (C, n, m) = reference._step(*(x[:, t].double() for x in inputs), C, n, m, eps)
        hs.append(h_t)
    return torch.stack(hs, 1), (C, n, m)


def test_mlstm_triton_large_gates_stable(nan_poisoned_empty):
    # input gates up to +-20 and a wide forget gate (logsigmoid down to ~ -20 per token), a large initial m:
    # every exponential is stabilised, so outputs and gradients stay finite and match an fp64 recurrence
    inputs, state = make_inputs(2, 40, 2, 16, 16, igate_range=20.0, fgate_std=6.0)
    state = (state[0], state[1], 5 * state[2])
    inputs, state = _leaves(inputs, torch.float64), tuple(_leaves(state, torch.float64))
    dh, ds = torch.randn(2, 40, 2, 16), [torch.randn(2, 2, 16, 16), torch.randn(2, 2, 16), torch.randn(2, 2)]
    h_ref, s_ref, g_ref = _run_and_grad(lambda *a: _recurrent_fp64(a[:5], a[5]), inputs, state, dh, ds)
    inputs32, state32 = _leaves(inputs, torch.float32), tuple(_leaves(state, torch.float32))
    h, s, g = _run_and_grad(mlstm_chunk, inputs32, state32, dh, ds, chunk_size=16, impl="triton")
    assert_close("h", h_ref, h, 1e-4)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"final_state.{name}", a, b, 1e-4)
    for name, a, b in zip(NAMES, g_ref, g, strict=True):
        assert_close(name, a, b, 1e-4)


def test_mlstm_triton_bf16(nan_poisoned_empty):
    inputs, state = make_inputs(2, 33, 2, 16, 8)
    inputs, state = _leaves(inputs, torch.bfloat16), tuple(_leaves(state))
    dh, ds = torch.randn(2, 33, 2, 8), [torch.randn(2, 2, 16, 8), torch.randn(2, 2, 16), torch.randn(2, 2)]
    h, s, g = _run_and_grad(mlstm_chunk, inputs, state, dh, ds, chunk_size=16, impl="triton")
    assert h.dtype == torch.bfloat16 and all(x.dtype == torch.float32 for x in s)
    # the reference in fp32 on the same (bf16-rounded) inputs
    inputs_ref = _leaves(inputs, torch.float32)
    h_ref, s_ref, g_ref = _run_and_grad(mlstm_recurrent_ref, inputs_ref, state, dh, ds)
    assert_close("h", h_ref, h, 1e-2)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"final_state.{name}", a, b, 1e-2)
    for name, a, b in zip(NAMES, g_ref, g, strict=True):
        assert b.dtype == (torch.float32 if name in ("dC0", "dn0", "dm0") else torch.bfloat16), name
        assert_close(name, a, b, 1e-2)


def test_mlstm_triton_pieces_with_state_equal_one_pass():
    inputs, _ = make_inputs(2, 36, 1, 8, 16)
    inputs = _leaves(inputs)
    h_full, s_full = mlstm_chunk(*inputs, chunk_size=16, impl="triton")
    hs, state = [], None
    for lo, hi in [(0, 1), (1, 21), (21, 36)]:
        h, state = mlstm_chunk(*(x[:, lo:hi] for x in inputs), state, chunk_size=16, impl="triton")
        hs.append(h)
    h_pieces = torch.cat(hs, 1)
    assert_close("h", h_full, h_pieces, 1e-5)
    for name, a, b in zip("Cnm", s_full, state):
        assert_close(f"state.{name}", a, b, 1e-5)
    # the gradients also flow through the state handed from piece to piece
    dh = torch.randn_like(h_full)
    g_full = torch.autograd.grad((h_full * dh).sum() + s_full[0].sum(), inputs)
    g_pieces = torch.autograd.grad((h_pieces * dh).sum() + state[0].sum(), inputs)
    for name, a, b in zip(NAMES, g_full, g_pieces):
        assert_close(name, a, b, 1e-5)


def test_mlstm_triton_non_contiguous_and_no_grad():
    inputs, state = make_inputs(1, 20, 2, 8, 8)
    h_ref, s_ref = mlstm_recurrent_ref(*inputs, state)
    head_major = [x.transpose(1, 2).contiguous().transpose(1, 2) for x in inputs]
    with torch.no_grad():
        h, s = mlstm_chunk(*head_major, state, chunk_size=16, impl="triton")
    assert_close("h", h_ref, h, 1e-4)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"final_state.{name}", a, b, 1e-4)


def test_mlstm_triton_bad_input():
    inputs, _ = make_inputs(1, 5, 1, 8, 8)
    with pytest.raises(ValueError, match="k must have shape"):
        mlstm_chunk(inputs[0], inputs[1][..., :4], *inputs[2:], impl="triton")
    with pytest.raises(ValueError, match="chunk_size"):
        mlstm_chunk(*inputs, chunk_size=0, impl="triton")


@pytest.mark.parametrize(("B", "H", "K", "V", "dtype"), [(2, 3, 8, 5, torch.float32), (1, 2, 80, 72, torch.float32),
                                                         (2, 1, 16, 16, torch.bfloat16)])  # fmt: skip
def test_mlstm_step_triton_matches_torch(B, H, K, V, dtype, nan_poisoned_empty):
    # (80, 72): two K and two V blocks of the step kernel; big gates check the stabiliser
    q, k, v = (torch.randn(B, H, d).to(dtype) for d in (K, K, V))
    i_t, f_t = (20 * torch.randn(B, H)).to(dtype), (3 + 4 * torch.randn(B, H)).to(dtype)
    state = (torch.randn(B, H, K, V), torch.randn(B, H, K), 3 * torch.randn(B, H))
    h_ref, s_ref = mlstm_step(q, k, v, i_t, f_t, state, impl="torch")
    h, s = mlstm_step(q, k, v, i_t, f_t, state, impl="triton")
    assert h.dtype == dtype and all(x.dtype == torch.float32 for x in s)
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert_close("h", h_ref, h, tol)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"state.{name}", a, b, 1e-5)


def test_mlstm_step_triton_decodes_like_the_chunk_kernel():
    inputs, state = make_inputs(1, 9, 2, 8, 16)
    h_chunk, s_chunk = mlstm_chunk(*inputs, state, chunk_size=16, impl="triton")
    hs = []
    for t in range(9):
        h_t, state = mlstm_step(*(x[:, t] for x in inputs), state, impl="triton")
        hs.append(h_t)
    assert_close("h", h_chunk, torch.stack(hs, 1), 1e-5)
    for name, a, b in zip("Cnm", s_chunk, state):
        assert_close(f"state.{name}", a, b, 1e-5)


def test_mlstm_step_dispatch():
    q, k, v = torch.randn(1, 2, 8), torch.randn(1, 2, 8), torch.randn(1, 2, 4)
    i_t, f_t = torch.randn(1, 2), torch.randn(1, 2)
    state = (torch.randn(1, 2, 8, 4), torch.randn(1, 2, 8), torch.randn(1, 2))
    h_auto, _ = mlstm_step(q, k, v, i_t, f_t, state)  # CPU tensors: the torch step
    h_torch, _ = mlstm_step(q, k, v, i_t, f_t, state, impl="torch")
    assert torch.equal(h_auto, h_torch)
    with pytest.raises(ValueError, match="inference only"):
        mlstm_step(q.requires_grad_(), k, v, i_t, f_t, state, impl="triton")
    with pytest.raises(ValueError, match="impl="):
        mlstm_step(q, k, v, i_t, f_t, state, impl="cuda")
