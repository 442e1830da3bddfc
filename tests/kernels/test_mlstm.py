import pytest
import torch

from zoo.kernels.mlstm import mlstm_chunk, mlstm_chunk_ref, mlstm_recurrent_ref, mlstm_step, reference
from zoo.testing import assert_close

# (B, T, H, K, V, chunk_size): odd lengths, T below, at and above the chunk, T not a multiple of it
SHAPES = [
    (1, 1, 1, 4, 4, 16),
    (2, 17, 3, 8, 5, 4),
    (1, 63, 2, 16, 8, 16),
    (2, 64, 2, 8, 16, 16),
    (1, 130, 1, 8, 16, 32),
    (2, 100, 1, 8, 8, 128),
]
IDS = [f"B{b}-T{t}-H{h}-K{k}-V{v}-L{c}" for b, t, h, k, v, c in SHAPES]


def make_inputs(B, T, H, K, V, dtype=torch.float32, requires_grad=True):
    """Random inputs. Gates of unit-ish spread keep h well conditioned: a large input gate spread lets
    |q.n| come close to 0 (h = num / max(|q.n|, exp(-m))), where fp32 round-off of ANY form is ~1e-5."""
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    igate, fgate = torch.randn(B, T, H), 3 + 2 * torch.randn(B, T, H)
    state = (torch.randn(B, H, K, V), torch.randn(B, H, K), torch.randn(B, H))
    tensors = [x.to(dtype).requires_grad_(requires_grad) for x in (q, k, v, igate, fgate)]
    return tensors, tuple(s.requires_grad_(requires_grad) for s in state)


