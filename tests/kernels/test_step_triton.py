"""The fused Triton decode steps (selective_scan, ssd, causal_conv1d) against the torch steps and the chunked forms.

Runs on CPU tensors under TRITON_INTERPRET=1 (tier ``interpret``) at tiny shapes.
"""

import pytest
import torch

from zoo.kernels.causal_conv1d import causal_conv1d_chunk_ref, causal_conv1d_step
from zoo.kernels.selective_scan import selective_scan_chunk_ref, selective_scan_step
from zoo.kernels.ssd import ssd_chunk_ref, ssd_step
from zoo.testing import assert_close

pytestmark = pytest.mark.interpret
pytest.importorskip("triton")


def _strided(t: torch.Tensor) -> torch.Tensor:
    """The same values as a non-contiguous view (a slice of a wider tensor, as a projection's split gives)."""
    wide = torch.cat([t, torch.full_like(t, float("nan"))], dim=-1)
    return wide[..., : t.shape[-1]]


def _check_step(step, args, state_index, rtol):
    """Triton step == torch step (output and state); the input state is left untouched."""
    state = args[state_index]
    before = state.clone()
    y_ref, s_ref = step(*args, impl="torch")
    y, s = step(*args, impl="triton")
    assert y.dtype == y_ref.dtype and s.dtype == torch.float32
    assert_close("y_t", y_ref.float(), y.float(), rtol)
    assert_close("new_state", s_ref, s, rtol)
    assert torch.equal(state, before), "the step wrote into its input state"


# ---------------------------------------------------------------- selective_scan (Mamba-1)

# (B, D, N): D not a power of two; D=70 at N=16 spans two channel blocks of 64
SCAN_SHAPES = [(1, 3, 2), (2, 16, 5), (2, 70, 16)]


def _scan_args(B, D, N, dtype=torch.float32, optional=True, strided=False):
    """Arguments of ``selective_scan_step``: ``(u, delta, A, B, C, D_skip, z, delta_bias, softplus, state)``."""
    act = _strided if strided else (lambda t: t)
    u, z = act(torch.randn(B, D, dtype=dtype)), act(torch.randn(B, D, dtype=dtype))
    B_t, C_t = act(torch.randn(B, N, dtype=dtype)), act(torch.randn(B, N, dtype=dtype))
    A = -torch.exp(torch.randn(D, N)).to(dtype)
    state = torch.randn(B, D, N)
    if optional:
        delta = act(0.5 * torch.randn(B, D, dtype=dtype))
        return [u, delta, A, B_t, C_t, torch.randn(D, dtype=dtype), z, torch.rand(D, dtype=dtype) * 2 - 3, True, state]
    return [u, act(0.2 * torch.rand(B, D, dtype=dtype)), A, B_t, C_t, None, None, None, False, state]


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("optional", [True, False], ids=["all-inputs", "no-optional"])
@pytest.mark.parametrize(("B", "D", "N"), SCAN_SHAPES, ids=[f"B{b}-D{d}-N{n}" for b, d, n in SCAN_SHAPES])
def test_selective_scan_step_triton_matches_torch(B, D, N, optional, strided, nan_poisoned_empty):
    _check_step(selective_scan_step, _scan_args(B, D, N, optional=optional, strided=strided), 9, 1e-5)


def test_selective_scan_step_triton_bf16(nan_poisoned_empty):
    _check_step(selective_scan_step, _scan_args(2, 70, 16, dtype=torch.bfloat16), 9, 1e-2)


