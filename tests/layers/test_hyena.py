import pytest
import torch

from zoo.layers.hyena import Hyena, HyenaConfig
from zoo.testing import assert_close

D_MODEL = 8


def make(order=2, l_max=64, **kwargs):
    torch.manual_seed(0)
    layer = Hyena(D_MODEL, HyenaConfig(order=order, filter_order=16, l_max=l_max, **kwargs))
    # the default filter bias is randn: shrink it so long products of gates stay O(1)
    with torch.no_grad():
        layer.filter_fn.bias.mul_(0.1)
    return layer


def official_forward(layer: Hyena, u: torch.Tensor) -> torch.Tensor:
    """HyenaDNA's HyenaOperator.forward written out: Conv1d + truncation, fftconv at 2T, gates."""
    d, T = layer.d_model, u.shape[1]
    z = layer.short_filter(layer.in_proj(u).transpose(1, 2))[..., :T]
    *x, v = z.split(d, dim=1)
    k = layer.filter_fn.filter(T).transpose(0, 1).reshape(layer.order - 1, d, T)
    bias = layer.filter_fn.bias.reshape(layer.order - 1, d)
    for o, x_i in enumerate(reversed(x[1:])):
        v = v * x_i
        n = 2 * T
        k_f = torch.fft.rfft(k[o], n=n) / n
        y = torch.fft.irfft(torch.fft.rfft(v, n=n) * k_f, n=n, norm="forward")[..., :T]
        v = y + v * bias[o].unsqueeze(-1)
    return layer.out_proj((v * x[0]).transpose(1, 2))


@pytest.mark.parametrize("order", [2, 3])
def test_hyena_matches_the_official_operator(order):
    layer = make(order)
    x = torch.randn(2, 37, D_MODEL)
    y, _ = layer(x)
    assert_close("y", official_forward(layer, x), y, 1e-5)


@pytest.mark.parametrize("order", [2, 3])
def test_hyena_forward_matches_step(order):
    layer = make(order, l_max=24)
    x = torch.randn(2, 23, D_MODEL)
    with torch.no_grad():
        y_full, s_full = layer(x)
        state = layer.init_state(2)
        ys = []
        for t in range(x.shape[1]):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-4)
    assert_close("state.conv", s_full.conv, state.conv, 1e-5)
    assert_close("state.history", s_full.history, state.history, 1e-5)


def test_hyena_pieces_with_state_equal_one_pass():
    layer = make(l_max=50)
    x = torch.randn(2, 41, D_MODEL)
    y_full, s_full = layer(x)
    y1, s1 = layer(x[:, :2])  # shorter than the short filter
    y2, s2 = layer(x[:, 2:27], s1)
    y3, s3 = layer(x[:, 27:], s2)
    assert_close("y", y_full, torch.cat([y1, y2, y3], 1), 1e-5)
    assert s3.history.shape[-1] == 41
    assert_close("state.history", s_full.history, s3.history, 1e-5)
    # the gradient reaches the implicit filter through every piece
    (y2.sum() + y3.sum()).backward()
    assert layer.filter_fn.implicit_filter[0].weight.grad.abs().sum() > 0


def test_hyena_state_is_bounded_past_l_max():
    layer = make(l_max=16)
    x = torch.randn(1, 40, D_MODEL)
    with torch.no_grad():
        y1, s = layer(x[:, :16])
        y2, s = layer(x[:, 16:30], s)
        y3, s = layer(x[:, 30:], s)
        assert s.history.shape[-1] == 15
        state = layer.init_state(1)
        ys = []
        for t in range(40):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    assert state.history.shape[-1] == 15
    assert_close("y (sliding window)", torch.cat([y1, y2, y3], 1), torch.stack(ys, 1), 1e-4)


def test_hyena_state_dict_has_the_official_names():
    layer = make()
    keys = set(layer.state_dict())
    expected = {
        "in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias",
        "short_filter.weight", "short_filter.bias",
        "filter_fn.bias", "filter_fn.pos_emb.z", "filter_fn.pos_emb.t", "filter_fn.modulation.deltas",
        "filter_fn.implicit_filter.0.weight", "filter_fn.implicit_filter.0.bias",
        "filter_fn.implicit_filter.1.freq", "filter_fn.implicit_filter.2.weight",
        "filter_fn.implicit_filter.2.bias", "filter_fn.implicit_filter.3.freq",
        "filter_fn.implicit_filter.4.weight", "filter_fn.implicit_filter.4.bias",
        "filter_fn.implicit_filter.5.freq", "filter_fn.implicit_filter.6.weight",
    }  # fmt: skip
    assert keys == expected
    assert tuple(layer.short_filter.weight.shape) == (3 * D_MODEL, 1, 3)
    assert tuple(layer.filter_fn.pos_emb.z.shape) == (1, 64, 5)


def test_hyena_filter_cache_follows_parameter_updates():
    layer = make()
    x = torch.randn(1, 20, D_MODEL)
    with torch.no_grad():
        y_a, _ = layer(x)
        layer.filter_fn.implicit_filter[6].weight.mul_(2.0)
        y_b, _ = layer(x)
    y_c, _ = layer(x)  # with autograd: computed afresh
    assert not torch.allclose(y_a, y_b)
    assert_close("y", y_c, y_b, 1e-6)


def test_hyena_rejects_inputs_longer_than_l_max():
    layer = make(l_max=16)
    with pytest.raises(ValueError, match="T=17 tokens but its filter has l_max=16"):
        layer(torch.randn(1, 17, D_MODEL))


def test_hyena_rejects_bad_inputs():
    layer = make()
    with pytest.raises(ValueError, match=r"state.conv must be \[2, 24, 2\]"):
        layer(torch.randn(2, 5, D_MODEL), layer.init_state(1))
    with pytest.raises(ValueError, match="order=1"):
        HyenaConfig(order=1)
    with pytest.raises(ValueError, match="emb_dim=4"):
        HyenaConfig(emb_dim=4)
