"""Caduceus checkpoints (Schiff et al., 2024; kuleshov-group ``caduceus-ph`` / ``caduceus-ps``) -> ``SeqModel``.

Reads the Hugging Face layout of kuleshov-group/caduceus (``modeling_caduceus.py``, ``modeling_rcps.py``):
``config.json`` with ``model_type: "caduceus"`` (``d_model, n_layer, vocab_size, ssm_cfg, rms_norm,
norm_epsilon, residual_in_fp32, fused_add_norm, pad_vocab_size_multiple, bidirectional,
bidirectional_strategy, bidirectional_weight_tie, rcps, complement_map``) and safetensors weights.

Module trees and renames:

* Caduceus-PH (``rcps: false``): ``caduceus.backbone.embeddings.word_embeddings`` -> ``backbone.embeddings``;
  ``layers.N.mixer.mamba_fwd`` / ``mamba_rev`` (a ``BiMambaWrapper``) -> ``layers.N.mixer.fwd`` / ``rev``
  (seqzoo's ``BidirectionalMixer``; ``mixer`` itself without ``bidirectional``); ``layers.N.norm``,
  ``backbone.norm_f`` and ``lm_head`` by identity.
* Caduceus-PS (``rcps: true``) adds wrappers: ``word_embeddings.embedding`` (``RCPSEmbedding``),
  ``layers.N.mixer.submodule`` (``RCPSWrapper``), ``norm.submodule`` / ``norm_f.submodule``
  (``RCPSAddNormWrapper``, only without ``fused_add_norm``), ``lm_head.lm_head`` (``RCPSLMHead``) and two
  ``complement_map`` buffers, which must equal seqzoo's DNA complement table. The model becomes
  ``rc_equivariant``: seqzoo runs one backbone on both strands and combines them in the LM head, which is
  what RCPS computes with the two strands stacked along channels.

The fused RCPS block (``fused_add_norm: true``, the published setting) normalises the channel halves
in swapped order: its forward half is built from the previous reverse half. So the strands trade
places at every layer, and a strand meets every other layer mirrored (time and channels reversed).
That maps exactly onto one shared backbone whose mirrored layers are re-parameterised:
``mirror(mixer)(x) = flip_tc(mixer(flip_tc(x)))``, which for a BiMamba layer means swapping ``fwd`` and
``rev`` and reversing the channel order of the norm weight, ``in_proj``'s input columns and
``out_proj``'s output rows. With an even ``n_layer`` the mirrored layers are 0, 2, 4, ...; with an odd one
they are 1, 3, ... and the forward strand starts from the complemented, channel-reversed embedding
(then stored untied from ``lm_head``). This needs bidirectional layers (a mirrored causal Mamba would read
right to left).

Not representable (``IncompatibleCheckpointError`` naming the option): ``bidirectional_strategy`` other
than ``"add"`` (``"ew_multiply"``), Mamba-2 layers in ``ssm_cfg``, a vocabulary or complement map other than
HyenaDNA's character tokens, fused RCPS without bidirectional layers.

``config.json`` has no context length: ``max_seq_len`` defaults to 131,072 (the published ``seqlen-131k``
checkpoints) unless the config carries a ``max_seq_len``; it is metadata only (Mamba has no length limit).

What could not be checked without the real weights and the official code running (neither is
reachable here): the tests build checkpoints by name and shape from the published code and compare
against a re-implementation of its forward (RCPS wrappers, fused swap) that reuses seqzoo's Mamba mixer
for the ``Mamba`` module; that the published files store the tied ``mamba_rev`` projections and
``lm_head`` weight or drop them (both are accepted); and the exact published ``config.json`` fields.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.convert._safetensors import load_strict, mapped, read_config, read_state_dict, untie_head
from zoo.hub.convert.mamba_ssm import MAMBA1_KEYS  # the same mamba_ssm Mamba keywords
from zoo.layers.mamba import MambaConfig
from zoo.model import ModelConfig, SeqModel
from zoo.vocab import DNA_TOKENS, dna_complement_map, padded_vocab_size

_SSM_IGNORED = {"use_fast_path", "layer"}
_PROJECTIONS = ("in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias")


def matches(config: dict) -> bool:
    """Whether ``config`` is a kuleshov-group Caduceus ``config.json``."""
    return config.get("model_type") == "caduceus"


def convert(folder: Path) -> SeqModel:
    """The seqzoo model of the Caduceus checkpoint in ``folder`` (weights loaded strictly)."""
    folder = Path(folder)
    config = read_config(folder)
    if not matches(config):
        raise IncompatibleCheckpointError(
            f"{folder / 'config.json'} is not a Caduceus config (model_type={config.get('model_type')!r})"
        )
    model_config = mapped(caduceus_model_config, config, folder)
    state = rename_state_dict(read_state_dict(folder), config, folder)
    return load_strict(SeqModel(model_config), state, folder)


def _incompatible(option: str, value, why: str) -> IncompatibleCheckpointError:
    return IncompatibleCheckpointError(f"Caduceus option {option}={value!r} is not supported: {why}")


def _flags(config: dict) -> tuple[bool, bool, bool, bool]:
    """``(bidirectional, weight_tie, rcps, fused_add_norm)`` with the official defaults."""
    return (
        bool(config.get("bidirectional", True)),
        bool(config.get("bidirectional_weight_tie", True)),
        bool(config.get("rcps", False)),
        bool(config.get("fused_add_norm", True)),
    )


def mirrored_layers(config: dict) -> list[int]:
    """Layers a strand meets mirrored under the fused RCPS block (see the module docstring); else none."""
    _, _, rcps, fused = _flags(config)
    n_layer = int(config["n_layer"])
    if not (rcps and fused):
        return []
    return [i for i in range(n_layer) if (n_layer - i) % 2 == 0]


def _mamba_config(ssm_cfg: dict) -> MambaConfig:
    unknown = sorted(set(ssm_cfg) - MAMBA1_KEYS - _SSM_IGNORED)
    if unknown:
        raise _incompatible(f"ssm_cfg.{unknown[0]}", ssm_cfg[unknown[0]], "unknown Mamba option")
    if ssm_cfg.get("layer", "Mamba1") != "Mamba1":
        raise _incompatible("ssm_cfg.layer", ssm_cfg["layer"], "only Mamba-1 Caduceus layers are converted")
    kwargs = {k: v for k, v in ssm_cfg.items() if k in MAMBA1_KEYS}
    if kwargs.get("dt_rank", "auto") == "auto":
        kwargs["dt_rank"] = None
    return MambaConfig(**kwargs)


def _complement(config: dict, vocab_size: int) -> None:
    """Check the config's complement map is seqzoo's (padding ids map to themselves, as Caduceus pads it)."""
    given = {int(k): int(v) for k, v in (config.get("complement_map") or {}).items()}
    ours = dna_complement_map(vocab_size)
    for token, comp in enumerate(ours):
        if given.get(token, token) != comp:
            raise _incompatible(
                "complement_map", config.get("complement_map"), f"token {token} must map to {comp} (A<->T, C<->G)"
            )


def caduceus_model_config(config: dict) -> ModelConfig:
    """``ModelConfig`` of a Caduceus ``config.json``."""
    bidirectional, weight_tie, rcps, fused = _flags(config)
    strategy = config.get("bidirectional_strategy") or "add"
    if bidirectional and strategy != "add":
        raise _incompatible("bidirectional_strategy", strategy, "seqzoo's bidirectional layers add the two directions")
    if rcps and fused and not bidirectional:
        raise _incompatible("bidirectional", False, "fused RCPS mirrors layers, which needs bidirectional layers")
    multiple = int(config.get("pad_vocab_size_multiple", 8))
    vocab = int(config.get("vocab_size", len(DNA_TOKENS)))
    padded = padded_vocab_size(len(DNA_TOKENS), multiple)
    if padded_vocab_size(vocab, multiple) != padded:
        raise _incompatible("vocab_size", vocab, f"seqzoo's DNA vocabulary has {len(DNA_TOKENS)} tokens")
    if rcps:
        _complement(config, padded)
    n_layer = int(config["n_layer"])
    # an odd fused-RCPS stack starts each strand from the mirrored embedding, which unties it from lm_head
    tie = bool(config.get("tie_word_embeddings", True)) and not (rcps and fused and n_layer % 2 == 1)
    return ModelConfig(
        vocab="dna",
        pad_vocab_multiple=multiple,
        tie_embeddings=tie,
        max_seq_len=int(config.get("max_seq_len", 131_072)),
        rc_equivariant=rcps,
        backbone=BackboneConfig(
            d_model=int(config["d_model"]),
            pattern="M" * n_layer,
            norm="rmsnorm" if config.get("rms_norm", True) else "layernorm",
            norm_eps=float(config.get("norm_epsilon", 1e-5)),
            residual_in_fp32=bool(config.get("residual_in_fp32", True)),
            bidirectional=bidirectional,
            tie_bidirectional_projections=weight_tie,
            mixers=MixerConfigs(mamba=_mamba_config(config.get("ssm_cfg") or {})),
        ),
    )


def _rename(key: str, bidirectional: bool) -> str:
    name = key[len("caduceus.") :] if key.startswith("caduceus.") else key
    name = name.replace("embeddings.word_embeddings.embedding.", "embeddings.")
    name = name.replace("embeddings.word_embeddings.", "embeddings.")
    # RCPS wrappers hold the wrapped module under "submodule"; the LM head under "lm_head"
    name = name.replace(".mixer.submodule.", ".mixer.").replace(".norm.submodule.", ".norm.")
    name = name.replace("norm_f.submodule.", "norm_f.")
    if name == "lm_head.lm_head.weight":
        name = "lm_head.weight"
    if bidirectional:
        return name.replace(".mixer.mamba_fwd.", ".mixer.fwd.").replace(".mixer.mamba_rev.", ".mixer.rev.")
    return name.replace(".mixer.mamba_fwd.", ".mixer.")


def rename_state_dict(state: dict[str, torch.Tensor], config: dict, folder: Path) -> dict[str, torch.Tensor]:
    """Caduceus keys -> seqzoo keys, with tied copies checked and filled and mirrored layers re-parameterised."""
    bidirectional, weight_tie, _, _ = _flags(config)
    padded = padded_vocab_size(len(DNA_TOKENS), int(config.get("pad_vocab_size_multiple", 8)))
    complement = torch.tensor(dna_complement_map(padded))
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith("complement_map"):
            if not torch.equal(tensor.long().cpu(), complement[: tensor.numel()]):
                raise IncompatibleCheckpointError(f"{key} differs from the DNA complement table (A<->T, C<->G)")
            continue
        out[_rename(key, bidirectional)] = tensor
    if bidirectional and weight_tie:
        _fill_tied_projections(out, int(config["n_layer"]))
    if bool(config.get("tie_word_embeddings", True)):
        untie_head(out, "backbone.embeddings.weight", "lm_head.weight", folder)
    for layer in mirrored_layers(config):
        _mirror_layer(out, layer)
    n_layer = int(config["n_layer"])
    if mirrored_layers(config) and n_layer % 2 == 1 and "backbone.embeddings.weight" in out:
        embedding = out["backbone.embeddings.weight"]
        out.setdefault("lm_head.weight", embedding)
        # the forward strand starts from flip_tc(embed(rc(x))) = embed(complement(x)) with channels reversed
        out["backbone.embeddings.weight"] = embedding[complement].flip(-1)
    return out


def _fill_tied_projections(state: dict[str, torch.Tensor], n_layer: int) -> None:
    """Caduceus ties mamba_rev's in/out projections to mamba_fwd's; a file may hold either copy or both."""
    for i in range(n_layer):
        for name in _PROJECTIONS:
            fwd, rev = f"backbone.layers.{i}.mixer.fwd.{name}", f"backbone.layers.{i}.mixer.rev.{name}"
            if fwd in state and rev in state and not torch.equal(state[fwd], state[rev]):
                raise IncompatibleCheckpointError(
                    f"{rev} differs from {fwd}, but bidirectional_weight_tie=true ties them"
                )
            tensor = state.get(fwd, state.get(rev))
            if tensor is not None:
                state[fwd] = state[rev] = tensor


def _mirror_layer(state: dict[str, torch.Tensor], i: int) -> None:
    """Re-parameterise layer ``i`` as ``x -> flip_tc(layer(flip_tc(x)))`` (time and channels reversed)."""
    prefix = f"backbone.layers.{i}."
    for name in ("norm.weight", "norm.bias"):
        if prefix + name in state:
            state[prefix + name] = state[prefix + name].flip(0)
    mixer = prefix + "mixer."
    fwd = {k[len(mixer) + 4 :]: v for k, v in state.items() if k.startswith(mixer + "fwd.")}
    rev = {k[len(mixer) + 4 :]: v for k, v in state.items() if k.startswith(mixer + "rev.")}
    # reading right to left swaps the roles of the two directions
    for direction, params in (("fwd", rev), ("rev", fwd)):
        for name, tensor in params.items():
            if name == "in_proj.weight":
                tensor = tensor.flip(1)
            elif name in ("out_proj.weight", "out_proj.bias"):
                tensor = tensor.flip(0)
            state[f"{mixer}{direction}.{name}"] = tensor
