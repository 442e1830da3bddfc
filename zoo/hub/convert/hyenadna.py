"""HyenaDNA checkpoints (Nguyen et al., 2023) -> seqzoo ``SeqModel``.

Two published layouts are read, both in safetensors only:

* ``hf``: the LongSafari ``*-seqlen-hf`` repos (``modeling_hyena.py``): ``config.json`` with
  ``model_type: "hyenadna"`` (``d_model, n_layer, d_inner, vocab_size, max_seq_len, emb_dim, filter_order,
  short_filter_order, hyena_order, activation_freq, train_freq, num_inner_mlps, layer_norm_epsilon,
  pad_vocab_size_multiple, ...``) and keys ``hyena.backbone.*`` plus ``lm_head.weight``.
* ``lightning``: the LongSafari ``*-seqlen`` repos (the training code's ``backbone_cfg``: ``d_model, n_layer,
  d_inner, vocab_size, layer: {_name_: hyena, l_max, emb_dim, filter_order, w, ...}``) with keys
  ``model.backbone.*``; runs trained with gradient checkpointing add ``.layer`` after ``mixer`` / ``mlp``.
  Those repos publish ``weights.ckpt`` (a pickle, never loaded here): this layout is read only once the
  state dict has been re-saved as ``model.safetensors``; the ``-hf`` repos hold the same weights.

Key renames (everything else maps by identity, because ``zoo.layers.hyena`` uses HyenaDNA's names):
``embeddings.word_embeddings`` -> ``embeddings``, ``norm1`` -> ``norm``, ``norm2`` -> ``norm_mlp``,
``ln_f`` -> ``norm_f``. The filter MLP shares one ``Sin`` module, whose ``freq`` appears under several
indices (``implicit_filter.{1,3,5}.freq``); safetensors files may keep only one of them, so any non-empty
subset is accepted when its members agree. ``lm_head.weight`` may be absent (tied) or present.

What could not be checked without the real weights and the official code running (neither is reachable
here; the tests build checkpoints by name and shape from the published code and compare against a
re-implementation of its forward):

* that every published ``config.json`` carries only the fields handled below (unknown options raise);
* the modulation ``shift``: the inference code (``standalone_hyenadna.py``, ``modeling_hyena.py``) uses
  0.05, the training code's ``ExponentialModulation`` defaults to 0.0. We follow the inference code, so
  outputs match what the official ``-hf`` model computes, which may differ slightly from training time;
* whether a ``-hf`` safetensors file stores ``lm_head.weight`` and which ``freq`` copy it keeps.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.convert._safetensors import (
    PICKLE_SUFFIXES,
    load_strict,
    mapped,
    read_config,
    read_state_dict,
    untie_head,
)
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mlp import MLPConfig, mlp_hidden_width
from zoo.model import ModelConfig, SeqModel
from zoo.vocab import DNA_TOKENS, padded_vocab_size

#: HyenaDNA's LayerNorms inside a block use torch's default epsilon (only ``ln_f`` reads the config)
BLOCK_NORM_EPS = 1e-5
#: modulation shift of the official inference code (see the module docstring)
MODULATION_SHIFT = 0.05

#: ``layer`` options of the Lightning layout that matter for inference, and those that only steer training
_LIGHTNING_LAYER_KEYS = {
    "_name_",
    "emb_dim",
    "filter_order",
    "local_order",
    "l_max",
    "modulate",
    "w",
    "order",
    "num_inner_mlps",
    "shift",
    "train_freq",
}
_LIGHTNING_TRAINING_ONLY = {"lr", "wd", "lr_pos_emb", "dropout", "filter_dropout", "bias", "normalized"}
_RENAMES = (
    (re.compile(r"^backbone\.embeddings\.word_embeddings\."), "backbone.embeddings."),
    (re.compile(r"^backbone\.ln_f\."), "backbone.norm_f."),
    (re.compile(r"\.norm1\."), ".norm."),
    (re.compile(r"\.norm2\."), ".norm_mlp."),
)
_FREQ = re.compile(r"^(.*\.filter_fn\.implicit_filter)\.\d+\.freq$")


def matches(config: dict) -> bool:
    """Whether ``config`` is a HyenaDNA ``config.json`` (``-hf`` or Lightning ``backbone_cfg``)."""
    return _layout(config) is not None


def convert(folder: Path) -> SeqModel:
    """The seqzoo model of the HyenaDNA checkpoint in ``folder`` (weights loaded strictly)."""
    folder = Path(folder)
    config = read_config(folder)
    layout = _layout(config)
    if layout is None:
        raise IncompatibleCheckpointError(
            f"{folder / 'config.json'} is not a HyenaDNA config (no model_type 'hyenadna' nor layer._name_ 'hyena')"
        )
    model_config = mapped(hf_model_config if layout == "hf" else lightning_model_config, config, folder)
    _refuse_pickle_only(folder)
    state = rename_state_dict(read_state_dict(folder), layout)
    head = state.get("lm_head.weight")
    if layout == "hf" and head is not None and not torch.equal(head, state.get("backbone.embeddings.weight", head)):
        # The -hf HyenaDNALMHeadModel keeps its own head: the published parameter counts include it (small-32k:
        # 3,281,664 = 4 blocks of 818,240 + norm_f 512 + embeddings 4,096 + lm_head 4,096). A head that differs
        # from the embeddings is therefore converted untied, whatever tie_word_embeddings says.
        model_config = replace(model_config, tie_embeddings=False)
    elif model_config.tie_embeddings:
        untie_head(state, "backbone.embeddings.weight", "lm_head.weight", folder)
    return load_strict(SeqModel(model_config), state, folder)


def _layout(config: dict) -> str | None:
    if config.get("model_type") == "hyenadna":
        return "hf"
    layer = config.get("layer")
    if isinstance(layer, dict) and layer.get("_name_") == "hyena" and "d_model" in config:
        return "lightning"
    return None


def _incompatible(option: str, value, why: str) -> IncompatibleCheckpointError:
    return IncompatibleCheckpointError(f"HyenaDNA option {option}={value!r} is not supported: {why}")


def _vocab_multiple(config: dict) -> int:
    """Check the vocabulary is HyenaDNA's 12 characters; return the padding multiple."""
    multiple = int(config.get("pad_vocab_size_multiple", 8))
    vocab = int(config.get("vocab_size", len(DNA_TOKENS)))
    if padded_vocab_size(vocab, multiple) != padded_vocab_size(len(DNA_TOKENS), multiple):
        raise _incompatible("vocab_size", vocab, f"seqzoo's DNA vocabulary has {len(DNA_TOKENS)} tokens")
    return multiple


