"""``SeqModel``: embeddings + pattern-built backbone + LM head, the object ``zoo.load`` returns.

Module names follow transformers' ``MambaForCausalLM`` (``backbone.embeddings``, ``backbone.layers``,
``backbone.norm_f``, ``lm_head``). Tensor contract:

* ``forward(input_ids [B, T] | inputs_embeds [B, T, D], state=None) -> ModelOutput``
  with ``logits [B, T, V]`` (when the model has a vocabulary) and ``hidden [B, T, D]``
  (``[B, T, 2D]`` for reverse-complement-equivariant models: forward strand, then reverse strand).
* ``step(input_id [B] | embed [B, D], state) -> ModelOutput`` with ``T`` absent.

Vocabularies: ``dna`` and ``protein`` are seqzoo's character alphabets (zoo/vocab.py). A checkpoint converted
from another project (a text Mamba or xLSTM with a 50k-token BPE vocabulary) keeps its tokenizer's ids:
``vocab="foreign"`` with ``foreign_vocab_size`` tokens; seqzoo has no tokenizer for it, so pass ids from the
original project's tokenizer. Input ids are validated against the vocabulary's size either way.

Reverse-complement equivariance (Caduceus-PS): the backbone runs with shared weights on the sequence
and on its reverse complement; the two strands' hidden states are kept side by side and combined only
in the LM head, where the reverse strand's logits are mapped back through the complement table. Then
``logits(rc(x)) == rc(logits(x))`` holds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from zoo.backbone import Backbone, BackboneConfig
from zoo.vocab import DNA_TOKENS, PROTEIN_TOKENS, dna_complement_map, padded_vocab_size

VOCABULARIES: dict[str, tuple[str, ...]] = {"dna": DNA_TOKENS, "protein": PROTEIN_TOKENS}

#: Standard deviation of the token embedding (and tied LM head) at initialisation. torch's default N(0, 1)
#: makes tied logits ~30 wide and the first loss ~80 nats; HyenaDNA, mamba_ssm and transformers use 0.02.
EMBEDDING_INIT_STD = 0.02


@dataclass
class ModelConfig:
    """Everything needed to build a ``SeqModel``; serialised as ``config.json``."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    """The layer stack."""
    vocab: Literal["dna", "protein", "foreign"] | None = "dna"
    """Token alphabet (see zoo/vocab.py); ``foreign`` for a converted checkpoint's own tokenizer (ids only,
    ``foreign_vocab_size`` of them); None for continuous inputs (forecasting: ``inputs_embeds`` only)."""
    foreign_vocab_size: int | None = None
    """Number of token ids of a ``foreign`` vocabulary (e.g. 50277 for mamba_ssm's GPT-NeoX tokenizer);
    set exactly when ``vocab='foreign'``. Embedding rows are this padded to ``pad_vocab_multiple``."""
    pad_vocab_multiple: int = 8
    """Embedding rows are padded to a multiple of this (HyenaDNA pads 12 -> 16)."""
    tie_embeddings: bool = True
    """Share the LM head weight with the input embedding."""
    max_seq_len: int = 1024
    """Context length the model is designed and trained for."""
    rc_equivariant: bool = False
    """Reverse-complement parameter sharing (Caduceus-PS); needs ``vocab='dna'``."""
    logit_soft_cap: float | None = None
    """Logits are soft-capped to ``cap * tanh(logits / cap)`` (xLSTM-7B: 30); None for no cap."""

    def __post_init__(self) -> None:
        if (self.vocab == "foreign") != (self.foreign_vocab_size is not None):
            raise ValueError(
                f"foreign_vocab_size={self.foreign_vocab_size} must be set exactly when vocab='foreign' "
                f"(vocab={self.vocab!r})"
            )
        if self.foreign_vocab_size is not None and self.foreign_vocab_size < 1:
            raise ValueError(f"foreign_vocab_size must be positive, got {self.foreign_vocab_size}")
        if self.logit_soft_cap is not None and self.logit_soft_cap <= 0:
            raise ValueError(f"logit_soft_cap={self.logit_soft_cap} must be > 0 (or None for no cap)")
        if self.rc_equivariant and self.vocab != "dna":
            raise ValueError("rc_equivariant=True needs vocab='dna' (a complement table)")
        if self.max_seq_len <= 0:
            raise ValueError(f"max_seq_len must be positive, got {self.max_seq_len}")

    @property
    def n_tokens(self) -> int | None:
        """Valid token ids ``[0, n_tokens)`` (before padding), or None without a vocabulary."""
        if self.vocab is None:
            return None
        if self.vocab == "foreign":
            return self.foreign_vocab_size
        return len(VOCABULARIES[self.vocab])

    @property
    def vocab_size(self) -> int | None:
        """Embedding rows (padded), or None without a vocabulary."""
        if self.vocab is None:
            return None
        return padded_vocab_size(self.n_tokens, self.pad_vocab_multiple)


@dataclass
class ModelOutput:
    """What ``SeqModel.forward`` / ``step`` return."""

    hidden: torch.Tensor
    """Final hidden states ``[B, T, D]`` (``[B, T, 2D]`` when RC-equivariant); ``T`` absent for ``step``."""
    logits: torch.Tensor | None
    """``[B, T, V]`` next-token / masked-token logits, or None without a vocabulary."""
    state: Any
    """Per-layer mixer states to continue the sequence (None for bidirectional models)."""


class SeqModel(nn.Module):
    """A sequence model built from a ``ModelConfig``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        vocab_size = config.vocab_size
        self.backbone = Backbone(config.backbone, vocab_size)
        self.lm_head = None
        if self.backbone.embeddings is not None:
            nn.init.normal_(self.backbone.embeddings.weight, std=EMBEDDING_INIT_STD)
        if vocab_size is not None:
            self.lm_head = nn.Linear(config.backbone.d_model, vocab_size, bias=False)
            if config.tie_embeddings:
                self.lm_head.weight = self.backbone.embeddings.weight
        if config.rc_equivariant:
            self.register_buffer(
                "complement", torch.tensor(dna_complement_map(vocab_size), dtype=torch.long), persistent=False
            )

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        return self.config.backbone.d_model

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        state: list | None = None,
    ) -> ModelOutput:
        """Run a whole sequence (or continue one from ``state``); see the module docstring for shapes."""
        x = self._embed(input_ids, inputs_embeds)
        if not self.config.rc_equivariant:
            hidden, state = self.backbone(x, state)
            return ModelOutput(hidden=hidden, logits=self._logits(hidden), state=state)
        if state is not None:
            raise ValueError(
                "a reverse-complement-equivariant model reads both strands: it cannot continue a state"
            )
        hidden_fwd, _ = self.backbone(x)
        # The reverse strand is the complemented sequence read right to left; flip it back so both
        # strands' hidden states are aligned position by position.
        rc_ids = self.complement[input_ids].flip(1)
        hidden_rev, _ = self.backbone(self._embed(rc_ids, None))
        hidden_rev = hidden_rev.flip(1)
        logits = self._cap(self.lm_head(hidden_fwd) + self.lm_head(hidden_rev)[..., self.complement])
        # Channel-reversing the reverse strand makes rc(input) map to the flip of the whole hidden tensor.
        return ModelOutput(
            hidden=torch.cat([hidden_fwd, hidden_rev.flip(-1)], dim=-1), logits=logits, state=None
        )

    def step(self, token: torch.Tensor, state: list) -> ModelOutput:
        """One decode step: ``token [B]`` ids (or ``[B, D]`` embeddings without a vocabulary)."""
        if not self.backbone.causal or self.config.rc_equivariant:
            raise RuntimeError("this model reads the sequence in both directions: it has no step form")
        if self.backbone.embeddings is not None:
            x_t = self._embed(token.unsqueeze(1), None).squeeze(1)
        else:
            x_t = self._embed(None, token.unsqueeze(1)).squeeze(1)
        hidden, state = self.backbone.step(x_t, state)
        return ModelOutput(hidden=hidden, logits=self._logits(hidden), state=state)

    def embed(
        self,
        seqs,
        pooling: Literal["mean", "last", "cls"] | None = "mean",
        batch_size: int = 32,
        device: torch.device | str | None = None,
        allow_longer: bool = False,
    ):
        """Embeddings ``[N, D]`` float32 numpy (``[N, 2D]`` when RC-equivariant; ``[T_i, D]`` arrays if no pooling).

        ``seqs``: strings (DNA models) or token ids. See ``zoo.embedding.embed`` for pooling, batching and
        ``allow_longer``.
        """
        # Imported here: zoo.embedding imports this module (and the genomics tokenizer) at its top.
        from zoo.embedding import embed

        return embed(self, seqs, pooling=pooling, batch_size=batch_size, device=device, allow_longer=allow_longer)

    def init_state(self, batch: int, device=None, dtype=None) -> list:
        """Empty per-layer states for ``batch`` sequences (for ``step`` and chunked ``forward``)."""
        param = next(self.parameters())
        return self.backbone.init_state(batch, device=device or param.device, dtype=dtype or param.dtype)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor | None:
        return None if self.lm_head is None else self._cap(self.lm_head(hidden))

    def _cap(self, logits: torch.Tensor) -> torch.Tensor:
        cap = self.config.logit_soft_cap
        return logits if cap is None else cap * torch.tanh(logits / cap)

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        """Check the inputs and return ``[B, T, D]`` embeddings."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids [B, T] or inputs_embeds [B, T, D]")
        if input_ids is not None:
            if self.backbone.embeddings is None:
                raise ValueError("this model has no vocabulary (vocab=None): pass inputs_embeds [B, T, D]")
            return self.backbone.embeddings(self._check_ids(input_ids))
        return self._check_embeds(inputs_embeds)

    def _check_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"input_ids must be an integer tensor [B, T], got dtype {ids.dtype}")
        if ids.ndim != 2:
            raise ValueError(f"input_ids must have shape [B, T], got {tuple(ids.shape)}")
        if ids.shape[1] == 0:
            raise ValueError("input_ids is an empty sequence (T=0)")
        n_tokens = self.config.n_tokens
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= n_tokens:
            bad = low if low < 0 else high
            raise ValueError(
                f"input_ids has token id {bad}, outside the {self.config.vocab} vocabulary [0, {n_tokens})"
            )
        return ids.long()

    def _check_embeds(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"inputs_embeds must have shape [B, T, {self.d_model}], got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"inputs_embeds must be floating point, got dtype {x.dtype}")
        if x.shape[1] == 0:
            raise ValueError("inputs_embeds is an empty sequence (T=0)")
        if not torch.isfinite(x).all():
            n_bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"inputs_embeds contains {n_bad} NaN/Inf values; clean or mask the input first")
        return x


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
