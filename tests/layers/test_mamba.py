import pytest
import torch

from zoo.layers.mamba import Mamba, MambaConfig, MambaState
from zoo.testing import assert_close

D_MODEL = 16


def make(**kwargs):
    torch.manual_seed(0)
    return Mamba(D_MODEL, MambaConfig(d_state=4, chunk_size=8, **kwargs))


def test_mamba_module_tree_and_init():
    layer = make()
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (64, 16),
        "conv1d.weight": (32, 1, 4),
        "conv1d.bias": (32,),
        "x_proj.weight": (1 + 8, 32),
        "dt_proj.weight": (32, 1),
        "dt_proj.bias": (32,),
        "A_log": (32, 4),
        "D": (32,),
        "out_proj.weight": (16, 32),
    }
    assert torch.equal(layer.A_log[3].exp(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.equal(layer.D, torch.ones(32))
    dt = torch.nn.functional.softplus(layer.dt_proj.bias)
    assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert Mamba(48, MambaConfig()).dt_rank == 3  # ceil(48 / 16)


@pytest.mark.parametrize("T", [1, 5, 23])
def test_mamba_forward_matches_step(T):
    layer = make()
    x = torch.randn(2, T, D_MODEL)
    with torch.no_grad():
        y_full, s_full = layer(x)
        state = layer.init_state(2)
        ys = []
        for t in range(T):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-4)
    assert_close("state.conv", s_full.conv, state.conv, 1e-5)
    assert_close("state.ssm", s_full.ssm, state.ssm, 1e-4)


def test_mamba_pieces_with_state_equal_one_pass():
    layer = make()
    x = torch.randn(2, 29, D_MODEL)
    with torch.no_grad():
        y_full, s_full = layer(x)
        y1, s1 = layer(x[:, :2])  # shorter than the conv width
        y2, s2 = layer(x[:, 2:], s1)
    assert isinstance(s2, MambaState)
    assert_close("y", y_full, torch.cat([y1, y2], 1), 1e-5)
    assert_close("state.conv", s_full.conv, s2.conv, 1e-6)
    assert_close("state.ssm", s_full.ssm, s2.ssm, 1e-5)


def test_mamba_backward_reaches_every_parameter():
    layer = make()
    y, _ = layer(torch.randn(2, 11, D_MODEL))
    y.square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_mamba_bf16_forward():
    layer = make()
    x = torch.randn(2, 13, D_MODEL)
    with torch.no_grad():
        y_ref, _ = layer(x)
        y, state = layer.to(torch.bfloat16)(x.bfloat16())
    assert y.dtype == torch.bfloat16 and state.ssm.dtype == torch.float32
    assert_close("y", y_ref, y, 3e-2)


def test_mamba_rejects_bad_input():
    layer = make()
    with pytest.raises(ValueError, match="expects x of shape"):
        layer(torch.randn(5, D_MODEL))
    with pytest.raises(ValueError, match="needs a state"):
        layer.step(torch.randn(2, D_MODEL), None)
    with pytest.raises(ValueError, match=r"state.ssm must be \[B, d_inner, N\]"):
        layer(torch.randn(2, 5, D_MODEL), layer.init_state(2)._replace(ssm=torch.zeros(2, 32, 5)))
    with pytest.raises(ValueError, match=r"state.conv must be"):
        layer.step(torch.randn(3, D_MODEL), layer.init_state(2))
    with pytest.raises(TypeError, match="MambaState"):
        layer(torch.randn(2, 5, D_MODEL), (torch.zeros(1), torch.zeros(1)))


def test_mamba_config_validation():
    with pytest.raises(ValueError, match="d_state=0"):
        MambaConfig(d_state=0)
    with pytest.raises(ValueError, match="dt_rank=0"):
        MambaConfig(dt_rank=0)
    with pytest.raises(ValueError, match=r"dt_min=0\.5"):
        MambaConfig(dt_min=0.5, dt_max=0.1)
    with pytest.raises(ValueError, match="dt_init='normal'"):
        MambaConfig(dt_init="normal")