@pytest.mark.parametrize(("B", "T", "H", "K", "V", "L"), SHAPES, ids=IDS)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_mlstm_chunk_matches_recurrent(B, T, H, K, V, L, with_state, nan_poisoned_empty):
    inputs, h0 = make_inputs(B, T, H, K, V)
    state = h0 if with_state else None
    h_ref, s_ref = mlstm_recurrent_ref(*inputs, state, chunk_size=L)
    h, s = mlstm_chunk(*inputs, state, chunk_size=L)
    assert_close("h", h_ref, h, 1e-5)
    for name, a, b in zip("Cnm", s_ref, s):
        assert_close(f"final_state.{name}", a, b, 1e-5)

    dh = torch.randn_like(h)
    ds = [torch.randn_like(x) for x in s]
    wrt = (*inputs, *h0) if with_state else tuple(inputs)

    def loss(h, s):
        return (h * dh).sum() + sum((x * d).sum() for x, d in zip(s, ds))

    grads_ref = torch.autograd.grad(loss(h_ref, s_ref), wrt)
    grads = torch.autograd.grad(loss(h, s), wrt)
    names = ("dq", "dk", "dv", "digate", "dfgate", "dC0", "dn0", "dm0")
    for name, g_ref, g in zip(names, grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


def test_mlstm_chunk_in_groups_of_chunks(monkeypatch, nan_poisoned_empty):
    # long inputs run the intra-chunk work a few chunks at a time; force groups of one chunk here
    monkeypatch.setattr(reference, "_GROUP_ELEMENTS", 1)
    inputs, h0 = make_inputs(2, 45, 2, 4, 4)
    h_ref, s_ref = mlstm_recurrent_ref(*inputs, h0)
    h, s = mlstm_chunk(*inputs, h0, chunk_size=8)
    assert_close("h", h_ref, h, 1e-5)
    grads_ref = torch.autograd.grad(h_ref.sum() + s_ref[0].sum(), inputs)
    grads = torch.autograd.grad(h.sum() + s[0].sum(), inputs)
    for name, g_ref, g in zip(("dq", "dk", "dv", "digate", "dfgate"), grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)
    with torch.no_grad():
        h_nograd, _ = mlstm_chunk(*inputs, h0, chunk_size=8)
    assert_close("h (no grad)", h_ref, h_nograd, 1e-5)


def test_mlstm_chunk_dispatch():
    inputs, h0 = make_inputs(1, 20, 2, 4, 4, requires_grad=False)
    h_auto, _ = mlstm_chunk(*inputs, h0, chunk_size=8)
    h_torch, _ = mlstm_chunk_ref(*inputs, h0, chunk_size=8)
    h_spec, _ = mlstm_chunk(*inputs, h0, impl="reference")
    assert torch.equal(h_auto, h_torch)
    assert_close("h", h_spec, h_auto, 1e-5)


def test_mlstm_pieces_with_state_equal_one_pass():
    inputs, _ = make_inputs(2, 75, 2, 8, 8, requires_grad=False)
    h_full, s_full = mlstm_chunk(*inputs, chunk_size=16)
    state, hs = None, []
    for start, stop in ((0, 1), (1, 30), (30, 75)):  # a single token, then pieces not aligned to chunks
        h, state = mlstm_chunk(*(x[:, start:stop] for x in inputs), state, chunk_size=16)
        hs.append(h)
    assert_close("h", h_full, torch.cat(hs, 1), 1e-5)
    for name, a, b in zip("Cnm", s_full, state):
        assert_close(f"state.{name}", a, b, 1e-5)


def test_mlstm_step_matches_chunk():
    B, T, H, K, V = 2, 21, 2, 8, 4
    inputs, h0 = make_inputs(B, T, H, K, V, requires_grad=False)
    h_full, s_full = mlstm_chunk(*inputs, h0, chunk_size=8)
    state, hs = h0, []
    for t in range(T):
        h_t, state = mlstm_step(*(x[:, t] for x in inputs), state)
        hs.append(h_t)
    assert_close("h", h_full, torch.stack(hs, 1), 1e-5)
    for name, a, b in zip("Cnm", s_full, state):
        assert_close(f"state.{name}", a, b, 1e-5)


def test_mlstm_bf16_inputs_compute_in_fp32():
    inputs, h0 = make_inputs(1, 50, 2, 16, 16, dtype=torch.bfloat16, requires_grad=False)
    h, (C, n, m) = mlstm_chunk(*inputs, h0, chunk_size=16)
    h_ref, _ = mlstm_recurrent_ref(*(x.float() for x in inputs), h0)
    assert h.dtype == torch.bfloat16 and C.dtype == n.dtype == m.dtype == torch.float32
    assert_close("h", h_ref, h, 1e-2)


def test_mlstm_rejects_bad_inputs():
    q, k, v = torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 6)
    i, f = torch.randn(1, 4, 2), torch.randn(1, 4, 2)
    with pytest.raises(ValueError, match=r"k must have shape \[B,T,H,K\]"):
        mlstm_chunk(q, k[..., :4], v, i, f)
    with pytest.raises(ValueError, match=r"fgate must have shape \[B,T,H\]"):
        mlstm_chunk(q, k, v, i, f[..., :1])
    with pytest.raises(ValueError, match=r"initial_state.C must have shape \[B,H,K,V\]"):
        mlstm_chunk(q, k, v, i, f, (torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8), torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="initial_state must be a tuple"):
        mlstm_chunk(q, k, v, i, f, torch.zeros(1, 2, 8, 6))
    with pytest.raises(ValueError, match="T=0"):
        mlstm_chunk(q[:, :0], k[:, :0], v[:, :0], i[:, :0], f[:, :0])
    with pytest.raises(ValueError, match="chunk_size=0"):
        mlstm_chunk(q, k, v, i, f, chunk_size=0)
    with pytest.raises(ValueError, match="impl='cuda'"):
        mlstm_chunk(q, k, v, i, f, impl="cuda")
    with pytest.raises(ValueError, match=r"state.m must have shape \[B,H\]"):
        mlstm_step(
            q[:, 0],
            k[:, 0],
            v[:, 0],
            i[:, 0],
            f[:, 0],
            (torch.zeros(1, 2, 8, 6), torch.zeros(1, 2, 8), 0 * i),
        )
