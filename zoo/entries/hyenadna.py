"""HyenaDNA: Hyena long convolutions with single-nucleotide tokens (Nguyen et al., 2023)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig
from zoo.registry import Entry

HYENADNA_TINY = Entry(
    name="hyenadna-tiny",
    family="hyenadna",
    domain="genomics",
    description="HyenaDNA tiny: 2 Hyena layers, d 128, 1 kb context (the LongSafari tiny-1k architecture)",
    reference="LongSafari/hyenadna-tiny-1k-seqlen: 2 layers, d_model 128, d_inner 512, l_max 1026",
    license="Apache-2.0",
    recipe="recipe://genomics/hyenadna-tiny/pretrain",
    card="hyenadna-tiny.md",
    config=ModelConfig(
        vocab="dna",
        max_seq_len=1024,
        backbone=BackboneConfig(
            d_model=128,
            pattern="HH",
            norm="layernorm",
            residual_in_fp32=False,
            # HyenaDNA's MLP: 4x width, tanh-approximated GELU, with biases.
            mlp=MLPConfig(kind="gelu_tanh", expand=4.0, bias=True),
            # l_max counts the two special tokens around a 1,024-nucleotide window.
            mixers=MixerConfigs(
                hyena=HyenaConfig(l_max=1026, filter_order=64, emb_dim=5, short_filter_order=3, w=10.0)
            ),
        ),
    ),
)

ENTRIES = (HYENADNA_TINY,)
