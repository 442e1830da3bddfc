"""zoo.layers.norm.RMSNorm: a drop-in for torch.nn.RMSNorm (same key, same math) with a fused residual add."""

import torch
from torch import nn

from zoo.backbone import BackboneConfig, Block
from zoo.layers.mlp import MLPConfig
from zoo.layers.norm import RMSNorm
from zoo.testing import assert_close


def test_rms_norm_matches_torch_and_keeps_its_state_dict_key():
    ours, theirs = RMSNorm(24, eps=1e-6), nn.RMSNorm(24, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
    theirs.load_state_dict(ours.state_dict())  # strict: same keys and shapes
    x = torch.randn(3, 5, 24)
    assert_close("y", theirs(x), ours(x), rtol=1e-6)


def test_add_and_norm_is_norm_of_the_sum_and_returns_the_sum():
    norm = RMSNorm(16)
    with torch.no_grad():
        norm.weight.normal_()
    x, residual = torch.randn(2, 7, 16, dtype=torch.bfloat16), torch.randn(2, 7, 16)
    h, r = norm.add_and_norm(x, residual)
    expected_r = x.float() + residual
    assert r.dtype == torch.float32 and torch.equal(r, expected_r)
    assert h.dtype == torch.bfloat16
    assert_close("h", norm(expected_r).to(torch.bfloat16), h, rtol=1e-2)


def test_block_with_mlp_fuses_the_residual_add_without_changing_the_result():
    torch.manual_seed(0)
    config = BackboneConfig(pattern="S", d_model=32, mlp=MLPConfig())
    block = Block("mamba2", config)
    x = torch.randn(2, 9, 32)
    y, _ = block(x)
    mixer_out, _ = block.mixer(block.norm(x))
    r = x + mixer_out
    expected = r + block.mlp(block.norm_mlp(r))
    assert_close("block", expected, y, rtol=1e-6)
