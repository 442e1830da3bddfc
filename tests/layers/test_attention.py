import math

import pytest
import torch

from zoo.layers.attention import Attention, AttentionConfig
from zoo.testing import assert_close

D_MODEL = 16


def make(**kwargs):
    torch.manual_seed(0)
    return Attention(D_MODEL, AttentionConfig(**kwargs))


def explicit_attention(layer: Attention, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(Dh) + mask) V with NeoX rotary and repeated kv heads, written out."""
    B, T, _ = x.shape
    H, Hkv, Dh = layer.num_heads, layer.num_kv_heads, layer.head_dim
    w, b = layer.in_proj.weight, layer.in_proj.bias
    qkv = x @ w.T + (b if b is not None else 0)
    q = qkv[..., : H * Dh].reshape(B, T, H, Dh)
    k = qkv[..., H * Dh : (H + Hkv) * Dh].reshape(B, T, Hkv, Dh)
    v = qkv[..., (H + Hkv) * Dh :].reshape(B, T, Hkv, Dh)
    cfg = layer.config
    if cfg.rotary:
        r = layer.rotary_dim
        pos = torch.arange(T, dtype=torch.float64)
        inv_freq = torch.tensor([cfg.rope_theta ** (-2 * i / r) for i in range(r // 2)], dtype=torch.float64)
        cos = torch.cos(pos[:, None] * inv_freq)[None, :, None].float()  # [1, T, 1, r/2]
        sin = torch.sin(pos[:, None] * inv_freq)[None, :, None].float()

        def rope(t):
            a, c, rest = t[..., : r // 2], t[..., r // 2 : r], t[..., r:]
            return torch.cat([a * cos - c * sin, c * cos + a * sin, rest], dim=-1)

        q, k = rope(q), rope(k)
    group = H // Hkv
    scale = cfg.softmax_scale if cfg.softmax_scale is not None else 1 / math.sqrt(Dh)
    out = torch.empty(B, T, H, Dh)
    for h in range(H):
        scores = torch.einsum("btd,bsd->bts", q[:, :, h], k[:, :, h // group]) * scale
        if cfg.causal:
            scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        out[:, :, h] = torch.softmax(scores, dim=-1) @ v[:, :, h // group]
    y = out.reshape(B, T, H * Dh) @ layer.out_proj.weight.T
    return y + layer.out_proj.bias if layer.out_proj.bias is not None else y


CASES = [
    dict(num_heads=4),
    dict(num_heads=4, num_kv_heads=2),
    dict(num_heads=4, num_kv_heads=1, causal=False),
    dict(num_heads=2, causal=False, rotary=False, qkv_bias=False, out_bias=False),
    dict(num_heads=2, num_kv_heads=1, rotary_dim=4, softmax_scale=0.3, rope_theta=500.0),
    dict(num_heads=2, head_dim=6),
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_attention_matches_explicit_softmax(kwargs, nan_poisoned_empty):
    layer = make(**kwargs)
    x = torch.randn(2, 13, D_MODEL)
    y, cache = layer(x)
    assert_close("y", explicit_attention(layer, x), y, 1e-5)
    assert cache.k.shape == (2, layer.num_kv_heads, 13, layer.head_dim) and int(cache.seen) == 13


@pytest.mark.parametrize("num_kv_heads", [4, 2], ids=["MHA", "GQA"])
def test_attention_forward_matches_step(num_kv_heads):
    layer = make(num_heads=4, num_kv_heads=num_kv_heads)
    x = torch.randn(2, 11, D_MODEL)
    with torch.no_grad():
        y_full, cache_full = layer(x)
        cache = layer.init_state(2)
        ys = []
        for t in range(x.shape[1]):
            y_t, cache = layer.step(x[:, t], cache)
            ys.append(y_t)
    assert_close("y", y_full, torch.stack(ys, 1), 1e-4)
    assert_close("cache.k", cache_full.k, cache.k, 1e-5)
    assert_close("cache.v", cache_full.v, cache.v, 1e-5)
    assert int(cache.seen) == 11


def test_attention_pieces_with_cache_equal_one_pass():
    layer = make(num_heads=4, num_kv_heads=2)
    x = torch.randn(2, 23, D_MODEL)
    y_full, _ = layer(x)
    y1, c1 = layer(x[:, :1])
    y2, c2 = layer(x[:, 1:15], c1)
    y3, c3 = layer(x[:, 15:], c2)
    assert_close("y", y_full, torch.cat([y1, y2, y3], 1), 1e-5)
    assert c3.k.shape[2] == 23 and int(c3.seen) == 23


def test_attention_state_dict_has_mamba_ssm_mha_names():
    layer = make(num_heads=4, num_kv_heads=2)
    assert set(layer.state_dict()) == {"in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias"}
    assert tuple(layer.in_proj.weight.shape) == ((4 + 2 * 2) * 4, D_MODEL)


def test_bidirectional_attention_has_no_step():
    layer = make(num_heads=4, causal=False)
    assert not layer.causal and Attention.causal
    with pytest.raises(RuntimeError, match="bidirectional"):
        layer.step(torch.randn(1, D_MODEL), layer.init_state(1))
    _, cache = layer(torch.randn(1, 3, D_MODEL))
    with pytest.raises(ValueError, match="cannot continue from a cache"):
        layer(torch.randn(1, 3, D_MODEL), cache)


def test_attention_rejects_bad_inputs():
    layer = make(num_heads=4)
    with pytest.raises(ValueError, match=r"cache.k must be \[2, 4, S, 4\]"):
        layer(torch.randn(2, 5, D_MODEL), layer.init_state(1))
    with pytest.raises(ValueError, match="multiple of num_kv_heads=3"):
        make(num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        make(num_heads=3)
    with pytest.raises(ValueError, match="rotary_dim=3"):
        make(num_heads=4, rotary_dim=3)
