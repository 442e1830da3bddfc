"""Protein language-model data: causal, masked or fill-in-the-middle examples, optionally after homologs.

Sequences come from a named corpus (``zoo.domains.protein.corpus``) or a FASTA file, split by similarity
(whole clusters per split). One example is one query sequence in the token layout of
``zoo.domains.protein.layout``, the format scoring uses too::

    causal / masked   [BOS] h_1 [SEP] ... h_k [SEP] query [EOS]
    fim               [BOS] h_1 [SEP] ... h_k [SEP] prefix [MASK] suffix [FIM] middle [EOS]

* ``causal``: ``input_ids = ids[:-1]``, ``labels = ids[1:]`` (the next token, as ``GenomeDataModule``).
* ``fim``: causal, but with probability ``fim_rate`` one random span of the query is moved behind ``[FIM]``.
* ``masked``: ``input_ids = ids`` with BERT's 80/10/10 corruption of ``mask_prob`` of the *residues* (never of
  special tokens); labels only at the chosen positions.

Homologs (``context="cluster"``, ProtMamba style) are the other members of the query's similarity cluster,
always from the same split (clusters never span splits; this is checked again), shuffled, each cropped like
the query, and added while they fit in ``max_context_tokens``. Loss is taken on the context too by default
(``context_loss=True``), as ProtMamba does: homologs are real proteins of the same split, so predicting them is
useful signal and costs nothing extra; ``context_loss=False`` keeps the loss on the query's part only.

Cropping: the query and each homolog keep at most ``max_length - 3`` residues (room for ``[BOS]``, ``[MASK]``
and ``[FIM]`` / ``[EOS]``), so an example without context has at most ``max_length`` inputs. Training takes a
random window of a longer sequence; evaluation takes its first window, so the val/test sets are fixed.
Every random choice is drawn from ``(seed, epoch, index)`` (``zoo.training.loader``), evaluation ones from
``(seed, index)``: a resumed run reads the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.domains.protein.layout import MASK_ID, PAD_ID, causal_layout, fim_layout
from zoo.training.language_model import IGNORE_INDEX
from zoo.training.loader import ResumableDataLoader, SampleKey, resumable_loader
from zoo.vocab import PROTEIN_TOKENS

Objective = Literal["causal", "masked", "fim"]
Context = Literal["none", "cluster"]

_ID = {token: i for i, token in enumerate(PROTEIN_TOKENS)}
#: Ids of the 20 standard residues (random replacements of the masked objective).
STANDARD_IDS = np.array([_ID[aa] for aa in "ACDEFGHIKLMNPQRSTVWY"], dtype=np.int64)
#: Residue ids (standard and X B Z U O): the only positions the masked objective corrupts.
RESIDUE_IDS = np.array([_ID[aa] for aa in "ACDEFGHIKLMNPQRSTVWYXBZUO"], dtype=np.int64)
#: Special tokens a layout adds around the query at most (``[BOS]``, ``[MASK]``, ``[FIM]`` / ``[EOS]``).
LAYOUT_TOKENS = 3


def crop(ids: np.ndarray, length: int, rng: np.random.Generator | None) -> np.ndarray:
    """At most ``length`` ids: a random window with ``rng`` (training), else the first window (evaluation)."""
    if len(ids) <= length:
        return ids
    start = 0 if rng is None else int(rng.integers(0, len(ids) - length + 1))
    return ids[start : start + length]


def make_example(
    query: np.ndarray,
    context: Sequence[np.ndarray],
    objective: Objective,
    rng: np.random.Generator,
    fim_rate: float = 0.5,
    mask_prob: float = 0.15,
    context_loss: bool = True,
) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``labels`` ``[T]`` (int64, ``-100`` = no loss) of one query after its ``context``."""
    query = np.asarray(query, dtype=np.int64)
    if objective == "masked":
        ids, start = causal_layout(query, context)
        inputs, labels = ids.copy(), np.full_like(ids, IGNORE_INDEX)
        eligible = np.isin(ids, RESIDUE_IDS)
        if not context_loss:
            eligible[:start] = False
        chosen = eligible & (rng.random(len(ids)) < mask_prob)
        if not chosen.any() and eligible.any():  # a short query must still teach something
            chosen[rng.choice(np.flatnonzero(eligible))] = True
        labels[chosen] = ids[chosen]
        # BERT's recipe: of the chosen positions 80% become [MASK], 10% a random residue, 10% stay.
        roll = rng.random(len(ids))
        inputs[chosen & (roll < 0.8)] = MASK_ID
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        inputs[swap] = rng.choice(STANDARD_IDS, size=int(swap.sum()))
    else:
        if objective == "fim" and len(query) >= 2 and rng.random() < fim_rate:
            span_start = int(rng.integers(0, len(query)))
            span_end = int(rng.integers(span_start + 1, len(query) + 1))
            ids, _ = fim_layout(query, span_start, span_end, context)
        else:
            ids, _ = causal_layout(query, context)
        inputs, labels = ids[:-1], ids[1:].copy()
        if not context_loss:
            # labels[j] predicts ids[j + 1]: the first len(prefix) - 1 labels are the homologs and their [SEP]s.
            labels[: _prefix_length(context) - 1] = IGNORE_INDEX
    return {"input_ids": torch.from_numpy(np.ascontiguousarray(inputs)), "labels": torch.from_numpy(labels)}


