"""ProtMamba: a Mamba protein language model over concatenated homologs (Sgarbossa et al., 2024)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.mamba import MambaConfig
from zoo.model import ModelConfig
from zoo.registry import Entry

PROTMAMBA_SMALL = Entry(
    name="protmamba-small",
    family="protmamba",
    domain="protein",
    description="ProtMamba style: 8 Mamba layers, d 128, homologs-as-context protein LM",
    reference="ProtMamba (Mamba-1 blocks, no MLP, fill-in-the-middle over homologs), scaled down",
    license="Apache-2.0",
    recipe="recipe://protein/protmamba-small/pretrain",
    card="protmamba-small.md",
    config=ModelConfig(
        vocab="protein",
        max_seq_len=131_072,
        backbone=BackboneConfig(
            d_model=128, pattern="M" * 8, mixers=MixerConfigs(mamba=MambaConfig(d_state=16))
        ),
    ),
)

ENTRIES = (PROTMAMBA_SMALL,)
