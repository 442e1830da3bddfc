"""Parity with transformers' Mamba (``MambaMixer``, its CPU torch path) on the same random weights.

The official state dict loads into :class:`zoo.layers.mamba.Mamba` with ``strict=True`` and no key
renaming. One representational difference: transformers' conv cache keeps the last ``d_conv`` inputs,
ours the last ``d_conv - 1`` (the oldest one never meets a weight), so the conv states are compared
on those last ``d_conv - 1`` columns.
"""

import pytest
import torch
import transformers
from transformers.cache_utils import DynamicCache

from zoo.layers.mamba import Mamba, MambaConfig
from zoo.testing import assert_close

D_MODEL, N, W, R = 16, 4, 4, 3


def official_model(bias: bool) -> "transformers.MambaModel":
    torch.manual_seed(0)
    config = transformers.MambaConfig(
        vocab_size=32,
        hidden_size=D_MODEL,
        state_size=N,
        conv_kernel=W,
        expand=2,
        num_hidden_layers=2,
        time_step_rank=R,
        use_bias=bias,
        use_conv_bias=True,
    )
    return transformers.MambaModel(config).eval()


def ours_from(mixer: torch.nn.Module, bias: bool) -> Mamba:
    layer = Mamba(D_MODEL, MambaConfig(d_state=N, d_conv=W, dt_rank=R, bias=bias, chunk_size=8))
    layer.load_state_dict(mixer.state_dict(), strict=True)  # the key map is the identity
    return layer.eval()


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_mamba_matches_transformers_mixer(bias):
    model = official_model(bias)
    x = torch.randn(2, 37, D_MODEL)
    with torch.no_grad():
        for block in model.layers:
            y_ref = block.mixer(x)
            y, _ = ours_from(block.mixer, bias)(x)
            assert float((y - y_ref).abs().max()) < 1e-4
            assert_close("y", y_ref, y, 1e-5)


def test_mamba_step_matches_transformers_cached_decoding():
    model = official_model(bias=False)
    mixer = model.layers[0].mixer
    ours = ours_from(mixer, bias=False)
    x = torch.randn(2, 20, D_MODEL)
    prompt = 12
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        refs = [mixer(x[:, :prompt], cache_params=cache)]
        y, state = ours(x[:, :prompt])
        assert_close("prefill y", refs[0], y, 1e-5)
        assert_close("prefill ssm state", cache.get_recurrent_state(0, state_idx=0), state.ssm, 1e-5)
        assert_close("prefill conv state", cache.get_conv_state(0, state_idx=0)[..., 1:], state.conv, 1e-6)
        ys = []
        for t in range(prompt, x.shape[1]):
            refs.append(mixer(x[:, t : t + 1], cache_params=cache))
            y_t, state = ours.step(x[:, t], state)
            ys.append(y_t)
        y_ref = torch.cat(refs[1:], 1)
        assert float((torch.stack(ys, 1) - y_ref).abs().max()) < 1e-4
        assert_close("ssm state", cache.get_recurrent_state(0, state_idx=0), state.ssm, 1e-5)
        assert_close("conv state", cache.get_conv_state(0, state_idx=0)[..., 1:], state.conv, 1e-6)
