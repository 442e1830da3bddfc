"""RevIN (round trip, NaN-aware statistics), PatchTST patching and the patch embedding."""

import numpy as np
import pytest
import torch

from zoo.domains.forecasting.layers import PatchEmbedding, Patching, RevIN, num_patches, sinusoidal_positions


def _series(batch=3, length=20, channels=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(1, 1, channels, generator=g) * 10 + 0.5
    offset = torch.randn(1, 1, channels, generator=g) * 50
    return torch.randn(batch, length, channels, generator=g) * scale + offset


def test_revin_round_trip_is_the_identity_with_a_learned_affine():
    x = _series()
    revin = RevIN(4)
    with torch.no_grad():  # a trained affine, not the identity one it starts with
        revin.weight.copy_(torch.tensor([0.5, 2.0, -1.5, 3.0]))
        revin.bias.copy_(torch.tensor([1.0, -2.0, 0.3, 0.0]))
    z, observed, stats = revin.normalise(x)
    assert observed.all()
    torch.testing.assert_close(revin.denormalise(z, stats), x, rtol=1e-5, atol=1e-4)
    # the trailing quantile axis of a quantile head is broadcast over
    quantiles = torch.stack([z, z + 1], dim=-1)
    back = revin.denormalise(quantiles, stats)
    torch.testing.assert_close(back[..., 0], x, rtol=1e-5, atol=1e-4)


def test_revin_without_affine_gives_zero_mean_unit_variance():
    z, _, _ = RevIN(4, affine=False).normalise(_series())
    torch.testing.assert_close(z.mean(1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(1, unbiased=False), torch.ones(3, 4), atol=1e-3, rtol=0)


def test_revin_statistics_ignore_missing_values_and_fill_them_with_the_mean():
    x = _series()
    x[0, 2:7, 1] = float("nan")
    x[2, ::3, 3] = float("nan")
    revin = RevIN(4, affine=False)
    z, observed, stats = revin.normalise(x)
    values = x.numpy()
    np.testing.assert_allclose(stats.mean[:, 0].numpy(), np.nanmean(values, axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats.std[:, 0].numpy(), np.sqrt(np.nanvar(values, axis=1) + revin.eps), rtol=1e-5)
    assert torch.equal(observed, ~torch.isnan(x))
    assert torch.isfinite(z).all() and (z[~observed] == 0).all(), "a missing value becomes the series mean (0)"
    torch.testing.assert_close(revin.denormalise(z, stats)[observed], x[observed], rtol=1e-5, atol=1e-4)


def test_revin_gradients_stay_finite_with_missing_values():
    x = _series()
    x[1, :5, 0] = float("nan")
    revin = RevIN(4)
    z, _, stats = revin.normalise(x)
    revin.denormalise(z * 2, stats).sum().backward()
    assert torch.isfinite(revin.weight.grad).all() and torch.isfinite(revin.bias.grad).all()


def test_revin_channel_with_no_observed_value_falls_back_to_mean_zero_std_one():
    x = _series()
    x[1, :, 2] = float("nan")
    z, observed, stats = RevIN(4).normalise(x)
    assert stats.mean[1, 0, 2] == 0 and stats.std[1, 0, 2] == 1
    assert not observed[1, :, 2].any() and torch.isfinite(z).all()
    assert stats.mean[0, 0, 2] != 0, "other rows of that channel keep their own statistics"


def test_revin_rejects_bad_inputs():
    revin = RevIN(4)
    with pytest.raises(ValueError, match=r"expects x \[B, L, 4\], got \(3, 20, 5\)"):
        revin.normalise(torch.randn(3, 20, 5))
    x = _series()
    x[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="1 infinite values; use NaN for missing"):
        revin.normalise(x)
    with pytest.raises(ValueError, match="num_channels must be positive"):
        RevIN(0)


@pytest.mark.parametrize(
    ("length", "patch_len", "stride"), [(96, 16, 8), (96, 16, 16), (33, 8, 4), (16, 16, 8), (7, 3, 5)]
)
def test_patch_count_formula_and_contents(length, patch_len, stride):
    x = torch.arange(2 * length, dtype=torch.float32).reshape(2, length)
    patches = Patching(patch_len, stride)(x)
    expected = (length - patch_len) // stride + 2
    assert num_patches(length, patch_len, stride) == expected
    assert patches.shape == (2, expected, patch_len)
    padded = torch.cat([x, x[:, -1:].expand(2, stride)], dim=1)  # the last value repeated stride times
    for n in range(expected):
        assert torch.equal(patches[:, n], padded[:, n * stride : n * stride + patch_len])


def test_patching_keeps_leading_axes_and_rejects_short_inputs():
    x = torch.randn(2, 3, 40)
    assert Patching(16, 8)(x).shape == (2, 3, 5, 16)
    torch.testing.assert_close(Patching(16, 8)(x)[1, 2], Patching(16, 8)(x[1, 2]))
    with pytest.raises(ValueError, match="seq_len=10 is shorter than patch_len=16"):
        Patching(16, 8)(torch.randn(2, 10))
    with pytest.raises(ValueError, match="must be positive"):
        Patching(0, 8)


def test_sinusoidal_positions():
    table = sinusoidal_positions(5, 6)
    assert table.shape == (5, 6)
    assert torch.equal(table[0, 0::2], torch.zeros(3)) and torch.equal(table[0, 1::2], torch.ones(3))
    torch.testing.assert_close(table[3, 0], torch.sin(torch.tensor(3.0)))
    assert sinusoidal_positions(4, 7).shape == (4, 7), "odd widths work"


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "none"])
def test_patch_embedding_positions(position):
    embedding = PatchEmbedding(6, 8, num_tokens=4, position=position)
    same = torch.ones(2, 4, 6)  # identical tokens: only a position code tells them apart
    out = embedding(same)
    assert out.shape == (2, 4, 8)
    assert torch.allclose(out[:, 0], out[:, 1]) == (position == "none")
    with pytest.raises(ValueError, match="expected 4 tokens, got 5"):
        embedding(torch.ones(2, 5, 6))
    with pytest.raises(ValueError, match="position='rope' is not one of"):
        PatchEmbedding(6, 8, 4, position="rope")
