"""The Triton selective scan against the spec; runs on CPU tensors under TRITON_INTERPRET=1 (tiny shapes)."""

import pytest
import torch

from zoo.kernels.selective_scan import selective_scan_chunk, selective_scan_chunk_ref, selective_scan_recurrent_ref
from zoo.testing import assert_close

pytestmark = pytest.mark.interpret
pytest.importorskip("triton")

# (B, T, D, N, chunk_size): odd T; T below, equal to and not a multiple of the chunk; D = 32 spans two D blocks
SHAPES = [(1, 1, 3, 2, 4), (2, 7, 16, 4, 4), (1, 33, 32, 8, 8)]
GRAD_NAMES = ("du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias", "dh0")


def make_inputs(B, T, D, N, dtype=torch.float32, optional=True):
    """Inputs of a Mamba layer's regime; without the optional ones, a raw positive delta (no softplus)."""
    u = torch.randn(B, T, D)
    A = -torch.exp(torch.randn(D, N))
    Bm, Cm = torch.randn(B, T, N), torch.randn(B, T, N)
    if optional:
        delta = 0.5 * torch.randn(B, T, D)
        rest = [torch.randn(D), torch.randn(B, T, D), torch.rand(D) * 2 - 3]  # D_skip, z, delta_bias
    else:
        delta, rest = 0.2 * torch.rand(B, T, D), [None, None, None]
    tensors = [t if t is None else t.to(dtype).requires_grad_() for t in [u, delta, A, Bm, Cm, *rest]]
    # the state stays fp32 whatever the input dtype
    h0 = torch.randn(B, D, N).requires_grad_() if optional else None
    return [*tensors, h0]


def run(fn, inputs, **kwargs):
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 = inputs
    return fn(u, delta, A, Bm, Cm, D_skip, z, delta_bias, D_skip is not None, h0, **kwargs)


def grads(y, s, inputs, dy, ds):
    present = [t for t in inputs if t is not None]
    g = iter(torch.autograd.grad((y.float() * dy).sum() + (s * ds).sum(), present))
    return [None if t is None else next(g) for t in inputs]


@pytest.mark.parametrize("optional", [True, False], ids=["all-inputs", "no-optional"])
@pytest.mark.parametrize(
    ("B", "T", "D", "N", "L"), SHAPES, ids=[f"B{b}-T{t}-D{d}-N{n}-float32" for b, t, d, n, _ in SHAPES]
)
def test_selective_scan_triton_matches_recurrent(B, T, D, N, L, optional, nan_poisoned_empty):
    inputs = make_inputs(B, T, D, N, optional=optional)
    y_ref, s_ref = run(selective_scan_recurrent_ref, inputs)
    y, s = run(selective_scan_chunk, inputs, chunk_size=L, impl="triton")
    assert y.dtype == torch.float32 and s.dtype == torch.float32
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-4)
    y_chunk, s_chunk = run(selective_scan_chunk_ref, inputs, chunk_size=L)
    assert_close("y vs chunk form", y_chunk, y, 1e-4)
    assert_close("final_state vs chunk form", s_chunk, s, 1e-4)

    dy, ds = torch.randn_like(y), torch.randn_like(s)
    for name, g_ref, g in zip(GRAD_NAMES, grads(y_ref, s_ref, inputs, dy, ds), grads(y, s, inputs, dy, ds)):
        assert (g_ref is None) == (g is None), name
        if g is not None:
            assert_close(name, g_ref, g, 1e-4)


def test_selective_scan_triton_bf16(nan_poisoned_empty):
    """bf16 in, bf16 out and bf16 gradients; the recurrence and the state stay fp32."""
    inputs = make_inputs(2, 7, 16, 4, dtype=torch.bfloat16)
    y, s = run(selective_scan_chunk, inputs, chunk_size=4, impl="triton")
    assert y.dtype == torch.bfloat16 and s.dtype == torch.float32
    y_ref, s_ref = run(selective_scan_recurrent_ref, inputs)
    assert_close("y", y_ref, y, 1e-2)
    assert_close("final_state", s_ref, s, 1e-2)
    dy, ds = torch.randn(y.shape), torch.randn_like(s)
    for name, g_ref, g in zip(GRAD_NAMES, grads(y_ref, s_ref, inputs, dy, ds), grads(y, s, inputs, dy, ds)):
        assert g.dtype == g_ref.dtype, name
        assert_close(name, g_ref, g, 1e-2)


def test_selective_scan_triton_pieces_with_state_equal_one_pass(nan_poisoned_empty):
    u, delta, A, Bm, Cm, D_skip, z, delta_bias, _ = (t if t is None else t.detach() for t in make_inputs(2, 33, 8, 4))

    def part(lo, hi, state):
        s = slice(lo, hi)
        return selective_scan_chunk(
            u[:, s], delta[:, s], A, Bm[:, s], Cm[:, s], D_skip, z[:, s], delta_bias, True, state,
            chunk_size=8, impl="triton",
        )  # fmt: skip

    y_full, s_full = part(0, 33, None)
    y1, s1 = part(0, 13, None)
    y2, s2 = part(13, 33, s1)
    assert_close("y", y_full, torch.cat([y1, y2], 1), 1e-6)
    assert_close("state", s_full, s2, 1e-6)


def test_selective_scan_triton_large_decay_and_strided_inputs(nan_poisoned_empty):
    """dt |A| summed far beyond exp's fp32 range stays finite; channels-first inputs (a conv's output) work."""
    inputs = make_inputs(1, 17, 4, 3)
    u, delta, *rest = (t.detach() for t in inputs)
    u = u.transpose(1, 2).contiguous().transpose(1, 2)  # [B,T,D] view of [B,D,T] memory
    delta = delta + 6.0
    y_ref, s_ref = run(selective_scan_recurrent_ref, [u, delta, *rest])
    y, s = run(selective_scan_chunk, [u, delta, *rest], chunk_size=16, impl="triton")
    assert_close("y", y_ref, y, 1e-4)
    assert_close("final_state", s_ref, s, 1e-4)


@pytest.mark.parametrize("used", ["y", "final_state"])
def test_selective_scan_triton_one_output_used(used, nan_poisoned_empty):
    """Autograd hands the unused output's gradient as zeros; the other one's gradients must still match.

    The final state does not depend on ``Cm``, ``D_skip`` or ``z``: the spec's graph has no gradient for them
    (``materialize_grads`` makes those zeros), and the kernel must give exactly zeros there too.
    """
    inputs = make_inputs(1, 5, 4, 3)
    present = [t for t in inputs if t is not None]
    pick = 0 if used == "y" else 1
    kw = {"materialize_grads": True}
    g_ref = torch.autograd.grad(run(selective_scan_recurrent_ref, inputs)[pick].sum(), present, **kw)
    g = torch.autograd.grad(run(selective_scan_chunk, inputs, chunk_size=2, impl="triton")[pick].sum(), present, **kw)
    for name, a, b in zip(GRAD_NAMES, g_ref, g):
        assert_close(name, a, b, 1e-4)
