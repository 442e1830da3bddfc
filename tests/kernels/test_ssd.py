from itertools import pairwise

import pytest
import torch

from zoo.kernels.ssd import ssd_chunk, ssd_chunk_ref, ssd_recurrent_ref, ssd_step
from zoo.testing import assert_close

# (B, T, H, G, K, V, chunk_size): odd T, T below / not a multiple of / equal to the chunk, G = 1 and G > 1
SHAPES = [
    (1, 1, 2, 1, 4, 3, 8),
    (2, 17, 4, 2, 8, 5, 8),
    (1, 63, 6, 3, 5, 4, 16),
    (2, 64, 4, 1, 16, 8, 64),
    (2, 130, 4, 2, 16, 8, 32),
    (1, 200, 2, 1, 8, 4, 256),
]
IDS = [f"B{b}-T{t}-H{h}-G{g}-K{k}-V{v}-L{c}" for b, t, h, g, k, v, c in SHAPES]


def make_inputs(B, T, H, G, K, V, dtype=torch.float32, requires_grad=False):
    """Inputs in Mamba-2's working range: dt in (0.01, 0.5], A in [-2.1, -0.1], B/C of unit scale."""
    tensors = (
        torch.randn(B, T, H, V),
        torch.rand(B, T, H) * 0.49 + 0.01,
        -(torch.rand(H) * 2 + 0.1),
        torch.randn(B, T, G, K) / K**0.5,
        torch.randn(B, T, G, K),
        torch.randn(H),
        torch.randn(B, H, K, V),
    )
    return [t.to(dtype).requires_grad_(requires_grad) for t in tensors]


@pytest.mark.parametrize(("B", "T", "H", "G", "K", "V", "L"), SHAPES, ids=IDS)
def test_ssd_chunk_matches_recurrent(B, T, H, G, K, V, L, nan_poisoned_empty):
    inputs = make_inputs(B, T, H, G, K, V, requires_grad=True)
    y_ref, s_ref = ssd_recurrent_ref(*inputs, chunk_size=L)
    y, s = ssd_chunk(*inputs, chunk_size=L)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)
    dy, ds = torch.randn_like(y), torch.randn_like(s)
    grads_ref = torch.autograd.grad((y_ref * dy).sum() + (s_ref * ds).sum(), inputs)
    grads = torch.autograd.grad((y * dy).sum() + (s * ds).sum(), inputs)
    for name, g_ref, g in zip(("dx", "ddt", "dA", "dB", "dC", "dD", "dh0"), grads_ref, grads):
        assert_close(name, g_ref, g, 1e-5)


def test_ssd_chunk_without_optional_inputs():
    x, dt, A, Bm, Cm, _, _ = make_inputs(2, 37, 4, 2, 8, 6)
    y_ref, s_ref = ssd_recurrent_ref(x, dt, A, Bm, Cm)
    y, s = ssd_chunk(x, dt, A, Bm, Cm, chunk_size=16)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)


def test_ssd_chunk_ref_long_input_matches_recurrent():
    # long enough to span several internal segments of the chunked form
    x, dt, A, Bm, Cm, D, h0 = make_inputs(1, 2500, 2, 1, 4, 3)
    y_ref, s_ref = ssd_recurrent_ref(x, dt, A, Bm, Cm, D, h0)
    y, s = ssd_chunk_ref(x, dt, A, Bm, Cm, D, h0, chunk_size=32)
    assert_close("y", y_ref, y, 1e-5)
    assert_close("final_state", s_ref, s, 1e-5)


@pytest.mark.parametrize("impl", ["torch", "reference"])
def test_ssd_pieces_with_state_equal_one_pass(impl):
    x, dt, A, Bm, Cm, D, _ = make_inputs(2, 90, 4, 2, 8, 5)
    y_full, s_full = ssd_chunk(x, dt, A, Bm, Cm, D, chunk_size=16, impl=impl)
    ys, state = [], None
    for lo, hi in [(0, 1), (1, 40), (40, 90)]:
        y, state = ssd_chunk(x[:, lo:hi], dt[:, lo:hi], A, Bm[:, lo:hi], Cm[:, lo:hi], D, state, 16, impl)
        ys.append(y)
    assert_close("y", y_full, torch.cat(ys, 1), 1e-5)
    assert_close("state", s_full, state, 1e-5)


def test_ssd_step_matches_chunk():
    x, dt, A, Bm, Cm, D, h0 = make_inputs(2, 11, 6, 3, 8, 4)
    y_full, s_full = ssd_chunk(x, dt, A, Bm, Cm, D, h0, chunk_size=4)
    state, ys = h0, []
    for t in range(x.shape[1]):
        y_t, state = ssd_step(x[:, t], dt[:, t], A, Bm[:, t], Cm[:, t], D, state)
        ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-5)
    assert_close("state", s_full, state, 1e-5)