def test_selective_scan_step_triton_rollout_equals_chunked(nan_poisoned_empty):
    """T Triton steps with the state passed on == one chunked pass from the same initial state."""
    B, T, D, N = 2, 7, 20, 4
    u, delta, z = torch.randn(B, T, D), 0.5 * torch.randn(B, T, D), torch.randn(B, T, D)
    Bm, Cm = torch.randn(B, T, N), torch.randn(B, T, N)
    A, D_skip, bias = -torch.exp(torch.randn(D, N)), torch.randn(D), torch.rand(D) * 2 - 3
    h0 = torch.randn(B, D, N)
    y_ref, s_ref = selective_scan_chunk_ref(u, delta, A, Bm, Cm, D_skip, z, bias, True, h0, chunk_size=4)
    state, ys = h0, []
    for t in range(T):
        y_t, state = selective_scan_step(
            u[:, t], delta[:, t], A, Bm[:, t], Cm[:, t], D_skip, z[:, t], bias, True, state, impl="triton"
        )
        ys.append(y_t)
    assert_close("y", y_ref, torch.stack(ys, 1), 1e-5)
    assert_close("final_state", s_ref, state, 1e-5)


# ---------------------------------------------------------------- ssd (Mamba-2)

# (B, H, G, K, V): one head; groups shared by two heads; K=64 with V=80 spans two V blocks of 64
SSD_SHAPES = [(1, 1, 1, 2, 3), (2, 4, 2, 16, 8), (1, 2, 1, 64, 80)]


def _ssd_args(B, H, G, K, V, dtype=torch.float32, d_skip=True, strided=False):
    """Arguments of ``ssd_step``: ``(x, dt, A, B, C, D_skip, state)``."""
    act = _strided if strided else (lambda t: t)
    x = act(torch.randn(B, H, V, dtype=dtype))
    dt = act(torch.nn.functional.softplus(torch.randn(B, H)).to(dtype))
    B_t, C_t = act(torch.randn(B, G, K, dtype=dtype)), act(torch.randn(B, G, K, dtype=dtype))
    A = -torch.exp(torch.randn(H)).to(dtype)
    D_skip = torch.randn(H, dtype=dtype) if d_skip else None
    return [x, dt, A, B_t, C_t, D_skip, torch.randn(B, H, K, V)]


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("d_skip", [True, False], ids=["D_skip", "no-D_skip"])
@pytest.mark.parametrize(
    ("B", "H", "G", "K", "V"), SSD_SHAPES, ids=[f"B{b}-H{h}-G{g}-K{k}-V{v}" for b, h, g, k, v in SSD_SHAPES]
)
def test_ssd_step_triton_matches_torch(B, H, G, K, V, d_skip, strided, nan_poisoned_empty):
    _check_step(ssd_step, _ssd_args(B, H, G, K, V, d_skip=d_skip, strided=strided), 6, 1e-5)


def test_ssd_step_triton_bf16(nan_poisoned_empty):
    _check_step(ssd_step, _ssd_args(2, 4, 2, 16, 8, dtype=torch.bfloat16), 6, 1e-2)


def test_ssd_step_triton_rollout_equals_chunked(nan_poisoned_empty):
    B, T, H, G, K, V = 2, 7, 4, 2, 8, 6
    x, dt = torch.randn(B, T, H, V), torch.nn.functional.softplus(torch.randn(B, T, H))
    Bm, Cm = torch.randn(B, T, G, K), torch.randn(B, T, G, K)
    A, D_skip, h0 = -torch.exp(torch.randn(H)), torch.randn(H), torch.randn(B, H, K, V)
    y_ref, s_ref = ssd_chunk_ref(x, dt, A, Bm, Cm, D_skip, h0, chunk_size=4)
    state, ys = h0, []
    for t in range(T):
        y_t, state = ssd_step(x[:, t], dt[:, t], A, Bm[:, t], Cm[:, t], D_skip, state, impl="triton")
        ys.append(y_t)
    assert_close("y", y_ref, torch.stack(ys, 1), 1e-5)
    assert_close("final_state", s_ref, state, 1e-5)


# ---------------------------------------------------------------- causal_conv1d

# (B, D, W): W=1 has an empty state; W=3 a state of 2; D=300 spans two channel blocks of 256
CONV_SHAPES = [(1, 3, 4), (2, 5, 1), (2, 7, 3), (2, 300, 4)]


