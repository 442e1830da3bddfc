"""Forecasting backbones: continuous inputs (patch embeddings from the forecasting domain), no vocabulary."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.model import ModelConfig
from zoo.registry import Entry

_CONTEXT = 1024  # patches or time steps of look-back the backbone accepts
_MLP = MLPConfig(kind="gelu", expand=2.0)


def _forecaster(name: str, family: str, pattern: str, mixers: MixerConfigs, description: str) -> Entry:
    return Entry(
        name=name,
        family=family,
        domain="forecasting",
        description=description,
        reference="channel-independent patch forecaster (PatchTST-style input) on a long-sequence backbone",
        license="Apache-2.0",
        card=f"{name}.md",
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
        MixerConfigs(mamba2=Mamba2Config(d_state=64, headdim=32, expand=2, chunk_size=64)),
        "Mamba-2 forecasting backbone: 4 layers, d 128",
    ),
    _forecaster(
        "xlstm-ts-small",
        "xlstm",
        "msms",
        MixerConfigs(mlstm=MLSTMConfig(num_heads=4), slstm=SLSTMConfig(num_heads=4)),
        "xLSTM forecasting backbone: alternating mLSTM / sLSTM, 4 layers, d 128",
    ),
)
