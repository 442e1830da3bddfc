"""Whole-model parity with transformers, through the converters' config and key maps (zoo.hub.convert).

Mamba / Mamba-2 load by identity (SeqModel's module names follow transformers' ``*ForCausalLM``: backbone.embeddings,
backbone.layers.{i}.norm, backbone.layers.{i}.mixer, backbone.norm_f, lm_head); xLSTM by the converter's key rename.
tests/hub/test_convert_transformers.py runs the same models through whole checkpoint folders.
"""

import torch
import transformers

from zoo.hub.convert import mamba, mamba2, xlstm
from zoo.model import SeqModel


def _perturb(theirs):
    with torch.no_grad():  # make every parameter non-trivial so a dropped term would show
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return theirs.eval()


def _compare(theirs, ours, length=37):
    ours.eval()
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert not unexpected, unexpected
    assert missing == [] or missing == ["lm_head.weight"], missing  # tied head
    ids = torch.randint(0, theirs.config.vocab_size, (2, length))
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
    theirs = _perturb(transformers.MambaForCausalLM(cfg))
    ours = SeqModel(mamba.model_config(cfg.to_dict()))
    assert ours.config.backbone.pattern == "MM" and ours.config.backbone.mixers.mamba.d_state == 8
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
    theirs = _perturb(transformers.Mamba2ForCausalLM(cfg))
    ours = SeqModel(mamba2.model_config(cfg.to_dict()))
    assert ours.config.backbone.pattern == "SS" and ours.config.backbone.mixers.mamba2.ngroups == 2
    _compare(theirs, ours)


def test_xlstm_model_matches_transformers():
    cfg = transformers.xLSTMConfig(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_heads=2,
        mode="inference",
        autocast_kernel_dtype="float32",
        chunkwise_kernel="chunkwise--native_autograd",
        sequence_kernel="native_sequence__native",
        step_kernel="native",
        chunk_size=16,
        use_cache=False,
    )
    theirs = _perturb(transformers.xLSTMModel(cfg))
    ours = SeqModel(xlstm.model_config(cfg.to_dict())).eval()
    missing, unexpected = ours.load_state_dict(xlstm.state_dict_to_seqzoo(theirs.state_dict()), strict=False)
    assert not unexpected and missing == ["lm_head.weight"], (missing, unexpected)
    ids = torch.randint(0, 16, (2, 37))
    with torch.no_grad():
        expected = theirs(ids).last_hidden_state
        actual = ours(ids).hidden
    assert (expected - actual).abs().max() < 1e-4
