import pytest
import torch

from zoo.layers.mlstm import MLSTM, MLSTMConfig, MLSTMState
from zoo.testing import assert_close

D_MODEL = 16


def make(**kwargs):
    torch.manual_seed(0)
    layer = MLSTM(D_MODEL, MLSTMConfig(num_heads=2, chunk_size=8, **kwargs))
    # the default init zeroes the gate weights (i = -10, f = 3..6 everywhere): give the gates some input
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("weight_mode", ["single", "fused"])
def test_mlstm_forward_matches_step(weight_mode):
    layer = make(weight_mode=weight_mode)
    x = torch.randn(2, 21, D_MODEL)
    with torch.no_grad():
        y_full, s_full = layer(x)
        state = layer.init_state(2)
        ys = []
        for t in range(x.shape[1]):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-4)
    for name in MLSTMState._fields:
        assert_close(f"state.{name}", getattr(s_full, name), getattr(state, name), 1e-4)


def test_mlstm_pieces_with_state_equal_one_pass():
    layer = make()
    x = torch.randn(2, 37, D_MODEL)
    y_full, s_full = layer(x)
    y1, s1 = layer(x[:, :13])
    y2, s2 = layer(x[:, 13:], s1)
    assert isinstance(s2, MLSTMState)
    assert_close("y", y_full, torch.cat([y1, y2], 1), 1e-5)
    for name in MLSTMState._fields:
        assert_close(f"state.{name}", getattr(s_full, name), getattr(s2, name), 1e-5)
    # the gradient reaches every parameter through both pieces
    (y1.sum() + y2.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_mlstm_state_shapes_and_bf16():
    layer = make().to(torch.bfloat16)
    state = layer.init_state(3)
    assert state.C.shape == (3, 2, 4, 8) and state.n.shape == (3, 2, 4) and state.m.shape == (3, 2)
    y, s = layer(torch.randn(3, 9, D_MODEL, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and s.C.dtype == torch.float32


def test_mlstm_rejects_bad_input():
    layer = make()
    with pytest.raises(ValueError, match="needs a state"):
        layer.step(torch.randn(1, D_MODEL), None)
    with pytest.raises(ValueError, match=r"state.C must have shape \[1, 2, 4, 8\]"):
        layer(
            torch.randn(1, 4, D_MODEL),
            layer.init_state(2)._replace(n=torch.zeros(1, 2, 4), m=torch.zeros(1, 2)),
        )
    with pytest.raises(TypeError, match="expects an MLSTMState"):
        layer(torch.randn(1, 4, D_MODEL), tuple(layer.init_state(1)))
    with pytest.raises(ValueError, match="num_heads=3 must divide"):
        MLSTM(D_MODEL, MLSTMConfig(num_heads=3))
    with pytest.raises(ValueError, match="chunk_size=0"):
        MLSTMConfig(chunk_size=0)
