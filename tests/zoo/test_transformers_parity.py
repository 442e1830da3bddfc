"""Whole-model parity: transformers' Mamba / Mamba-2 causal LMs load into SeqModel by identity and agree.

Module names of SeqModel follow transformers' ``*ForCausalLM`` (backbone.embeddings, backbone.layers.{i}.norm,
backbone.layers.{i}.mixer, backbone.norm_f, lm_head), so their state dicts load with ``strict=True`` unchanged.
"""

import torch
import transformers

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.mamba import MambaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.model import ModelConfig, SeqModel


def _compare(theirs, ours, length=37):
    theirs.eval()
    ours.eval()
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert not unexpected, unexpected
    assert missing == [] or missing == ["lm_head.weight"], missing  # tied head
    ids = torch.randint(7, 12, (2, length))
    with torch.no_grad():
        expected = theirs(ids).logits
        actual = ours(ids).logits
    assert (expected - actual).abs().max() < 1e-4


def test_mamba_causal_lm_matches_transformers():
    cfg = transformers.MambaConfig(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        state_size=8,
        expand=2,
        conv_kernel=4,
        tie_word_embeddings=True,
        use_cache=False,
    )
    theirs = transformers.MambaForCausalLM(cfg)
    with torch.no_grad():  # make every parameter non-trivial so a dropped term would show
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mixers = MixerConfigs(mamba=MambaConfig(d_state=8, expand=2, d_conv=4, chunk_size=8))
    ours = SeqModel(ModelConfig(backbone=BackboneConfig(d_model=32, pattern="MM", mixers=mixers)))
    _compare(theirs, ours)


def test_mamba2_causal_lm_matches_transformers():
    cfg = transformers.Mamba2Config(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_heads=8,
        head_dim=8,
        state_size=16,
        n_groups=2,
        expand=2,
        conv_kernel=4,
        chunk_size=16,
        tie_word_embeddings=True,
        use_cache=False,
    )
    theirs = transformers.Mamba2ForCausalLM(cfg)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mixers = MixerConfigs(mamba2=Mamba2Config(d_state=16, headdim=8, ngroups=2, expand=2, chunk_size=16))
    ours = SeqModel(ModelConfig(backbone=BackboneConfig(d_model=32, pattern="SS", mixers=mixers)))
    _compare(theirs, ours)