def _mlp(d_model: int, d_inner: int) -> MLPConfig:
    mlp = MLPConfig(kind="gelu_tanh", expand=d_inner / d_model, multiple_of=1, bias=True)
    if mlp_hidden_width(d_model, mlp) != d_inner:
        raise _incompatible("d_inner", d_inner, f"cannot be expressed as a width multiple of d_model={d_model}")
    return mlp


def _model_config(d_model, n_layer, d_inner, l_max, hyena, multiple, tie, residual_in_fp32) -> ModelConfig:
    return ModelConfig(
        vocab="dna",
        pad_vocab_multiple=multiple,
        tie_embeddings=tie,
        # l_max counts the two special tokens around the nucleotide window (1026 for "1k")
        max_seq_len=max(l_max - 2, 1),
        backbone=BackboneConfig(
            d_model=d_model,
            pattern="H" * n_layer,
            norm="layernorm",
            norm_eps=BLOCK_NORM_EPS,
            residual_in_fp32=residual_in_fp32,
            mlp=_mlp(d_model, d_inner),
            mixers=MixerConfigs(hyena=hyena),
        ),
    )


def hf_model_config(config: dict) -> ModelConfig:
    """``ModelConfig`` of a LongSafari ``*-seqlen-hf`` ``config.json``."""
    d_model = int(config.get("d_model", 256))
    order = int(config.get("hyena_order", 2))
    if order != 2:
        # modeling_hyena.py sizes the filter MLP's output and its decay to d_model, not d_model*(order-1)
        raise _incompatible("hyena_order", order, "the -hf modeling code is consistent only for order 2")
    width = int(config.get("short_filter_order", 3))
    if width != 3:
        # modeling_hyena.py hard-codes padding=2, which is causal only for a width-3 short filter
        raise _incompatible("short_filter_order", width, "the -hf modeling code pads for width 3 only")
    eps = float(config.get("layer_norm_epsilon", 1e-5))
    if not math.isclose(eps, BLOCK_NORM_EPS):
        raise _incompatible("layer_norm_epsilon", eps, "seqzoo uses one epsilon; HyenaDNA's block norms use 1e-5")
    l_max = int(config.get("max_seq_len", 1024))
    hyena = HyenaConfig(
        order=order,
        filter_order=int(config.get("filter_order", 64)),
        emb_dim=int(config.get("emb_dim", 3)),
        short_filter_order=width,
        l_max=l_max,
        num_inner_mlps=int(config.get("num_inner_mlps", 2)),
        w=float(config.get("activation_freq", 1)),
        train_freq=bool(config.get("train_freq", True)),
        shift=MODULATION_SHIFT,
        dropout=float(config.get("hyena_dropout", 0.0)),
    )
    return _model_config(
        d_model,
        int(config.get("n_layer", 12)),
        int(config.get("d_inner") or 4 * d_model),
        l_max,
        hyena,
        _vocab_multiple(config),
        bool(config.get("tie_word_embeddings", True)),
        # HyenaBlock always casts the residual to fp32
        residual_in_fp32=True,
    )


