"""Attention-only baselines: the same pattern-built stack with every layer causal self-attention."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.attention import AttentionConfig
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig
from zoo.registry import Entry

PROT_TRANSFORMER_SMALL = Entry(
    name="prot-transformer-small",
    family="transformer",
    domain="protein",
    description="Attention baseline: 6 causal attention layers (RoPE, SwiGLU), d 128, the size of the protein SSMs",
    reference="A decoder-only protein LM (ProtGPT2 / ProGen style), scaled to prot-xlstm-small and protmamba-small",
    license="Apache-2.0",
    recipe="recipe://protein/prot-transformer-small/pretrain",
    card="prot-transformer-small.md",
    # Same width, depth and MLP as prot-xlstm-small, so the protein benchmark compares mixers at equal size.
    config=ModelConfig(
        vocab="protein",
        max_seq_len=131_072,
        backbone=BackboneConfig(
            d_model=128,
            pattern="A" * 6,
            mlp=MLPConfig(kind="swiglu", expand=2.0),
            mixers=MixerConfigs(attention=AttentionConfig(num_heads=4, causal=True, rotary=True)),
        ),
    ),
)

ENTRIES = (PROT_TRANSFORMER_SMALL,)
