"""transformers' ``Mamba2ForCausalLM`` checkpoints (converted state-spaces/mamba2, Mamba-Codestral) -> ``SeqModel``.

The key map is the identity (see :mod:`zoo.hub.convert.mamba`). transformers' Mamba-2 always uses a gated
RMSNorm with the gate applied before the norm; a config asking for ``rms_norm=False`` or
``norm_before_gate=True`` (keys transformers ignores but mamba_ssm honours) is refused rather than loaded
into a model that would compute something else.
"""

from __future__ import annotations

from pathlib import Path

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.convert._safetensors import as_float, load_strict, mapped, read_config, read_state_dict
from zoo.hub.convert.mamba import foreign_vocab, hf_state_dict, option, require
from zoo.layers.mamba2 import Mamba2Config
from zoo.model import ModelConfig, SeqModel

#: transformers' ``Mamba2Config`` defaults, for keys a saved config.json leaves out
DEFAULTS = {
    "num_heads": 128,
    "head_dim": 64,
    "state_size": 128,
    "expand": 2,
    "conv_kernel": 4,
    "n_groups": 8,
    "use_bias": False,
    "use_conv_bias": True,
    "hidden_act": "silu",
    "layer_norm_epsilon": 1e-5,
    "residual_in_fp32": True,
    "time_step_min": 0.001,
    "time_step_max": 0.1,
    "time_step_floor": 1e-4,
    "time_step_limit": (0.0, float("inf")),
    "chunk_size": 256,
    "tie_word_embeddings": False,
    "rms_norm": True,
    "norm_before_gate": False,
}


def matches(config: dict) -> bool:
    """A transformers Mamba-2 ``config.json``."""
    return config.get("model_type") == "mamba2"


def model_config(config: dict) -> ModelConfig:
    """Our ``ModelConfig`` for a transformers Mamba-2 config; unsupported options raise."""
    for key, supported in (("hidden_act", "silu"), ("rms_norm", True), ("norm_before_gate", False)):
        require(config, key, supported, "mamba2", DEFAULTS)
    d_model = config.get("hidden_size")
    layers = config.get("num_hidden_layers")
    if not isinstance(d_model, int) or not isinstance(layers, int):
        raise IncompatibleCheckpointError("mamba2 config.json needs integer hidden_size and num_hidden_layers")
    expand = option(config, "expand", DEFAULTS)
    if expand != int(expand):
        raise IncompatibleCheckpointError(f"mamba2 with expand={expand} is not supported (only integer expand)")
    heads, headdim = option(config, "num_heads", DEFAULTS), option(config, "head_dim", DEFAULTS)
    if heads * headdim != int(expand * d_model):
        # transformers sizes the projections by expand * hidden_size but the SSD by num_heads * head_dim
        raise IncompatibleCheckpointError(
            f"mamba2 with num_heads * head_dim = {heads * headdim} != expand * hidden_size = {int(expand * d_model)}"
        )
    eps = option(config, "layer_norm_epsilon", DEFAULTS)
    low, high = option(config, "time_step_limit", DEFAULTS)
    mixer = Mamba2Config(
        d_state=option(config, "state_size", DEFAULTS),
        d_conv=option(config, "conv_kernel", DEFAULTS),
        expand=int(expand),
        headdim=headdim,
        ngroups=option(config, "n_groups", DEFAULTS),
        chunk_size=option(config, "chunk_size", DEFAULTS),
        dt_min=option(config, "time_step_min", DEFAULTS),
        dt_max=option(config, "time_step_max", DEFAULTS),
        dt_init_floor=option(config, "time_step_floor", DEFAULTS),
        dt_limit=(as_float(low), as_float(high)),
        conv_bias=option(config, "use_conv_bias", DEFAULTS),
        bias=option(config, "use_bias", DEFAULTS),
        norm_before_gate=False,
        norm_eps=eps,
    )
    backbone = BackboneConfig(
        d_model=d_model,
        pattern="S" * layers,
        mixers=MixerConfigs(mamba2=mixer),
        norm="rmsnorm",
        norm_eps=eps,
        residual_in_fp32=option(config, "residual_in_fp32", DEFAULTS),
    )
    return ModelConfig(
        backbone=backbone,
        vocab="foreign",
        foreign_vocab_size=foreign_vocab(config),
        pad_vocab_multiple=1,
        tie_embeddings=option(config, "tie_word_embeddings", DEFAULTS),
        max_seq_len=config.get("max_position_embeddings", 2048),
    )


def convert(folder: Path) -> SeqModel:
    """The seqzoo model of the transformers Mamba-2 checkpoint in ``folder`` (strict load)."""
    raw = read_config(folder)
    if not matches(raw):
        raise IncompatibleCheckpointError(f"{folder}/config.json is not a transformers Mamba-2 config")
    config = mapped(model_config, raw, folder)
    return load_strict(SeqModel(config), hf_state_dict(read_state_dict(folder), config, folder), folder)
