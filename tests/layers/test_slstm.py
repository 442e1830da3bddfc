import pytest
import torch

from zoo.layers.slstm import SLSTM, SLSTMConfig, SLSTMState
from zoo.testing import assert_close

D_MODEL = 16


def make(conv1d_kernel_size=4, **kwargs):
    torch.manual_seed(0)
    layer = SLSTM(D_MODEL, SLSTMConfig(num_heads=4, conv1d_kernel_size=conv1d_kernel_size, **kwargs))
    with torch.no_grad():  # the default init zeroes the recurrent kernel: make the recurrence matter
        layer.slstm_cell._recurrent_kernel_.normal_(std=0.3)
        layer.group_norm.weight.normal_(std=0.3)
    return layer


def assert_state_close(ref: SLSTMState, actual: SLSTMState, rtol: float) -> None:
    for name, a, b in zip(SLSTMState._fields, ref, actual):
        if a.numel():
            assert_close(f"state.{name}", a, b, rtol)
        else:
            assert a.shape == b.shape


@pytest.mark.parametrize("conv1d_kernel_size", [4, 0], ids=["conv4", "noconv"])
def test_slstm_forward_matches_step(conv1d_kernel_size):
    layer = make(conv1d_kernel_size)
    x = torch.randn(2, 19, D_MODEL)
    with torch.no_grad():
        y_full, s_full = layer(x)
        state = layer.init_state(2)
        ys = []
        for t in range(x.shape[1]):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    assert y_full.shape == x.shape
    assert_close("y", y_full, torch.stack(ys, 1), 1e-4)
    assert_state_close(s_full, state, 1e-4)


@pytest.mark.parametrize("conv1d_kernel_size", [4, 0], ids=["conv4", "noconv"])
def test_slstm_pieces_with_state_equal_one_pass(conv1d_kernel_size):
    layer = make(conv1d_kernel_size)
    x = torch.randn(2, 33, D_MODEL)
    y_full, s_full = layer(x)
    y1, s1 = layer(x[:, :2])  # shorter than the conv
    y2, s2 = layer(x[:, 2:], s1)
    assert_close("y", y_full, torch.cat([y1, y2], 1), 1e-5)
    assert_state_close(s_full, s2, 1e-5)
    # the gradient reaches every parameter through both pieces
    (y1.sum() + y2.square().sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_slstm_init_state_and_default_config():
    layer = SLSTM(D_MODEL)
    state = layer.init_state(3)
    assert isinstance(state, SLSTMState)
    assert state.conv.shape == (3, D_MODEL, 3)
    assert all(s.shape == (3, 4, 4) and s.dtype == torch.float32 for s in state[1:])
    y, _ = layer(torch.randn(3, 5, D_MODEL), state)
    assert y.shape == (3, 5, D_MODEL)
    # NX-AI's power-law init of the forget-gate bias (gate slot 1): from +5 down to -7 across channels
    f_bias = layer.slstm_cell.bias[1]
    assert_close(
        "f_bias",
        torch.tensor([5.0, 5.0 - 12.0 * (1 / 3) ** 0.3, 5.0 - 12.0 * (2 / 3) ** 0.3, -7.0]),
        f_bias[0],
        1e-6,
    )
    assert layer.slstm_cell.recurrent_kernel.abs().sum() == 0
    names = {name for name, _ in layer.named_parameters()}
    assert names == {
        "conv1d.conv.weight", "conv1d.conv.bias", "fgate.weight", "igate.weight", "zgate.weight",
        "ogate.weight", "slstm_cell._recurrent_kernel_", "slstm_cell._bias_", "group_norm.weight",
    }  # fmt: skip


def test_slstm_bf16_weights_run_the_cell_in_fp32():
    layer = make().to(torch.bfloat16)
    x = torch.randn(1, 9, D_MODEL, dtype=torch.bfloat16)
    y, state = layer(x)
    assert y.dtype == torch.bfloat16
    assert state.c.dtype == torch.float32
    assert torch.isfinite(y.float()).all()


def test_slstm_rejects_bad_input():
    layer = make()
    with pytest.raises(ValueError, match="needs a state"):
        layer.step(torch.randn(2, D_MODEL), None)
    with pytest.raises(ValueError, match="state is for batch 3"):
        layer(torch.randn(2, 5, D_MODEL), layer.init_state(3))
    with pytest.raises(ValueError, match="num_heads=3 must divide d_model=16"):
        SLSTM(D_MODEL, SLSTMConfig(num_heads=3))
    with pytest.raises(ValueError, match="bias_init='ones'"):
        SLSTMConfig(bias_init="ones")