def test_ssd_chunk_bf16_close_to_fp32():
    inputs = make_inputs(2, 70, 4, 2, 16, 8, dtype=torch.bfloat16)
    y, s = ssd_chunk(*inputs, chunk_size=32)
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32
    y_ref, s_ref = ssd_recurrent_ref(*(t.float() for t in inputs))
    assert_close("y", y_ref, y, 1e-2)
    assert_close("final_state", s_ref, s, 1e-2)


def test_ssd_rejects_bad_shapes():
    x, dt, A, Bm, Cm, D, h0 = make_inputs(2, 5, 4, 2, 8, 3)
    with pytest.raises(ValueError, match=r"dt must have shape \[B,T,H\]"):
        ssd_chunk(x, dt[:, :4], A, Bm, Cm)
    with pytest.raises(ValueError, match=r"A must have shape \[H\]"):
        ssd_chunk(x, dt, A[:3], Bm, Cm)
    with pytest.raises(ValueError, match=r"Cm must have shape \[B,T,G,K\]"):
        ssd_chunk(x, dt, A, Bm, Cm[..., :4])
    with pytest.raises(ValueError, match="multiple of G=3"):
        ssd_chunk(x, dt, A, torch.randn(2, 5, 3, 8), torch.randn(2, 5, 3, 8))
    with pytest.raises(ValueError, match=r"initial_state must have shape \[B,H,K,V\]"):
        ssd_chunk(x, dt, A, Bm, Cm, D, h0.transpose(-1, -2))  # transformers' [B,H,P,N] layout
    with pytest.raises(ValueError, match="chunk_size=0"):
        ssd_chunk(x, dt, A, Bm, Cm, chunk_size=0)
    with pytest.raises(ValueError, match="impl='cuda'"):
        ssd_chunk(x, dt, A, Bm, Cm, impl="cuda")
    with pytest.raises(ValueError, match=r"state must have shape \[B,H,K,V\]"):
        ssd_step(x[:, 0], dt[:, 0], A, Bm[:, 0], Cm[:, 0], D, h0[:1])


# packed sequences: an empty one, one inside a chunk, ones across chunk boundaries of L = 8
CU_SEQLENS = [0, 3, 3, 20, 21, 37]


@pytest.mark.parametrize("impl", ["torch", "reference"])
@pytest.mark.parametrize("with_h0", [True, False])
def test_ssd_varlen_matches_each_sequence_alone(impl, with_h0, nan_poisoned_empty):
    S, T = len(CU_SEQLENS) - 1, CU_SEQLENS[-1]
    x, dt, A, Bm, Cm, D, _ = make_inputs(1, T, 4, 2, 8, 5)
    h0 = torch.randn(S, 4, 8, 5) if with_h0 else None
    cu = torch.tensor(CU_SEQLENS)
    y, s = ssd_chunk(x, dt, A, Bm, Cm, D, h0, chunk_size=8, impl=impl, cu_seqlens=cu)
    assert s.shape == (S, 4, 8, 5)
    for i, (lo, hi) in enumerate(pairwise(CU_SEQLENS)):
        h0_i = torch.zeros(1, 4, 8, 5) if h0 is None else h0[i : i + 1]
        if hi == lo:  # an empty sequence passes its initial state through
            assert_close(f"state{i}", h0_i, s[i : i + 1], 0.0)
            continue
        y_i, s_i = ssd_recurrent_ref(x[:, lo:hi], dt[:, lo:hi], A, Bm[:, lo:hi], Cm[:, lo:hi], D, h0_i)
        assert_close(f"y{i}", y_i, y[:, lo:hi], 1e-5)
        assert_close(f"state{i}", s_i, s[i : i + 1], 1e-5)


def test_ssd_varlen_rejects_bad_cu_seqlens():
    x, dt, A, Bm, Cm, D, h0 = make_inputs(1, 10, 4, 2, 8, 3)
    for cu, match in [
        (torch.tensor([1, 10]), "start at 0"),
        (torch.tensor([0, 9]), "end at T=10"),
        (torch.tensor([0]), "at least one sequence"),
        (torch.tensor([0, 6, 4, 10]), "non-decreasing"),
        (torch.tensor([0.0, 10.0]), "int32/int64"),
    ]:
        with pytest.raises(ValueError, match=match):
            ssd_chunk(x, dt, A, Bm, Cm, cu_seqlens=cu)
    with pytest.raises(ValueError, match=r"initial_state must have shape \[S,H,K,V\]"):
        ssd_chunk(x, dt, A, Bm, Cm, D, h0, cu_seqlens=torch.tensor([0, 4, 10]))
    x2, dt2, _, Bm2, Cm2, _, _ = make_inputs(2, 10, 4, 2, 8, 3)
    with pytest.raises(ValueError, match="B == 1"):
        ssd_chunk(x2, dt2, A, Bm2, Cm2, cu_seqlens=torch.tensor([0, 10]))
