"""Caduceus: bidirectional, reverse-complement-equivariant Mamba for DNA (Schiff et al., 2024)."""

import dataclasses

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert.caduceus import caduceus_model_config
from zoo.layers.mamba import MambaConfig
from zoo.model import ModelConfig
from zoo.registry import Entry, Weights, official_entry

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


#: The published ``config.json`` of kuleshov-group's 131k Caduceus-PS checkpoint (the fields the converter
#: reads); the other official checkpoints differ in the fields ``_official`` overrides. Tokens 7-10 are
#: A, C, G, T (the complement map swaps A<->T and C<->G, every other id maps to itself).
PUBLISHED_CONFIG = {
    "model_type": "caduceus", "d_model": 256, "n_layer": 16, "vocab_size": 16, "pad_vocab_size_multiple": 8,
    "rms_norm": True, "norm_epsilon": 1e-5, "residual_in_fp32": False, "fused_add_norm": True,
    "bidirectional": True, "bidirectional_strategy": "add", "bidirectional_weight_tie": True, "rcps": True,
    "complement_map": {str(i): {7: 10, 8: 9, 9: 8, 10: 7}.get(i, i) for i in range(16)},
    "ssm_cfg": {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 0.001, "dt_max": 0.1,
                "dt_init": "random", "dt_scale": 1.0, "dt_init_floor": 1e-4, "conv_bias": True, "bias": False,
                "use_fast_path": True},
}  # fmt: skip


def _official(variant: str, seqlen: str, d_model: int, n_layer: int, revision: str, sha256: str | None) -> Entry:
    """An entry for an official kuleshov-group Caduceus checkpoint, converted on load.

    ``variant`` is ``ph`` (bidirectional, trained with reverse-complement augmentation; the paper averages
    both strands' predictions "post hoc" downstream) or ``ps`` (RC equivariant by parameter sharing). The
    published ``config.json`` has no context length, so the entry's ``max_seq_len`` is the length the
    checkpoint was pretrained at (its repo name), and ``zoo.load`` gives the converted model that context.
    Revisions and checksums are the ones other public projects pin for these repos (the Hub is not reachable
    from here to re-read them).
    """
    suffix = "" if seqlen == "131k" else "_lr-8e-3"
    repo = f"kuleshov-group/caduceus-{variant}_seqlen-{seqlen}_d_model-{d_model}_n_layer-{n_layer}{suffix}"
    published = {**PUBLISHED_CONFIG, "d_model": d_model, "n_layer": n_layer, "rcps": variant == "ps"}
    context = {"131k": 131_072, "1k": 1_024}[seqlen]
    size = seqlen if d_model == 256 else f"{seqlen}-d{d_model}"
    rc = "RC-equivariant by parameter sharing" if variant == "ps" else "RC-augmented, not RC-equivariant"
    return official_entry(
        name=f"caduceus-{variant}-{size}",
        family="caduceus",
        domain="genomics",
        description=f"Official Caduceus-{variant.upper()} {seqlen} (kuleshov-group, hg38 masked LM), "
        f"{n_layer} BiMamba layers, d {d_model}, {rc}",
        license="Apache-2.0",
        config=dataclasses.replace(caduceus_model_config(published), max_seq_len=context),
        weights=Weights(repo_id=repo, revision=revision, source="caduceus", sha256=sha256),
    )


CADUCEUS_OFFICIAL = (
    _official("ph", "131k", 256, 16, "b0477522ac5d044ad03578aa724ec8e4bdbd405b", None),
    _official("ps", "131k", 256, 16, "d89eeb853136ea64da7feb3d0c8e909771b17ae6",
              "a3e6976fe90460ff5d90d371b457d0263dc65e156ea5651b4a452e98228daef2"),
    _official("ph", "1k", 256, 4, "9865108985311772704c2ece0bac082153a6167b",
              "7180a75f6cb08029309eda31d85b45623c7f095cc83f0f797c5a34b64f1f70de"),
    _official("ps", "1k", 256, 4, "2de36509b76b4395a97bfa39acafeb6f17b537c5", None),
    _official("ps", "1k", 118, 4, "51d88e326c0fadb0dcc63efdd7345119ce672ce5", None),
)  # fmt: skip

ENTRIES = (CADUCEUS_SMALL, *CADUCEUS_OFFICIAL)