def _conv_args(B, D, W, dtype=torch.float32, bias=True, activation="silu", strided=False):
    """Arguments of ``causal_conv1d_step``: ``(x, weight, bias, activation, state)``."""
    x = torch.randn(B, D, dtype=dtype)
    return [
        _strided(x) if strided else x,
        (torch.randn(D, W) / W**0.5).to(dtype),
        torch.randn(D, dtype=dtype) if bias else None,
        activation,
        torch.randn(B, D, W - 1),
    ]


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize(("bias", "activation"), [(True, "silu"), (False, None)], ids=["bias-silu", "plain"])
@pytest.mark.parametrize(("B", "D", "W"), CONV_SHAPES, ids=[f"B{b}-D{d}-W{w}" for b, d, w in CONV_SHAPES])
def test_causal_conv1d_step_triton_matches_torch(B, D, W, bias, activation, strided, nan_poisoned_empty):
    _check_step(causal_conv1d_step, _conv_args(B, D, W, bias=bias, activation=activation, strided=strided), 4, 1e-5)


def test_causal_conv1d_step_triton_bf16(nan_poisoned_empty):
    _check_step(causal_conv1d_step, _conv_args(2, 7, 4, dtype=torch.bfloat16), 4, 1e-2)


def test_causal_conv1d_step_triton_rollout_equals_chunked(nan_poisoned_empty):
    B, T, D, W = 2, 7, 6, 4
    x, weight, bias, h0 = torch.randn(B, T, D), torch.randn(D, W) / 2, torch.randn(D), torch.randn(B, D, W - 1)
    y_ref, s_ref = causal_conv1d_chunk_ref(x, weight, bias, "silu", h0)
    state, ys = h0, []
    for t in range(T):
        y_t, state = causal_conv1d_step(x[:, t], weight, bias, "silu", state, impl="triton")
        ys.append(y_t)
    assert_close("y", y_ref, torch.stack(ys, 1), 1e-5)
    assert_close("final_state", s_ref, state, 1e-5)


# ---------------------------------------------------------------- inference-only contract, bad input

STEPS = {
    "selective_scan": (selective_scan_step, lambda: _scan_args(2, 16, 4)),
    "ssd": (ssd_step, lambda: _ssd_args(2, 4, 2, 16, 8)),
    "causal_conv1d": (causal_conv1d_step, lambda: _conv_args(2, 7, 4)),
}


@pytest.mark.parametrize("op", list(STEPS))
def test_step_triton_is_inference_only(op):
    """With a graph to build the Triton step refuses; under no_grad it runs; "auto" stays differentiable."""
    step, make = STEPS[op]
    args = make()
    weight = args[2] if op != "causal_conv1d" else args[1]
    weight.requires_grad_()
    with pytest.raises(ValueError, match="no backward"):
        step(*args, impl="triton")
    with torch.no_grad():
        y, s = step(*args, impl="triton")
    assert not y.requires_grad and not s.requires_grad
    y, _ = step(*args)  # auto: the torch step on CPU, and on CUDA too while a graph is needed
    (grad,) = torch.autograd.grad(y.float().sum(), weight)
    assert torch.isfinite(grad).all()


def test_step_bad_input_raises():
    x, weight, bias, activation, state = _conv_args(2, 7, 4)
    with pytest.raises(ValueError, match="state"):
        causal_conv1d_step(x, weight, bias, activation, state[:, :, :2], impl="triton")
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d_step(x, weight, bias, "gelu", state, impl="triton")
    args = _ssd_args(2, 3, 2, 16, 8)  # H=3 heads cannot share G=2 groups
    with pytest.raises(ValueError, match="multiple"):
        ssd_step(*args, impl="triton")
    args = _scan_args(2, 16, 4)
    args[3] = args[3][:, :3]  # B_t [B,N-1]
    with pytest.raises(ValueError, match="B_t"):
        selective_scan_step(*args, impl="triton")
