"""xLSTM-7B-style checkpoints -> ``SeqModel``: transformers' ``xLSTMForCausalLM`` and NX-AI's ``xlstm_large``.

Both layouts share one block (``xlstm.xlstm_large.model.mLSTMBlock``, which transformers re-uses) and one set
of config keys (transformers' ``xLSTMConfig`` extends NX-AI's ``xLSTMLargeConfig``; ``embedding_dim`` /
``num_blocks`` are aliases of ``hidden_size`` / ``num_hidden_layers``). They differ only in where the
embedding lives: ``backbone.embeddings.weight`` (transformers; a bare ``xLSTMModel`` drops the ``backbone.``
prefix) or ``embedding.weight`` (``xLSTMLarge``). Key map, with ``{b} = backbone.blocks.{i}``:

    {b}.norm_mlstm.weight           -> backbone.layers.{i}.norm.weight
    {b}.mlstm_layer.*               -> backbone.layers.{i}.mixer.*     (same names, see zoo.layers.mlstm)
    {b}.norm_ffn.weight             -> backbone.layers.{i}.norm_mlp.weight
    {b}.ffn.proj_up / proj_up_gate  -> backbone.layers.{i}.mlp.fc1      (stacked: value rows, then gate rows)
    {b}.ffn.proj_up_gate_z          -> backbone.layers.{i}.mlp.fc1      (fused: gate rows, then value rows)
    {b}.ffn.proj_down               -> backbone.layers.{i}.mlp.fc2
    backbone.out_norm.weight        -> backbone.norm_f.weight

Refused (our layers compute something else): ``use_bias=True`` (biased RMSNorms), ``add_out_norm=False``,
``norm_reduction_force_float32=False`` (our block norms always reduce in fp32). Kernel choices
(``chunkwise_kernel``, ``mode``, ``autocast_kernel_dtype``, ...) change no value and are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.convert._safetensors import load_strict, mapped, read_config, read_state_dict, untie_head
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
from zoo.model import ModelConfig, SeqModel

#: Defaults of transformers' ``xLSTMConfig`` (NX-AI's ``xLSTMLargeConfig`` agrees on every one but
#: ``ffn_proj_factor``, 2.6667 there; its config files always spell it out)
DEFAULTS = {
    "num_heads": 8,
    "use_bias": False,
    "norm_reduction_force_float32": True,
    "tie_word_embeddings": False,
    "add_out_norm": True,
    "norm_eps": 1e-6,
    "qk_dim_factor": 0.5,
    "v_dim_factor": 1.0,
    "chunk_size": 64,
    "eps": 1e-6,
    "ffn_proj_factor": 2.667,
    "ffn_round_up_to_multiple_of": 64,
    "gate_soft_cap": 15.0,
    "output_logit_soft_cap": 30.0,
    "weight_mode": "single",
}
#: NX-AI ``xLSTMLargeConfig`` fields without a default: a config.json holding them all is in that layout
XLSTM_LARGE_KEYS = frozenset({"embedding_dim", "num_heads", "num_blocks", "vocab_size"})

_RENAMES = (
    (re.compile(r"^backbone\.blocks\.(\d+)\.norm_mlstm\."), r"backbone.layers.\1.norm."),
    (re.compile(r"^backbone\.blocks\.(\d+)\.mlstm_layer\."), r"backbone.layers.\1.mixer."),
    (re.compile(r"^backbone\.blocks\.(\d+)\.norm_ffn\."), r"backbone.layers.\1.norm_mlp."),
    (re.compile(r"^backbone\.blocks\.(\d+)\.ffn\.proj_down\."), r"backbone.layers.\1.mlp.fc2."),
    (re.compile(r"^backbone\.out_norm\."), "backbone.norm_f."),
    (re.compile(r"^embedding\.weight$"), "backbone.embeddings.weight"),
)
_FFN_UP = re.compile(r"^backbone\.blocks\.(\d+)\.ffn\.(proj_up|proj_up_gate|proj_up_gate_z)\.(weight|bias)$")


def matches(config: dict) -> bool:
    """A transformers xLSTM ``config.json`` or an NX-AI ``xLSTMLargeConfig`` written as JSON."""
    return config.get("model_type") == "xlstm" or ("model_type" not in config and XLSTM_LARGE_KEYS <= set(config))


def _option(config: dict, key: str):
    return config.get(key, DEFAULTS.get(key))


def _aliased(config: dict, first: str, second: str) -> int:
    """One of two aliased keys (``hidden_size`` / ``embedding_dim``); both present must agree."""
    values = {config[key] for key in (first, second) if config.get(key) is not None}
    if len(values) != 1:
        raise IncompatibleCheckpointError(f"xlstm config.json needs one value for {first} / {second}, got {values}")
    return values.pop()


def model_config(config: dict) -> ModelConfig:
    """Our ``ModelConfig`` for an xLSTM-7B-style config; unsupported options raise."""
    for key, supported in (("use_bias", False), ("add_out_norm", True), ("norm_reduction_force_float32", True)):
        value = _option(config, key)
        if value != supported:
            raise IncompatibleCheckpointError(f"xlstm with {key}={value!r} is not supported (only {supported!r})")
    d_model = _aliased(config, "hidden_size", "embedding_dim")
    layers = _aliased(config, "num_hidden_layers", "num_blocks")
    norm_eps = _option(config, "norm_eps")
    mixer = MLSTMConfig(
        num_heads=_option(config, "num_heads"),
        qk_dim_factor=_option(config, "qk_dim_factor"),
        v_dim_factor=_option(config, "v_dim_factor"),
        gate_soft_cap=_option(config, "gate_soft_cap"),
        norm_eps=norm_eps,
        norm_reduction_force_float32=True,
        use_bias=False,
        weight_mode=_option(config, "weight_mode"),
        chunk_size=_option(config, "chunk_size"),
        eps=_option(config, "eps"),
    )
    backbone = BackboneConfig(
        d_model=d_model,
        pattern="m" * layers,
        mixers=MixerConfigs(mlstm=mixer),
        mlp=MLPConfig(
            kind="swiglu",
            expand=_option(config, "ffn_proj_factor"),
            multiple_of=_option(config, "ffn_round_up_to_multiple_of"),
            bias=False,
        ),
        norm="rmsnorm",
        norm_eps=norm_eps,
        # xlstm_large adds the residual in the weights' dtype
        residual_in_fp32=False,
    )
    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 1:
        raise IncompatibleCheckpointError(f"xlstm config.json has no valid vocab_size (got {vocab!r})")
    return ModelConfig(
        backbone=backbone,
        vocab="foreign",
        foreign_vocab_size=vocab,
        pad_vocab_multiple=1,
        tie_embeddings=_option(config, "tie_word_embeddings"),
        max_seq_len=config.get("max_position_embeddings", 8192),
        logit_soft_cap=_option(config, "output_logit_soft_cap"),
    )


def state_dict_to_seqzoo(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an xLSTM-7B-style state dict (either layout) to SeqModel's keys; see the module docstring."""
    if "embeddings.weight" in state:  # a bare transformers xLSTMModel
        state = {f"backbone.{key}": value for key, value in state.items()}
    out: dict[str, torch.Tensor] = {}
    ffn_up: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        up = _FFN_UP.match(key)
        if up:
            layer, name, kind = up.groups()
            ffn_up.setdefault((layer, kind), {})[name] = value
            continue
        for pattern, replacement in _RENAMES:
            key = pattern.sub(replacement, key)
        out[key] = value
    for (layer, kind), parts in ffn_up.items():
        target = f"backbone.layers.{layer}.mlp.fc1.{kind}"
        if set(parts) == {"proj_up", "proj_up_gate"}:
            # our SwiGLU computes value * silu(gate) with the value rows of fc1 first
            out[target] = torch.cat([parts["proj_up"], parts["proj_up_gate"]], dim=0)
        elif set(parts) == {"proj_up_gate_z"}:
            gate, value = parts["proj_up_gate_z"].chunk(2, dim=0)
            out[target] = torch.cat([value, gate], dim=0)
        else:
            # left under its own name so the strict load reports it
            out.update({f"backbone.blocks.{layer}.ffn.{name}.{kind}": v for name, v in parts.items()})
    return out


def convert(folder: Path) -> SeqModel:
    """The seqzoo model of the xLSTM checkpoint (transformers or xlstm_large layout) in ``folder``."""
    raw = read_config(folder)
    if not matches(raw):
        raise IncompatibleCheckpointError(f"{folder}/config.json is not an xLSTM (transformers / xlstm_large) config")
    config = mapped(model_config, raw, folder)
    state = state_dict_to_seqzoo(read_state_dict(folder))
    if config.tie_embeddings:
        untie_head(state, "backbone.embeddings.weight", "lm_head.weight", folder)
    return load_strict(SeqModel(config), state, folder)
