"""Whole-model parity with transformers: Mamba / Mamba-2 load by identity, xLSTM by a key rename.

Module names of SeqModel follow transformers' ``*ForCausalLM`` (backbone.embeddings, backbone.layers.{i}.norm,
backbone.layers.{i}.mixer, backbone.norm_f, lm_head), so their state dicts load with ``strict=True`` unchanged.
"""

import torch
import transformers

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.mamba import MambaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
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


def xlstm_state_dict_to_seqzoo(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename transformers' ``xLSTMModel`` keys to SeqModel's; the SwiGLU halves stack into ``fc1``."""
    out = {}
    for key, value in state.items():
        key = key.replace("blocks.", "layers.").replace("norm_mlstm", "norm").replace("mlstm_layer", "mixer")
        key = key.replace("norm_ffn", "norm_mlp").replace("ffn.proj_down", "mlp.fc2").replace("out_norm", "norm_f")
        if "ffn.proj_up" in key:
            continue
        out[f"backbone.{key}"] = value
    for key, value in state.items():
        if key.endswith("ffn.proj_up.weight"):
            prefix = key.removesuffix("ffn.proj_up.weight").replace("blocks.", "layers.")
            # Our gated MLP splits fc1's output into (value, gate) and computes value * silu(gate).
            gate = state[key.replace("proj_up", "proj_up_gate")]
            out[f"backbone.{prefix}mlp.fc1.weight"] = torch.cat([value, gate], dim=0)
    return out


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
    theirs = transformers.xLSTMModel(cfg).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    backbone = BackboneConfig(
        d_model=32,
        pattern="mm",
        norm_eps=1e-6,
        mlp=MLPConfig(kind="swiglu", expand=2.667, multiple_of=64),
        mixers=MixerConfigs(mlstm=MLSTMConfig(num_heads=2, chunk_size=16)),
    )
    ours = SeqModel(ModelConfig(backbone=backbone)).eval()
    missing, unexpected = ours.load_state_dict(xlstm_state_dict_to_seqzoo(theirs.state_dict()), strict=False)
    assert not unexpected and missing == ["lm_head.weight"], (missing, unexpected)
    ids = torch.randint(7, 12, (2, 37))
    with torch.no_grad():
        expected = theirs(ids).last_hidden_state
        actual = ours(ids).hidden
    assert (expected - actual).abs().max() < 1e-4
