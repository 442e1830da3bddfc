"""Genome-window language-model data: chromosome-held-out splits, causal or masked objective.

Training samples are windows at random positions of the training chromosomes; validation and test
tile their held-out chromosomes with non-overlapping windows, so no base of a test chromosome is
ever seen in training (a leak between sets is an error, not a warning).
Every random choice (window position, reverse-complement flip, masked positions) is drawn from
``(seed, epoch, index)`` — see ``zoo.training.loader`` — so a resumed or multi-process run reads the
same samples as an uninterrupted single-process one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.training.language_model import IGNORE_INDEX
from zoo.training.loader import ResumableDataLoader, SampleKey, resumable_loader
from zoo.vocab import DNA_TOKENS, dna_complement_map

Objective = Literal["causal", "masked"]

_ID = {token: i for i, token in enumerate(DNA_TOKENS)}
BASES = np.array([_ID[b] for b in "ACGT"], dtype=np.int64)
N_ID, MASK_ID = _ID["N"], _ID["[MASK]"]
_COMPLEMENT = np.array(dna_complement_map(len(DNA_TOKENS)), dtype=np.int64)


def make_example(window: np.ndarray, objective: Objective, mask_prob: float, rng: np.random.Generator) -> dict:
    """Inputs and labels ``[T]`` of one window of token ids (``T + 1`` ids for causal, ``T`` for masked)."""
    window = window.astype(np.int64)
    if objective == "causal":
        inputs, labels = window[:-1], window[1:].copy()
        labels[labels == N_ID] = IGNORE_INDEX  # an unknown base is no target
    else:
        inputs, labels = window.copy(), np.full_like(window, IGNORE_INDEX)
        chosen = (rng.random(window.shape[0]) < mask_prob) & (window != N_ID)
        labels[chosen] = window[chosen]
        # BERT's recipe: of the chosen positions 80% become [MASK], 10% a random base, 10% stay.
        roll = rng.random(window.shape[0])
        inputs[chosen & (roll < 0.8)] = MASK_ID
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        inputs[swap] = rng.choice(BASES, size=int(swap.sum()))
    return {"input_ids": torch.from_numpy(np.ascontiguousarray(inputs)), "labels": torch.from_numpy(labels)}


class RandomWindows(Dataset):
    """``length`` windows per epoch at positions drawn from ``(seed, epoch, index)``, length-weighted."""

    def __init__(
        self,
        sequences: Sequence[np.ndarray],
        window: int,
        length: int,
        objective: Objective,
        mask_prob: float,
        rc_augment: bool,
        seed: int,
    ):
        self.span = window + (objective == "causal")
        self.sequences = [s for s in sequences if len(s) >= self.span]
        if not self.sequences:
            raise ValueError(f"no training sequence is as long as one window ({self.span} bases)")
        starts = np.array([len(s) - self.span + 1 for s in self.sequences], dtype=np.float64)
        self.weights = starts / starts.sum()
        self.length, self.objective, self.mask_prob = length, objective, mask_prob
        self.rc_augment, self.seed = rc_augment, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: SampleKey) -> dict:
        rng = np.random.default_rng([self.seed, key.epoch, key.index])
        sequence = self.sequences[rng.choice(len(self.sequences), p=self.weights)]
        start = int(rng.integers(0, len(sequence) - self.span + 1))
        window = sequence[start : start + self.span]
        if self.rc_augment and rng.random() < 0.5:
            window = _COMPLEMENT[window[::-1]]
        return make_example(window, self.objective, self.mask_prob, rng)


class TiledWindows(Dataset):
    """Non-overlapping windows covering each sequence (at most ``max_windows``, evenly spaced)."""

    def __init__(
        self,
        sequences: Sequence[np.ndarray],
        window: int,
        objective: Objective,
        mask_prob: float,
        seed: int,
        max_windows: int | None = None,
    ):
        self.span = window + (objective == "causal")
        self.sequences = list(sequences)
        self.places = [
            (i, start) for i, s in enumerate(self.sequences) for start in range(0, len(s) - self.span + 1, window)
        ]
        if not self.places:
            raise ValueError(f"no evaluation sequence is as long as one window ({self.span} bases)")
        if max_windows is not None and len(self.places) > max_windows:
            keep = np.linspace(0, len(self.places) - 1, max_windows).round().astype(int)
            self.places = [self.places[i] for i in keep]
        self.objective, self.mask_prob, self.seed = objective, mask_prob, seed

    def __len__(self) -> int:
        return len(self.places)

    def __getitem__(self, key: SampleKey) -> dict:
        i, start = self.places[key.index]
        # Evaluation masks depend on the index alone: identical in every epoch.
        rng = np.random.default_rng([self.seed, key.index])
        return make_example(self.sequences[i][start : start + self.span], self.objective, self.mask_prob, rng)


class GenomeDataModule(pl.LightningDataModule):
    """Windows of a pretraining corpus (``zoo.domains.genomics.corpus``: segments of several genomes, split by
    the corpus), of a named genome (``zoo.domains.genomics.genomes``) or of a FASTA file (split by chromosome)."""

    def __init__(
        self,
        val_chromosomes: list[str] | None = None,
        test_chromosomes: list[str] | None = None,
        train_chromosomes: list[str] | None = None,
        genome: str | None = None,
        fasta: str | None = None,
        corpus: str | None = None,
        window: int = 1024,
        objective: Objective = "causal",
        mask_prob: float = 0.15,
        rc_augment: bool = False,
        batch_size: int = 16,
        samples_per_epoch: int | None = None,
        max_val_windows: int | None = None,
        max_test_windows: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
    ):
        """
        Args:
            val_chromosomes: held-out chromosomes for validation (with ``genome`` or ``fasta``).
            test_chromosomes: held-out chromosomes for the test set (with ``genome`` or ``fasta``).
            train_chromosomes: training chromosomes; default: every chromosome not held out.
            genome: a named genome (``yeast-s288c``).
            fasta: a FASTA file (records = chromosomes).
            corpus: a named corpus (``dna-corpus``), whose segments fix the split: no ``*_chromosomes`` then.
                Give exactly one of ``genome``, ``fasta`` and ``corpus``.
            window: tokens per example.
            objective: ``causal`` (next base) or ``masked`` (BERT-style, for bidirectional models).
            mask_prob: fraction of bases masked for the masked objective.
            rc_augment: reverse-complement half of the training windows.
            batch_size: examples per batch and process.
            samples_per_epoch: training windows per epoch; default: training bases / window.
            max_val_windows: cap on validation windows (evenly spaced) to keep validation cheap; default: all.
            max_test_windows: cap on test windows (evenly spaced over the test chromosomes); default: all, so
                the test set covers its chromosomes completely. A cap trades coverage for time on slow models.
            num_workers: DataLoader worker processes.
            seed: seed of window positions, masks and order.
            cache_dir: data cache folder (default: the user cache).
        """
        super().__init__()
        if sum(x is not None for x in (genome, fasta, corpus)) != 1:
            raise ValueError("data.genome / data.fasta / data.corpus: give exactly one (set the others to null)")
        if corpus is not None:
            from zoo.domains.genomics.corpus import get_corpus

            get_corpus(corpus)  # an unknown name fails here, before any download
            given = [k for k, v in (("train", train_chromosomes), ("val", val_chromosomes),
                                    ("test", test_chromosomes)) if v is not None]  # fmt: skip
            if given:
                raise ValueError(f"data.{given[0]}_chromosomes: a corpus fixes its own split; leave it unset")
        elif val_chromosomes is None or test_chromosomes is None:
            raise ValueError("data.val_chromosomes and data.test_chromosomes: name the held-out chromosomes")
        if fasta is not None and not Path(fasta).is_file():
            raise FileNotFoundError(f"data.fasta: {fasta} does not exist")
        if window <= 0 or batch_size <= 0:
            raise ValueError(f"data.window and data.batch_size must be positive, got {window} and {batch_size}")
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"data.mask_prob must lie in (0, 1), got {mask_prob}")
        self.genome_name, self.fasta, self.corpus, self.cache_dir = genome, fasta, corpus, cache_dir
        self.val_chromosomes = None if val_chromosomes is None else list(val_chromosomes)
        self.test_chromosomes = None if test_chromosomes is None else list(test_chromosomes)
        self.train_chromosomes = None if train_chromosomes is None else list(train_chromosomes)
        self.window, self.objective, self.mask_prob, self.rc_augment = window, objective, mask_prob, rc_augment
        self.batch_size, self.samples_per_epoch, self.max_val_windows = batch_size, samples_per_epoch, max_val_windows
        self.max_test_windows = max_test_windows
        self.num_workers, self.seed = num_workers, seed
        self.sequences: dict[str, np.ndarray] | None = None

    def prepare_data(self) -> None:
        """Fetch the genome(s) into the cache once (rank 0) before any process reads it."""
        if self.corpus is not None:
            from zoo.domains.genomics.corpus import get_corpus
            from zoo.domains.genomics.genomes import load_genome

            for name in get_corpus(self.corpus).genomes:
                load_genome(name, cache_dir=self.cache_dir)
        elif self.genome_name is not None:
            from zoo.domains.genomics.genomes import load_genome

            load_genome(self.genome_name, cache_dir=self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        """Load the chromosomes and check the split."""
        if self.sequences is None:
            self.sequences = self._load_sequences()
            self._check_split()

    def _load_sequences(self) -> dict[str, np.ndarray]:
        if self.corpus is not None:
            from zoo.domains.genomics.corpus import load_split

            sequences = {}
            for split in ("train", "val", "test"):
                part = load_split(self.corpus, split, cache_dir=self.cache_dir)
                setattr(self, f"{split}_chromosomes", list(part))
                sequences |= part
            return sequences
        if self.fasta is not None:
            from zoo.domains.genomics.readers import open_genome

            return dict(open_genome(self.fasta))
        from zoo.domains.genomics.genomes import load_genome

        return dict(load_genome(self.genome_name, cache_dir=self.cache_dir).chromosomes)

    def _check_split(self) -> None:
        names = list(self.sequences)
        if self.train_chromosomes is None:
            held_out = set(self.val_chromosomes) | set(self.test_chromosomes)
            self.train_chromosomes = [n for n in names if n not in held_out]
        for key in ("train_chromosomes", "val_chromosomes", "test_chromosomes"):
            chosen = getattr(self, key)
            unknown = [c for c in chosen if c not in self.sequences]
            if unknown:
                raise ValueError(f"data.{key}: unknown chromosome(s) {unknown}; this genome has {names}")
            if not chosen:
                raise ValueError(f"data.{key}: no chromosome left")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(getattr(self, f"{a}_chromosomes")) & set(getattr(self, f"{b}_chromosomes"))
            if shared:
                raise ValueError(f"data.{a}_chromosomes and data.{b}_chromosomes share {sorted(shared)}: that leaks")

    def _pick(self, names: list[str]) -> list[np.ndarray]:
        return [self.sequences[n] for n in names]

    def _loader(self, dataset: Dataset, shuffle: bool) -> ResumableDataLoader:
        return resumable_loader(
            self, dataset, shuffle=shuffle, batch_size=self.batch_size, seed=self.seed,
            num_workers=self.num_workers, drop_last=shuffle,
        )  # fmt: skip

    def train_dataloader(self) -> ResumableDataLoader:
        """Random windows of the training chromosomes, in a resumable order."""
        train = self._pick(self.train_chromosomes)
        length = self.samples_per_epoch or sum(len(s) for s in train) // self.window
        dataset = RandomWindows(train, self.window, length, self.objective, self.mask_prob, self.rc_augment, self.seed)
        return self._loader(dataset, shuffle=True)

    def _eval_loader(self, names: list[str], max_windows: int | None) -> ResumableDataLoader:
        dataset = TiledWindows(self._pick(names), self.window, self.objective, self.mask_prob, self.seed, max_windows)
        return self._loader(dataset, shuffle=False)

    def val_dataloader(self) -> ResumableDataLoader:
        """Tiled windows of the validation chromosomes (at most ``max_val_windows``)."""
        return self._eval_loader(self.val_chromosomes, self.max_val_windows)

    def test_dataloader(self) -> ResumableDataLoader:
        """Tiled windows covering the test chromosomes completely (at most ``max_test_windows``)."""
        return self._eval_loader(self.test_chromosomes, self.max_test_windows)
