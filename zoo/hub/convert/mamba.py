"""transformers' ``MambaForCausalLM`` / ``MambaModel`` checkpoints (``state-spaces/mamba-*-hf``) -> ``SeqModel``.

SeqModel's module tree is transformers' (``backbone.embeddings``, ``backbone.layers.{i}.norm`` /
``.mixer``, ``backbone.norm_f``, ``lm_head``), so the key map is the identity; a bare ``MambaModel``
checkpoint (no ``backbone.`` prefix, no head) gets the prefix and a tied head. Keys a ``config.json`` may
omit take transformers' defaults (``MambaConfig``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.convert._safetensors import load_strict, mapped, read_config, read_state_dict, untie_head
from zoo.layers.mamba import MambaConfig
from zoo.model import ModelConfig, SeqModel

#: transformers' ``MambaConfig`` defaults, for keys a saved config.json leaves out
DEFAULTS = {
    "state_size": 16,
    "conv_kernel": 4,
    "expand": 2,
    "time_step_rank": "auto",
    "use_bias": False,
    "use_conv_bias": True,
    "layer_norm_epsilon": 1e-5,
    "residual_in_fp32": True,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "rms_norm": True,
    "time_step_min": 0.001,
    "time_step_max": 0.1,
    "time_step_floor": 1e-4,
    "time_step_scale": 1.0,
    "time_step_init_scheme": "random",
}


def matches(config: dict) -> bool:
    """A transformers Mamba-1 ``config.json``."""
    return config.get("model_type") == "mamba"


def option(config: dict, key: str, defaults: dict = DEFAULTS):
    """``config[key]``, else transformers' default."""
    return config.get(key, defaults.get(key))


def require(config: dict, key: str, supported, what: str, defaults: dict = DEFAULTS) -> None:
    """Raise naming ``what`` unless ``config[key]`` (or its default) equals ``supported``."""
    value = option(config, key, defaults)
    if value != supported:
        raise IncompatibleCheckpointError(
            f"{what} with {key}={value!r} is not supported by seqzoo's layers (only {supported!r})"
        )


def foreign_vocab(config: dict, key: str = "vocab_size") -> int:
    """The checkpoint's vocabulary size (its embedding rows)."""
    size = config.get(key)
    if not isinstance(size, int) or size < 1:
        raise IncompatibleCheckpointError(f"config.json has no valid {key!r} (got {size!r})")
    return size


def mamba_mixer_config(d_model: int, config: dict) -> MambaConfig:
    """Our ``MambaConfig`` from a transformers Mamba config (initialisation fields included)."""
    require(config, "hidden_act", "silu", "mamba")
    expand = option(config, "expand")
    inner = config.get("intermediate_size", expand * d_model)
    if inner % d_model:
        raise IncompatibleCheckpointError(
            f"mamba with intermediate_size={inner} is not a multiple of hidden_size={d_model} (expand must be an int)"
        )
    rank = option(config, "time_step_rank")
    return MambaConfig(
        d_state=option(config, "state_size"),
        d_conv=option(config, "conv_kernel"),
        expand=inner // d_model,
        dt_rank=None if rank == "auto" else int(rank),
        dt_min=option(config, "time_step_min"),
        dt_max=option(config, "time_step_max"),
        dt_init=option(config, "time_step_init_scheme"),
        dt_scale=option(config, "time_step_scale"),
        dt_init_floor=option(config, "time_step_floor"),
        conv_bias=option(config, "use_conv_bias"),
        bias=option(config, "use_bias"),
    )


def model_config(config: dict) -> ModelConfig:
    """Our ``ModelConfig`` for a transformers Mamba config; unsupported options raise."""
    require(config, "rms_norm", True, "mamba")
    d_model = config.get("hidden_size")
    layers = config.get("num_hidden_layers")
    if not isinstance(d_model, int) or not isinstance(layers, int):
        raise IncompatibleCheckpointError("mamba config.json needs integer hidden_size and num_hidden_layers")
    backbone = BackboneConfig(
        d_model=d_model,
        pattern="M" * layers,
        mixers=MixerConfigs(mamba=mamba_mixer_config(d_model, config)),
        norm="rmsnorm",
        norm_eps=option(config, "layer_norm_epsilon"),
        residual_in_fp32=option(config, "residual_in_fp32"),
    )
    return ModelConfig(
        backbone=backbone,
        vocab="foreign",
        foreign_vocab_size=foreign_vocab(config),
        # transformers' vocab_size is already the embedding's row count (mamba_ssm's padding applied)
        pad_vocab_multiple=1,
        tie_embeddings=option(config, "tie_word_embeddings"),
        max_seq_len=config.get("max_position_embeddings", 2048),
    )


def hf_state_dict(state: dict[str, torch.Tensor], config: ModelConfig, folder: Path) -> dict[str, torch.Tensor]:
    """A transformers ``*ForCausalLM`` (or bare ``*Model``) state dict, head untied when the config ties it."""
    if "embeddings.weight" in state:  # a bare MambaModel / Mamba2Model: no prefix, no head
        state = {f"backbone.{key}": value for key, value in state.items()}
    if config.tie_embeddings:
        untie_head(state, "backbone.embeddings.weight", "lm_head.weight", folder)
    return state


def convert(folder: Path) -> SeqModel:
    """The seqzoo model of the transformers Mamba checkpoint in ``folder`` (strict load)."""
    raw = read_config(folder)
    if not matches(raw):
        raise IncompatibleCheckpointError(f"{folder}/config.json is not a transformers Mamba config")
    config = mapped(model_config, raw, folder)
    return load_strict(SeqModel(config), hf_state_dict(read_state_dict(folder), config, folder), folder)