def lightning_model_config(config: dict) -> ModelConfig:
    """``ModelConfig`` of a LongSafari ``*-seqlen`` (Lightning ``backbone_cfg``) ``config.json``."""
    layer = config["layer"]
    unknown = sorted(set(layer) - _LIGHTNING_LAYER_KEYS - _LIGHTNING_TRAINING_ONLY)
    if unknown:
        raise _incompatible(f"layer.{unknown[0]}", layer[unknown[0]], "unknown Hyena layer option")
    if config.get("attn_layer_idx"):
        raise _incompatible("attn_layer_idx", config["attn_layer_idx"], "attention layers are not converted")
    if not layer.get("train_freq", True):
        raise _incompatible("layer.train_freq", False, "standalone HyenaDNA always learns the Sin frequency")
    if not layer.get("modulate", True):
        raise _incompatible("layer.modulate", False, "HyenaDNA's inference code always modulates the filter")
    width = int(layer.get("local_order", 3))
    if width != 3:
        # standalone_hyenadna.py builds the short filter with kernel 3 whatever local_order says
        raise _incompatible("layer.local_order", width, "the official code always uses a width-3 short filter")
    d_model = int(config["d_model"])
    l_max = int(layer["l_max"])
    hyena = HyenaConfig(
        order=int(layer.get("order", 2)),
        filter_order=int(layer.get("filter_order", 64)),
        emb_dim=int(layer.get("emb_dim", 3)),
        short_filter_order=3,
        l_max=l_max,
        num_inner_mlps=int(layer.get("num_inner_mlps", 2)),
        w=float(layer.get("w", 1)),
        train_freq=True,
        shift=float(layer.get("shift", MODULATION_SHIFT)),
    )
    eps = float(config.get("layer_norm_epsilon", 1e-5))
    model_config = _model_config(
        d_model,
        int(config["n_layer"]),
        int(config.get("d_inner") or 4 * d_model),
        l_max,
        hyena,
        _vocab_multiple(config),
        bool(config.get("tie_embeddings", True)),
        residual_in_fp32=bool(config.get("residual_in_fp32", False)),
    )
    # the Lightning blocks use layer_norm_epsilon for every norm
    model_config.backbone.norm_eps = eps
    return model_config


def _refuse_pickle_only(folder: Path) -> None:
    """The Lightning ``*-seqlen`` repos publish only ``weights.ckpt``: point at the ``-hf`` twin instead."""
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise IncompatibleCheckpointError(
                f"{folder} holds only pickle weights ({', '.join(pickles)}); seqzoo loads safetensors only: use the "
                "'-hf' repo of this checkpoint (LongSafari/<name>-seqlen-hf has model.safetensors)"
            )


def rename_state_dict(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """HyenaDNA keys -> seqzoo keys (see the module docstring); fills the shared ``freq`` copies."""
    out: dict[str, torch.Tensor] = {}
    freqs: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        name = _strip_prefix(key, layout)
        if layout == "lightning":
            name = name.replace(".mixer.layer.", ".mixer.").replace(".mlp.layer.", ".mlp.")
        for pattern, repl in _RENAMES:
            name = pattern.sub(repl, name)
        freq = _FREQ.match(name)
        if freq:
            prefix = freq.group(1)
            if prefix in freqs and not torch.equal(freqs[prefix], tensor):
                raise IncompatibleCheckpointError(
                    f"{key}: the Sin frequencies of one filter differ, but HyenaDNA shares one Sin module"
                )
            freqs[prefix] = tensor
        out[name] = tensor
    for prefix, tensor in freqs.items():
        # one Sin module after every Linear but the last: indices 1, 3, ..., 2 * (1 + num_inner_mlps) - 1
        for key in _sin_keys(prefix, out):
            out.setdefault(key, tensor)
    return out


def _sin_keys(prefix: str, state: dict[str, torch.Tensor]) -> list[str]:
    """``freq`` keys of a filter MLP, from its Linear layers present in ``state``."""
    linears = sorted(
        int(k[len(prefix) + 1 :].split(".")[0]) for k in state if k.startswith(prefix + ".") and k.endswith(".weight")
    )
    return [f"{prefix}.{i + 1}.freq" for i in linears[:-1]]


def _strip_prefix(key: str, layout: str) -> str:
    # hf: HyenaDNAForCausalLM nests the model under "hyena."; lightning: the task module under "model."
    prefix = "hyena." if layout == "hf" else "model."
    return key[len(prefix) :] if key.startswith(prefix) else key
