"""HyenaDNA: Hyena long convolutions with single-nucleotide tokens (Nguyen et al., 2023)."""

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert.hyenadna import hf_model_config
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mlp import MLPConfig
from zoo.model import ModelConfig
from zoo.registry import Entry, Weights, official_entry

HYENADNA_TINY = Entry(
    name="hyenadna-tiny",
    family="hyenadna",
    domain="genomics",
    description="HyenaDNA tiny: 2 Hyena layers, d 128, 1 kb context (the LongSafari tiny-1k architecture)",
    reference="LongSafari/hyenadna-tiny-1k-seqlen: 2 layers, d_model 128, d_inner 512, l_max 1026",
    license="Apache-2.0",
    recipe="recipe://genomics/hyenadna-tiny/pretrain-corpus",
    card="hyenadna-tiny.md",
    # Trained by the recipe above on dna-corpus (42 min on one core of a 2-core EPYC); shipped in the package
    # until the seqzoo Hub organisation publishes it as seqzoo/hyenadna-tiny@v1.
    weights=Weights(
        repo_id="seqzoo/hyenadna-tiny",
        revision="v1",
        sha256="082ff66ef21eb45bdac546e7c64d75d8dd006abef1a8c4e7d50eff5e354666cd",
        bundled=True,
    ),
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



def _official(size: str, repo: str, revision: str, sha256: str | None, d_model: int, n_layer: int, l_max: int) -> Entry:
    """An entry for a LongSafari ``*-seqlen-hf`` checkpoint, converted on load.

    The architecture is built by the converter from the repo's ``config.json`` fields (the HyenaDNA paper's
    configs: emb_dim 5, filter_order 64, activation_freq 10, d_inner 4 d_model), so ``pretrained=False`` and a
    download agree. The -hf model keeps an untied ``lm_head``. Revisions and checksums are the ones other
    public projects pin for these repos (the Hub is not reachable from here to re-read them).
    """
    config = {
        "model_type": "hyenadna", "d_model": d_model, "n_layer": n_layer, "d_inner": 4 * d_model,
        "max_seq_len": l_max, "emb_dim": 5, "filter_order": 64, "short_filter_order": 3, "hyena_order": 2,
        "activation_freq": 10, "vocab_size": 12, "pad_vocab_size_multiple": 8, "tie_word_embeddings": False,
    }  # fmt: skip
    return official_entry(
        name=f"hyenadna-{size}",
        family="hyenadna",
        domain="genomics",
        description=f"Official HyenaDNA {size} (LongSafari, pretrained on hg38), {n_layer} layers, d {d_model}",
        license="BSD-3-Clause",
        config=hf_model_config(config),
        weights=Weights(repo_id=repo, revision=revision, source="hyenadna", sha256=sha256),
    )


HYENADNA_OFFICIAL = (
    _official("tiny-1k", "LongSafari/hyenadna-tiny-1k-seqlen-hf", "e8c1effa8673814e257e627d2e1eda9ea5a373f6",
              "5ce2146c21e9c4baa6bddc4998fd3d029903ae84a563bf80218644082194a12d", 128, 2, 1026),
    _official("tiny-16k-d128", "LongSafari/hyenadna-tiny-16k-seqlen-d128-hf",
              "d79fa37e2cd62dd338103c630f95be8f90812d46",
              "9b30dba3d2d801c305d96cc4ac6229f1d6ce61567871e0b58754633ad764bca8", 128, 2, 16386),
    _official("small-32k", "LongSafari/hyenadna-small-32k-seqlen-hf", "8fe770c78eb13fe33bf81501612faeddf4d6f331",
              "b7a1c9479248edf27691b189bb6657256f1705e560cadc64d6431633932cafa1", 256, 4, 32770),
    _official("medium-160k", "LongSafari/hyenadna-medium-160k-seqlen-hf", "7ebf71773d22c0ede2cc55cb2be15ee8c289e1ce",
              None, 256, 8, 160002),
    _official("medium-450k", "LongSafari/hyenadna-medium-450k-seqlen-hf", "42dedd4d374eac0fb8168549e546a3472fbd27ae",
              None, 256, 8, 450002),
    _official("large-1m", "LongSafari/hyenadna-large-1m-seqlen-hf", "0a629abf9c7f85b4ec9aa6a1aefa3adcf1907446",
              "deafb53209bfafb314d14bd81108546a34d473c07ed7ab7a355674376b56ad12", 256, 8, 1000002),
)  # fmt: skip

ENTRIES = (HYENADNA_TINY, *HYENADNA_OFFICIAL)