def _prefix_length(context: Sequence[np.ndarray]) -> int:
    """Tokens of ``[BOS] h_1 [SEP] ... h_k [SEP]``."""
    return 1 + sum(len(h) + 1 for h in context)


def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Right-pad a list of examples to the longest: ``[PAD]`` inputs, ``-100`` labels. ``[B, T]`` each."""
    width = max(len(e["input_ids"]) for e in examples)
    inputs = torch.full((len(examples), width), PAD_ID, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        inputs[row, :n], labels[row, :n] = example["input_ids"], example["labels"]
    return {"input_ids": inputs, "labels": labels}


class ProteinExamples(Dataset):
    """Examples of the sequences ``rows`` of ``encoded``: training (random crops, per-epoch randomness) or
    evaluation (first windows, randomness fixed per index)."""

    def __init__(
        self,
        encoded: Sequence[np.ndarray],
        rows: np.ndarray,
        cluster_ids: np.ndarray,
        *,
        train: bool,
        objective: Objective,
        max_length: int,
        context: Context,
        max_context_tokens: int,
        context_loss: bool,
        fim_rate: float,
        mask_prob: float,
        seed: int,
        length: int | None = None,
    ):
        if len(rows) == 0:
            raise ValueError("a split has no sequence")
        self.encoded, self.rows, self.train = encoded, np.asarray(rows), train
        self.length = len(self.rows) if length is None else length
        self.objective, self.max_length, self.context = objective, max_length, context
        self.max_context_tokens, self.context_loss = max_context_tokens, context_loss
        self.fim_rate, self.mask_prob, self.seed = fim_rate, mask_prob, seed
        # Members of each cluster among these rows only: a homolog never comes from another split.
        order = np.argsort(cluster_ids[self.rows], kind="stable")
        members: dict[int, list[int]] = {}
        for row in self.rows[order].tolist():
            members.setdefault(int(cluster_ids[row]), []).append(row)
        self.members, self.cluster_ids = members, cluster_ids

    def __len__(self) -> int:
        return self.length

    def homologs(self, row: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Cropped other members of ``row``'s cluster (shuffled with ``rng``, else in corpus order) that fit
        into ``max_context_tokens`` (each costs its length + 1 for its ``[SEP]``)."""
        if self.context == "none":
            return []
        others = [r for r in self.members[int(self.cluster_ids[row])] if r != row]
        if rng is not None:
            others = [others[i] for i in rng.permutation(len(others))]
        chosen, used = [], 0
        for other in others:
            homolog = crop(self.encoded[other], self.max_length - LAYOUT_TOKENS, rng)
            if used + len(homolog) + 1 > self.max_context_tokens:
                break
            chosen.append(homolog)
            used += len(homolog) + 1
        return chosen

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        if self.train:
            rng = np.random.default_rng([self.seed, key.epoch, key.index])
            row = int(self.rows[key.index % len(self.rows)])
            crop_rng = rng
        else:
            rng = np.random.default_rng([self.seed, key.index])
            row, crop_rng = int(self.rows[key.index]), None
        query = crop(self.encoded[row], self.max_length - LAYOUT_TOKENS, crop_rng)
        context = self.homologs(row, crop_rng)
        return make_example(query, context, self.objective, rng, self.fim_rate, self.mask_prob, self.context_loss)


