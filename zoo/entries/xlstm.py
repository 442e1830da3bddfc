"""Bio-xLSTM style models: mLSTM (and sLSTM) stacks for DNA and proteins (Schmidinger et al., 2024)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import xlstm as xlstm_convert
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.model import ModelConfig
from zoo.registry import Entry, Weights, official_entry

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


#: The published ``config.json`` of NX-AI/xLSTM-7b (the fields the converter reads; kernel choices such as
#: ``chunkwise_kernel`` change no value and are left out)
XLSTM_7B_CONFIG = {
    "model_type": "xlstm", "embedding_dim": 4096, "num_blocks": 32, "num_heads": 8, "vocab_size": 50304,
    "qk_dim_factor": 0.5, "v_dim_factor": 1.0, "ffn_proj_factor": 2.667, "ffn_round_up_to_multiple_of": 64,
    "gate_soft_cap": 15.0, "output_logit_soft_cap": 30.0, "chunk_size": 64, "weight_mode": "single",
    "use_bias": False, "add_out_norm": True, "norm_eps": 1e-6, "norm_reduction_force_float32": True,
    "tie_word_embeddings": False,
}  # fmt: skip

XLSTM_7B = official_entry(
    name="xlstm-7b",
    family="xlstm",
    domain="language",
    description="Official xLSTM 7B (NX-AI, 2.3T tokens of text and code, GPT-NeoX tokens), 32 mLSTM blocks, d 4096",
    license="Apache-2.0",
    config=xlstm_convert.model_config(XLSTM_7B_CONFIG),
    # The revision other public projects pin (cache snapshots of runs with transformers 5); the weights are
    # sharded, so there is no single published model.safetensors digest to check.
    weights=Weights(repo_id="NX-AI/xLSTM-7b", revision="9dc507bd0939cf372a4a4f667335651d8e49dddb", source="xlstm"),
    layout="transformers checkpoint (sharded safetensors)",
)

ENTRIES = (DNA_XLSTM_SMALL, PROT_XLSTM_SMALL, XLSTM_7B)
