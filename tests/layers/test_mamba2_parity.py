"""Parity with transformers' ``Mamba2Mixer`` (its CPU torch path) under the same random weights.

The official state dict loads into :class:`zoo.layers.mamba2.Mamba2` with ``strict=True`` and no key
renaming. States differ only in layout: transformers' conv cache keeps the last ``d_conv`` inputs, ours
the last ``d_conv - 1`` (the oldest one never meets a weight again), and its SSM state is
``[B, H, P, N]`` where ours is ``[B, H, N, P]``; both are compared after that conversion.
"""

import pytest
import torch
import transformers
from transformers.cache_utils import DynamicCache
from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

from zoo.layers.mamba2 import Mamba2, Mamba2Config, Mamba2State

D_MODEL, HEADS, HEADDIM, D_STATE, GROUPS, CHUNK = 32, 8, 8, 16, 2, 16


def official_config() -> "transformers.Mamba2Config":
    return transformers.Mamba2Config(
        hidden_size=D_MODEL,
        num_heads=HEADS,
        head_dim=HEADDIM,
        state_size=D_STATE,
        n_groups=GROUPS,
        expand=2,
        conv_kernel=4,
        chunk_size=CHUNK,
        use_bias=True,
        use_conv_bias=True,
        num_hidden_layers=1,
        vocab_size=16,
    )


def make_pair() -> tuple[Mamba2Mixer, Mamba2]:
    hf_config = official_config()
    theirs = Mamba2Mixer(hf_config, layer_idx=0).eval()
    with torch.no_grad():  # random everywhere (norm weight, D, biases too), so every path is compared
        for p in theirs.parameters():
            p.normal_(0, 0.3)
        theirs.A_log.uniform_(-1, 2)  # A in [-7.4, -0.37]
    config = Mamba2Config(
        d_state=D_STATE,
        d_conv=4,
        expand=2,
        headdim=HEADDIM,
        ngroups=GROUPS,
        chunk_size=CHUNK,
        bias=True,
        conv_bias=True,
        norm_eps=hf_config.layer_norm_epsilon,
    )
    ours = Mamba2(D_MODEL, config).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)  # the key map is the identity
    return theirs, ours


def assert_max_abs(name: str, expected: torch.Tensor, actual: torch.Tensor, tol: float = 1e-4) -> None:
    assert expected.shape == actual.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = float((expected - actual).abs().max())
    assert diff < tol, f"{name}: max abs diff {diff:.3e} >= {tol:.0e}"


def official_state(cache: DynamicCache) -> Mamba2State:
    """transformers' cache in our layout: the last ``d_conv-1`` conv inputs, the SSM state as [B,H,N,P]."""
    conv = cache.get_conv_state(0, state_idx=0)  # [B, conv_dim, d_conv]
    ssm = cache.get_recurrent_state(0, state_idx=0)  # [B, H, P, N]
    return Mamba2State(conv[..., 1:], ssm.transpose(-1, -2))


# T below, equal to and not a multiple of the chunk (transformers pads the last chunk itself)
@pytest.mark.parametrize("T", [5, 16, 37, 130], ids=lambda t: f"T{t}")
def test_mamba2_matches_transformers_mixer(T):
    theirs, ours = make_pair()
    x = torch.randn(2, T, D_MODEL)
    cache = DynamicCache(config=official_config())
    with torch.no_grad():
        y_ref = theirs(x)  # full sequence, no cache, no attention mask
        y_ref_cached = theirs(x, cache_params=cache)
        y, state = ours(x)
    assert_max_abs("y", y_ref, y)
    assert_max_abs("y (transformers with cache)", y_ref_cached, y)
    for name, expected, actual in zip(Mamba2State._fields, official_state(cache), state):
        assert_max_abs(f"state.{name}", expected, actual)


def test_mamba2_step_matches_transformers_decode():
    theirs, ours = make_pair()
    x = torch.randn(2, 23, D_MODEL)
    cache = DynamicCache(config=official_config())
    with torch.no_grad():
        theirs(x[:, :20], cache_params=cache)
        _, state = ours(x[:, :20])
        for t in range(20, 23):
            y_ref = theirs(x[:, t : t + 1], cache_params=cache)[:, 0]
            y_t, state = ours.step(x[:, t], state)
            assert_max_abs(f"y[{t}]", y_ref, y_t)
    for name, expected, actual in zip(Mamba2State._fields, official_state(cache), state):
        assert_max_abs(f"state.{name}", expected, actual)
