"""Bio-xLSTM style models: mLSTM (and sLSTM) stacks for DNA and proteins (Schmidinger et al., 2024)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.model import ModelConfig
from zoo.registry import Entry, Weights

DNA_XLSTM_SMALL = Entry(
    name="dna-xlstm-small",
    family="xlstm",
    domain="genomics",
    description="DNA-xLSTM style: mLSTM layers with one sLSTM in four, d 128, 32 kb context",
    reference="Bio-xLSTM DNA-xLSTM (mLSTM + sLSTM blocks), scaled down",
    license="Apache-2.0",
    recipe="recipe://genomics/dna-xlstm-small/pretrain-corpus",
    card="dna-xlstm-small.md",
    # Trained by the recipe above on dna-corpus (45 min on one core of a 2-core EPYC); shipped in the package
    # until the seqzoo Hub organisation publishes it as seqzoo/dna-xlstm-small@v1.
    weights=Weights(
        repo_id="seqzoo/dna-xlstm-small",
        revision="v1",
        sha256="f8a50146f4b7b64073a204ca9a7bc3db2ef4ab89f78d5bcc60da757d514e3220",
        bundled=True,
    ),
    config=ModelConfig(
        vocab="dna",
        max_seq_len=32_768,
        backbone=BackboneConfig(
            d_model=128,
            pattern="mmsmmmsm",
            mlp=MLPConfig(kind="swiglu", expand=2.0),
            mixers=MixerConfigs(mlstm=MLSTMConfig(num_heads=4), slstm=SLSTMConfig(num_heads=4)),
        ),
    ),
)

PROT_XLSTM_SMALL = Entry(
    name="prot-xlstm-small",
    family="xlstm",
    domain="protein",
    description="Prot-xLSTM style: 6 mLSTM layers, d 128, homologs-as-context protein LM",
    reference="Bio-xLSTM Prot-xLSTM (mLSTM-only, fill-in-the-middle over homologs), scaled down",
    license="Apache-2.0",
    recipe="recipe://protein/prot-xlstm-small/pretrain",
    card="prot-xlstm-small.md",
    config=ModelConfig(
        vocab="protein",
        max_seq_len=131_072,
        backbone=BackboneConfig(
            d_model=128,
            pattern="m" * 6,
            mlp=MLPConfig(kind="swiglu", expand=2.0),
            mixers=MixerConfigs(mlstm=MLSTMConfig(num_heads=4)),
        ),
    ),
)

ENTRIES = (DNA_XLSTM_SMALL, PROT_XLSTM_SMALL)
