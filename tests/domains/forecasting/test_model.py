"""PatchForecaster: shapes, channel independence and mixing, quantile monotonicity, missing values, input errors."""

import pytest
import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.forecasting.model import PatchForecaster
from zoo.layers.attention import AttentionConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.model import ModelConfig

B, L, H, C = 3, 32, 8, 4


# tiny matrices: one intra-op thread (the one_thread fixture of tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(pattern="A", causal=False) -> ModelConfig:
    """Layers of width 16: attention (bidirectional unless ``causal``, no rotary, as the entries) and/or Mamba-2."""
    mixers = MixerConfigs(
        attention=AttentionConfig(num_heads=2, causal=causal, rotary=False),
        mamba2=Mamba2Config(d_state=8, headdim=8, chunk_size=16),
    )
    return ModelConfig(vocab=None, max_seq_len=64, backbone=BackboneConfig(d_model=16, pattern=pattern, mixers=mixers))


def forecaster(**kwargs) -> PatchForecaster:
    settings = dict(seq_len=L, pred_len=H, num_channels=C, patch_len=8, stride=4, dropout=0.0)
    settings.update(kwargs)
    torch.manual_seed(0)
    return PatchForecaster(settings.pop("backbone", tiny()), **settings).eval()


def _x(seed=0, batch=B):
    return torch.randn(batch, L, C, generator=torch.Generator().manual_seed(seed)) * 3 + 5


@pytest.mark.parametrize("mode", ["independent", "mixing"])
def test_output_shapes(mode):
    assert forecaster(channel_mode=mode)(_x()).shape == (B, H, C)
    out = forecaster(channel_mode=mode, head="quantile", quantiles=(0.05, 0.5, 0.95, 0.99))(_x())
    assert out.shape == (B, H, C, 4)


def test_model_from_an_entry_name():
    model = PatchForecaster("attn-ts-small", seq_len=96, pred_len=24, num_channels=2)
    assert model.num_tokens == 12, "(96 - 16) // 8 + 2 patches"
    assert model(torch.randn(2, 96, 2)).shape == (2, 24, 2)


def test_independent_channels_do_not_see_each_other():
    model = forecaster()
    x = _x()
    other = x.clone()
    other[:, :, 1:] = torch.randn(B, L, C - 1) * 100  # every channel but 0 changes
    with torch.no_grad():
        assert torch.equal(model(x)[..., 0], model(other)[..., 0])
        assert not torch.equal(model(x)[..., 1], model(other)[..., 1])


def test_independent_mode_is_permutation_equivariant():
    model = forecaster(backbone=tiny("SA"))  # RevIN's affine starts equal for every channel
    x, perm = _x(), torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(x[..., perm]), model(x)[..., perm], rtol=1e-5, atol=1e-5)


def test_mixing_mode_reads_other_channels():
    model = forecaster(channel_mode="mixing")
    x = _x()
    other = x.clone()
    other[:, :, 1:] = torch.randn(B, L, C - 1) * 100
    with torch.no_grad():
        assert not torch.allclose(model(x)[..., 0], model(other)[..., 0])


def test_mixing_is_permutation_equivariant_only_for_bidirectional_attention():
    x, perm = _x(), torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        attention = forecaster(channel_mode="mixing")
        torch.testing.assert_close(attention(x[..., perm]), attention(x)[..., perm], rtol=1e-5, atol=1e-5)
        recurrent = forecaster(channel_mode="mixing", backbone=tiny("S"))  # reads the channels in column order
        assert not torch.allclose(recurrent(x[..., perm]), recurrent(x)[..., perm], atol=1e-4)
        with_codes = forecaster(channel_mode="mixing", position="learned")  # a learned code per column
        assert not torch.allclose(with_codes(x[..., perm]), with_codes(x)[..., perm], atol=1e-4)


@pytest.mark.parametrize("mode", ["independent", "mixing"])
def test_quantiles_are_monotone_even_with_a_negative_revin_scale(mode):
    model = forecaster(channel_mode=mode, head="quantile", quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))
    with torch.no_grad():
        model.revin.weight.copy_(torch.tensor([1.0, -1.0, 0.3, -2.0]))  # a negative scale flips the order
        torch.nn.init.normal_(model.head[-1].weight, std=1.0)  # large random head: raw quantiles cross
        out = model(_x())
    assert (out.diff(dim=-1) >= 0).all()
    assert model.point_forecast(out).shape == (B, H, C)
    assert torch.equal(model.point_forecast(out), out[..., 2]), "the median level is the point forecast"


def test_forecasts_follow_the_input_scale():
    model = forecaster()
    x = _x()
    with torch.no_grad():
        # RevIN makes the model equivariant to a per-series affine change of the input
        torch.testing.assert_close(model(x * 10 + 3), model(x) * 10 + 3, rtol=1e-4, atol=1e-3)


def test_missing_inputs_are_masked_not_propagated():
    model = forecaster().train()
    x = _x()
    x[0, 3:11, 2] = float("nan")
    x[2, -4:, 0] = float("nan")
    out = model(x)
    assert torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    filled = x.clone()
    filled[0, 3:11, 2] = 0.0
    with torch.no_grad():
        model.eval()
        assert not torch.allclose(model(x)[0, :, 2], model(filled)[0, :, 2]), "the mask tells NaN from a value"


def test_input_errors_name_the_problem():
    model = forecaster()
    with pytest.raises(ValueError, match="x has 5 channels; this model was built for num_channels=4"):
        model(torch.randn(2, L, 5))
    with pytest.raises(ValueError, match="look-back of 31 steps; this model reads seq_len=32"):
        model(torch.randn(2, 31, C))
    with pytest.raises(ValueError, match=r"x must have shape \[B, 32, 4\]"):
        model(torch.randn(L, C))
    with pytest.raises(TypeError, match="floating point"):
        model(torch.ones(2, L, C, dtype=torch.long))
    x = _x()
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN but revin=False"):
        forecaster(revin=False)(x)


def test_construction_errors():
    with pytest.raises(ValueError, match="channel_mode='both' is not one of"):
        forecaster(channel_mode="both")
    with pytest.raises(ValueError, match="head='median' is not one of"):
        forecaster(head="median")
    with pytest.raises(ValueError, match="strictly increasing"):
        forecaster(head="quantile", quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        forecaster(head="quantile", quantiles=(0.0, 0.5))
    with pytest.raises(ValueError, match="seq_len=32 is shorter than patch_len=64"):
        forecaster(patch_len=64)
    assert forecaster(seq_len=256).num_tokens == 64, "exactly the backbone's context fits"
    with pytest.raises(ValueError, match="65 tokens exceed the backbone's context of 64"):
        forecaster(seq_len=260)
    with pytest.raises(ValueError, match="'dna' vocabulary; forecasting needs a continuous-input model"):
        forecaster(backbone=ModelConfig(vocab="dna", backbone=BackboneConfig(d_model=16, pattern="A")))
    with pytest.raises(TypeError, match="backbone must be an entry name"):
        forecaster(backbone=3)
