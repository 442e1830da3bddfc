"""HybriDNA-style hybrids: Mamba-2 (SSD) layers with one attention layer in four (Ma et al., 2025)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.attention import AttentionConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig
from zoo.registry import Entry

HYBRIDNA_SMALL = Entry(
    name="hybridna-small",
    family="hybridna",
    domain="genomics",
    description="Mamba-2 + attention hybrid (3:1), 8 layers, d 256, single-nucleotide tokens, 131 kb context design",
    reference="HybriDNA (Mishamq/HybriDNA-300M): Mamba-2 blocks interleaved with attention, scaled down",
    license="Apache-2.0",
    recipe="recipe://genomics/hybridna-small/pretrain",
    card="hybridna-small.md",
    config=ModelConfig(
        vocab="dna",
        max_seq_len=131_072,
        backbone=BackboneConfig(
            d_model=256,
            pattern="SSSASSSA",
            mlp=MLPConfig(kind="swiglu", expand=2.0),
            mixers=MixerConfigs(
                mamba2=Mamba2Config(d_state=64, headdim=32, expand=2, chunk_size=128),
                attention=AttentionConfig(num_heads=8, causal=True, rotary=True),
            ),
        ),
    ),
)

ENTRIES = (HYBRIDNA_SMALL,)
