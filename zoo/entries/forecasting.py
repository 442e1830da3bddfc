"""Forecasting backbones: continuous inputs (patch embeddings from the forecasting domain), no vocabulary."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.attention import AttentionConfig
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.model import ModelConfig
from zoo.registry import Entry, Weights

_CONTEXT = 1024  # patches or time steps of look-back the backbone accepts
_MLP = MLPConfig(kind="gelu", expand=2.0)
# Bidirectional attention: a forecaster encodes a look-back that is entirely in the past, and its flatten head
# reads every patch, so no patch needs to be hidden from another (PatchTST's encoder has no causal mask either).
# No rotary positions: over patches the forecaster adds a learned position code (as PatchTST), and over
# iTransformer-style variate tokens attention without positions treats the channels as a set.
_ATTENTION = AttentionConfig(num_heads=4, causal=False, rotary=False)
_MAMBA2 = Mamba2Config(d_state=64, headdim=32, expand=2, chunk_size=64)
#: sha256 of each shipped snapshot's model.safetensors: the whole ETTh1 forecaster (look-back 96, horizon 96)
#: trained by the entry's recipe, the best-validation checkpoint of `python benchmarks/forecasting.py` (seed 0),
#: exported by benchmarks/ship_forecasting_weights.sh. Shipped in the package until the seqzoo Hub organisation
#: publishes them as seqzoo/<entry>@v1.
_SHIPPED_SHA256 = {
    "attn-ts-small": "44952950caa40fa86122bad7570e975f496c862b2b257f79f7ecf3bc8ad592d6",
    "hyena-ts-small": "b96f5c5f7ce75621f4bf75023ef255199849a2b4c27bbcba7cc9eebd74ef6658",
    "mamba2-ts-small": "6e80ef28d9d0be2747672240a1aea8c711960480c8be6917de1a30ea9cdb0c32",
    "xlstm-ts-small": "cf3353cb3eaa52cf0bce13c8aea7e61935e662790c57142f3cbab8c971cc1519",
    "hybrid-ts-small": "e162f3ee24fa749a9eec6f43cf10dcdac81645750996413905576cb920e4e43d",
}


def _forecaster(name: str, family: str, pattern: str, mixers: MixerConfigs, description: str) -> Entry:
    return Entry(
        name=name,
        family=family,
        domain="forecasting",
        description=description,
        reference="channel-independent patch forecaster (PatchTST-style input) on a long-sequence backbone",
        license="Apache-2.0",
        card=f"{name}.md",
        # the ETTh1 look-back-96 / horizon-96 run; etth1-192, -336 and -720 beside it cover the other horizons
        recipe=f"recipe://forecasting/{name}/etth1-96",
        weights=Weights(repo_id=f"seqzoo/{name}", revision="v1", sha256=_SHIPPED_SHA256[name], bundled=True),
        config=ModelConfig(
            vocab=None,
            max_seq_len=_CONTEXT,
            backbone=BackboneConfig(d_model=128, pattern=pattern, mlp=_MLP, mixers=mixers),
        ),
    )


ENTRIES = (
    _forecaster(
        "hyena-ts-small",
        "hyena",
        "HHHH",
        MixerConfigs(hyena=HyenaConfig(l_max=_CONTEXT)),
        "Hyena forecasting backbone: 4 layers, d 128",
    ),
    _forecaster(
        "mamba2-ts-small",
        "mamba2",
        "SSSS",
        MixerConfigs(mamba2=_MAMBA2),
        "Mamba-2 forecasting backbone: 4 layers, d 128",
    ),
    _forecaster(
        "xlstm-ts-small",
        "xlstm",
        "msms",
        MixerConfigs(mlstm=MLSTMConfig(num_heads=4), slstm=SLSTMConfig(num_heads=4)),
        "xLSTM forecasting backbone: alternating mLSTM / sLSTM, 4 layers, d 128",
    ),
    _forecaster(
        "attn-ts-small",
        "transformer",
        "AAAA",
        MixerConfigs(attention=_ATTENTION),
        "Attention forecasting backbone: 4 bidirectional attention layers, d 128",
    ),
    _forecaster(
        "hybrid-ts-small",
        "hybrid",
        "SASA",
        MixerConfigs(mamba2=_MAMBA2, attention=_ATTENTION),
        "Hybrid forecasting backbone: Mamba-2 and bidirectional attention alternating, 4 layers, d 128",
    ),
)
