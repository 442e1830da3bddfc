"""mamba_ssm's own checkpoints (``state-spaces/mamba-130m`` ... , ``state-spaces/mamba2-*``) -> ``SeqModel``.

Layout of ``MambaLMHeadModel``: a ``config.json`` with ``d_model``, ``n_layer``, ``vocab_size`` (unpadded),
``ssm_cfg`` (the mixer's keyword arguments; ``"layer": "Mamba2"`` selects Mamba-2), ``rms_norm``,
``residual_in_fp32``, ``pad_vocab_size_multiple``, ``tie_embeddings``; weights named
``backbone.embedding.weight``, ``backbone.layers.{i}.norm.*``, ``backbone.layers.{i}.mixer.*``,
``backbone.norm_f.*`` and ``lm_head.weight``. Only ``backbone.embedding`` is renamed (ours is
``backbone.embeddings``, as transformers); the mixers' parameter names are mamba_ssm's.

Not representable, so refused: attention layers (``attn_layer_idx``), per-block MLPs (``d_intermediate > 0``),
and the Mamba-2 options ``rmsnorm=False``, ``D_has_hdim=True`` and ``d_ssm < d_inner``. Options that only
steer initialisation or kernels (``conv_init``, ``use_fast_path``, ``use_mem_eff_path``) are dropped.
"""

from __future__ import annotations

from pathlib import Path

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.convert._safetensors import as_float, load_strict, mapped, read_config, read_state_dict, untie_head
from zoo.layers.mamba import MambaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.model import ModelConfig, SeqModel

#: ``ssm_cfg`` keys that change no computed value of a loaded model
IGNORED_SSM_KEYS = frozenset({"layer", "conv_init", "use_fast_path", "use_mem_eff_path", "layer_idx"})
#: mamba_ssm ``Mamba`` / ``Mamba2`` keyword -> our config field (the names agree where mapped)
MAMBA1_KEYS = frozenset(
    {
        "d_state",
        "d_conv",
        "expand",
        "dt_rank",
        "dt_min",
        "dt_max",
        "dt_init",
        "dt_scale",
        "dt_init_floor",
        "conv_bias",
        "bias",
    }
)
MAMBA2_KEYS = frozenset(
    {
        "d_state",
        "d_conv",
        "expand",
        "headdim",
        "ngroups",
        "A_init_range",
        "dt_min",
        "dt_max",
        "dt_init_floor",
        "dt_limit",
        "bias",
        "conv_bias",
        "chunk_size",
        "norm_before_gate",
    }
)
#: Mamba-2 options with a single supported value (mamba_ssm's default); ``d_ssm = d_inner`` is accepted too
MAMBA2_FIXED = {"rmsnorm": True, "D_has_hdim": False, "d_ssm": None}
#: MixerModel's norm epsilon (mamba_ssm's MambaConfig has no field for it; a config may add ``norm_epsilon``)
NORM_EPS = 1e-5


def matches(config: dict) -> bool:
    """A mamba_ssm ``MambaLMHeadModel`` ``config.json``: no ``model_type``, and ``ssm_cfg`` beside ``d_model``.

    ``ssm_cfg`` tells it apart from HyenaDNA's original configs, which share ``d_model`` / ``n_layer``.
    """
    return "model_type" not in config and {"d_model", "n_layer", "vocab_size", "ssm_cfg"} <= set(config)


def _mixer(d_model: int, ssm_cfg: dict) -> tuple[str, MambaConfig | Mamba2Config]:
    """(pattern letter, our mixer config) for mamba_ssm's ``ssm_cfg``."""
    ssm_cfg = dict(ssm_cfg)
    layer = ssm_cfg.get("layer", "Mamba1")
    if layer not in ("Mamba1", "Mamba2"):
        raise IncompatibleCheckpointError(f"mamba-ssm with ssm_cfg.layer={layer!r} is not supported")
    known = MAMBA1_KEYS if layer == "Mamba1" else MAMBA2_KEYS | set(MAMBA2_FIXED)
    unknown = sorted(set(ssm_cfg) - known - IGNORED_SSM_KEYS)
    if unknown:
        raise IncompatibleCheckpointError(f"mamba-ssm {layer} option ssm_cfg.{unknown[0]} is not supported")
    kwargs = {key: value for key, value in ssm_cfg.items() if key in known}
    if kwargs.get("expand", 2) != int(kwargs.get("expand", 2)):
        raise IncompatibleCheckpointError(f"mamba-ssm with ssm_cfg.expand={kwargs['expand']} is not supported")
    if layer == "Mamba1":
        if kwargs.get("dt_rank") == "auto":
            kwargs["dt_rank"] = None
        return "M", MambaConfig(**kwargs)
    d_inner = kwargs.get("expand", 2) * d_model
    for key, supported in MAMBA2_FIXED.items():
        value = kwargs.pop(key, supported)
        if key == "d_ssm" and value == d_inner:
            continue
        if value != supported:
            raise IncompatibleCheckpointError(f"mamba2 with {key}={value!r} is not supported (only {supported!r})")
    for key in ("A_init_range", "dt_limit"):
        if key in kwargs:
            kwargs[key] = tuple(as_float(v) for v in kwargs[key])
    # mamba_ssm's Mamba2 normalises with eps 1e-5 (RMSNormGated's default), whatever the model's norms use
    return "S", Mamba2Config(norm_eps=1e-5, **kwargs)


def model_config(config: dict) -> ModelConfig:
    """Our ``ModelConfig`` for a mamba_ssm ``MambaConfig``; unsupported options raise."""
    if config.get("attn_layer_idx"):
        raise IncompatibleCheckpointError(
            f"mamba-ssm with attn_layer_idx={config['attn_layer_idx']} (attention layers) is not supported"
        )
    if config.get("d_intermediate", 0):
        raise IncompatibleCheckpointError(
            f"mamba-ssm with d_intermediate={config['d_intermediate']} (an MLP in every block) is not supported"
        )
    d_model, layers = config["d_model"], config["n_layer"]
    letter, mixer = _mixer(d_model, config.get("ssm_cfg") or {})
    mixers = MixerConfigs(mamba=mixer) if letter == "M" else MixerConfigs(mamba2=mixer)
    backbone = BackboneConfig(
        d_model=d_model,
        pattern=letter * layers,
        mixers=mixers,
        norm="rmsnorm" if config.get("rms_norm", True) else "layernorm",
        norm_eps=config.get("norm_epsilon", NORM_EPS),
        residual_in_fp32=config.get("residual_in_fp32", True),
    )
    return ModelConfig(
        backbone=backbone,
        vocab="foreign",
        foreign_vocab_size=config["vocab_size"],
        pad_vocab_multiple=config.get("pad_vocab_size_multiple", 8),
        tie_embeddings=config.get("tie_embeddings", True),
        max_seq_len=2048,
    )


def convert(folder: Path) -> SeqModel:
    """The seqzoo model of the mamba_ssm checkpoint in ``folder`` (strict load)."""
    raw = read_config(folder)
    if not matches(raw):
        raise IncompatibleCheckpointError(f"{folder}/config.json is not a mamba_ssm MambaLMHeadModel config")
    config = mapped(model_config, raw, folder)
    state = read_state_dict(folder)
    if "backbone.embedding.weight" in state:
        state["backbone.embeddings.weight"] = state.pop("backbone.embedding.weight")
    if config.tie_embeddings:
        untie_head(state, "backbone.embeddings.weight", "lm_head.weight", folder)
    return load_strict(SeqModel(config), state, folder)