class ProteinLMDataModule(pl.LightningDataModule):
    """Protein language-model batches ``{"input_ids", "labels"}`` ``[B, T]`` from a named corpus or a FASTA file,
    split by sequence similarity."""

    def __init__(
        self,
        corpus: str | None = None,
        fasta: str | None = None,
        objective: Objective = "causal",
        max_length: int = 1024,
        batch_size: int = 8,
        context: Context = "none",
        max_context_tokens: int = 16_384,
        context_loss: bool = True,
        fim_rate: float = 0.5,
        mask_prob: float = 0.15,
        samples_per_epoch: int | None = None,
        max_val_sequences: int | None = None,
        max_test_sequences: int | None = None,
        split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
        min_shared: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
    ):
        """
        Args:
            corpus: a named corpus (``uniprot-20k``, ``swissprot-435k``).
            fasta: a FASTA file of your own sequences (clustered and split like a corpus). Give exactly one.
            objective: ``causal`` (next token), ``masked`` (BERT-style, bidirectional models) or ``fim``
                (causal with fill-in-the-middle, for causal models scored by masked marginals).
            max_length: longest query layout in tokens; longer sequences are cropped (module docstring).
            batch_size: examples per batch and process.
            context: ``none`` or ``cluster`` (homologs of the same similarity cluster and split before the query).
            max_context_tokens: most homolog tokens (with their ``[SEP]``) before a query.
            context_loss: take the loss on the homologs too (ProtMamba) or only on the query.
            fim_rate: probability that a ``fim`` example moves a span behind ``[FIM]``.
            mask_prob: fraction of residues chosen by the masked objective.
            samples_per_epoch: training examples per epoch; default: one per training sequence.
            max_val_sequences: cap on validation sequences (evenly spaced) to keep validation cheap.
            max_test_sequences: cap on test sequences; default: all.
            split_fractions: train / val / test fractions of sequences (whole clusters per split).
            min_shared: similarity threshold of the clustering (``zoo.domains.protein.similarity``).
            num_workers: DataLoader worker processes.
            seed: seed of the split, crops, masks, spans and order.
            cache_dir: data cache folder (default: the user cache).
        """
        super().__init__()
        if (corpus is None) == (fasta is None):
            raise ValueError("data.corpus / data.fasta: give exactly one (set the other to null)")
        if corpus is not None:
            from zoo.domains.protein.corpus import get_source

            get_source(corpus)  # an unknown name fails here, before any download
        if fasta is not None and not Path(fasta).is_file():
            raise FileNotFoundError(f"data.fasta: {fasta} does not exist")
        if objective not in ("causal", "masked", "fim"):
            raise ValueError(f"data.objective must be 'causal', 'masked' or 'fim', got {objective!r}")
        if context not in ("none", "cluster"):
            raise ValueError(f"data.context must be 'none' or 'cluster', got {context!r}")
        if max_length <= LAYOUT_TOKENS or batch_size <= 0 or max_context_tokens < 0:
            raise ValueError(
                f"data.max_length must exceed {LAYOUT_TOKENS}, data.batch_size be positive and "
                f"data.max_context_tokens non-negative; got {max_length}, {batch_size}, {max_context_tokens}"
            )
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"data.mask_prob must lie in (0, 1), got {mask_prob}")
        if not 0.0 <= fim_rate <= 1.0:
            raise ValueError(f"data.fim_rate must lie in [0, 1], got {fim_rate}")
        self.corpus_name, self.fasta, self.cache_dir = corpus, fasta, cache_dir
        self.objective, self.max_length, self.batch_size = objective, max_length, batch_size
        self.context, self.max_context_tokens, self.context_loss = context, max_context_tokens, context_loss
        self.fim_rate, self.mask_prob = fim_rate, mask_prob
        self.samples_per_epoch, self.max_val_sequences = samples_per_epoch, max_val_sequences
        self.max_test_sequences, self.split_fractions = max_test_sequences, tuple(split_fractions)
        self.min_shared, self.num_workers, self.seed = min_shared, num_workers, seed
        self.corpus = None
        self.encoded: list[np.ndarray] | None = None

    def prepare_data(self) -> None:
        """Fetch, parse and cluster a named corpus into the cache once (rank 0) before any process reads it."""
        if self.corpus_name is not None:
            self._load_corpus()

    def setup(self, stage: str | None = None) -> None:
        """Load the corpus (or cluster the FASTA file) and encode every sequence."""
        if self.corpus is not None:
            return
        from zoo.domains.protein.tokenizer import ProteinTokenizer

        if self.fasta is not None:
            from zoo.domains.protein.corpus import build_corpus
            from zoo.domains.protein.readers import read_fasta

            records = read_fasta(self.fasta)
            self.corpus = build_corpus(
                self.fasta, list(records), list(records.values()), min_shared=self.min_shared,
                fractions=self.split_fractions, seed=self.seed,
            )  # fmt: skip
        else:
            self.corpus = self._load_corpus()
        tokenizer = ProteinTokenizer()
        encoded = []
        for name, sequence in zip(self.corpus.names, self.corpus.sequences):
            try:
                encoded.append(tokenizer.encode(sequence, dtype=np.uint8))
            except ValueError as error:
                raise ValueError(f"{self.corpus.name}: sequence {name!r}: {error}") from None
        self.encoded = encoded

    def _load_corpus(self):
        from zoo.domains.protein.corpus import load_corpus

        return load_corpus(
            self.corpus_name, cache_dir=self.cache_dir, min_shared=self.min_shared,
            fractions=self.split_fractions, seed=self.seed,
        )  # fmt: skip

    def dataset(self, split: str) -> ProteinExamples:
        """The examples of ``split`` (``train``, ``val`` or ``test``)."""
        if self.corpus is None:
            self.setup()
        rows = self.corpus.indices(split)
        cap = {"val": self.max_val_sequences, "test": self.max_test_sequences}.get(split)
        if cap is not None and len(rows) > cap:
            rows = rows[np.linspace(0, len(rows) - 1, cap).round().astype(int)]
        train = split == "train"
        return ProteinExamples(
            self.encoded, rows, self.corpus.cluster_ids, train=train, objective=self.objective,
            max_length=self.max_length, context=self.context, max_context_tokens=self.max_context_tokens,
            context_loss=self.context_loss, fim_rate=self.fim_rate, mask_prob=self.mask_prob, seed=self.seed,
            length=self.samples_per_epoch if train else None,
        )  # fmt: skip

    def _loader(self, split: str) -> ResumableDataLoader:
        shuffle = split == "train"
        return resumable_loader(
            self, self.dataset(split), shuffle=shuffle, batch_size=self.batch_size, seed=self.seed,
            num_workers=self.num_workers, drop_last=shuffle, collate_fn=collate,
        )  # fmt: skip

    def train_dataloader(self) -> ResumableDataLoader:
        """Randomly cropped training sequences in a resumable order."""
        return self._loader("train")

    def val_dataloader(self) -> ResumableDataLoader:
        """Validation sequences (first windows; at most ``max_val_sequences``)."""
        return self._loader("val")

    def test_dataloader(self) -> ResumableDataLoader:
        """Test sequences (first windows; at most ``max_test_sequences``)."""
        return self._loader("test")
