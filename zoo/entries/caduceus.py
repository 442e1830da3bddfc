"""Caduceus: bidirectional, reverse-complement-equivariant Mamba for DNA (Schiff et al., 2024)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.mamba import MambaConfig
from zoo.model import ModelConfig
from zoo.registry import Entry

CADUCEUS_SMALL = Entry(
    name="caduceus-small",
    family="caduceus",
    domain="genomics",
    description="Caduceus-PS style: 8 bidirectional Mamba layers, d 128, RC-equivariant by parameter sharing",
    reference="kuleshov-group/caduceus-ps (BiMamba with tied in/out projections + RCPS), scaled down",
    license="Apache-2.0",
    recipe="recipe://genomics/caduceus-small/pretrain",
    card="caduceus-small.md",
    config=ModelConfig(
        vocab="dna",
        max_seq_len=131_072,
        rc_equivariant=True,
        backbone=BackboneConfig(
            d_model=128,
            pattern="M" * 8,
            bidirectional=True,
            tie_bidirectional_projections=True,
            mixers=MixerConfigs(mamba=MambaConfig(d_state=16, expand=2)),
        ),
    ),
)

ENTRIES = (CADUCEUS_SMALL,)
