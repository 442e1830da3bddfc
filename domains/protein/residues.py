"""Per-residue labelled proteins for fine-tuning (``zoo.training.sequence_tasks.TokenClassificationTask``).

Sources: the named ``secondary-structure`` task (``zoo.domains.protein.structure``; Q3 or Q8 DSSP states), or
the user's CSV / TSV with a ``sequence`` column and a per-residue label string (``labels``: one character per
residue, e.g. ``HHHEEC``; the classes are the distinct characters, sorted, unless ``classes`` is given) and an
optional ``split`` column (``train``/``val``/``test``); without one the rows are split by sequence similarity
(``zoo.domains.protein.similarity``). Batches::

    input_ids       [B, T] long   amino-acid ids (zoo/vocab.py), right-padded with [PAD] (id 4)
    attention_mask  [B, T] bool   True on residues
    labels          [B, T] long   class index per residue; -100 on padding and unlabelled residues

Chains longer than ``max_length`` are cropped: in training to a window at a random offset drawn from
``(seed, epoch, index)`` (``zoo.training.loader``), so a resumed or multi-process run sees the same crops; at
val / test / predict time either cut into consecutive windows (``eval_crop="windows"``: every residue scored
exactly once, a window boundary cuts the context) or to the first ``max_length`` residues (``"first"``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.domains.protein.structure import CLASSES, IGNORE_INDEX, Labels, TerminalCoil, dssp_to_labels
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.training.loader import ResumableDataLoader, SampleKey, resumable_loader

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EvalCrop = Literal["windows", "first"]
#: Named per-residue tasks.
DATASETS = ("secondary-structure",)
_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


class ResidueCrops(Dataset):
    """Encoded chains with per-residue labels, each example one crop of at most ``max_length`` residues.

    ``windows`` lists ``(chain, start)`` crops to serve in order (evaluation); without it every chain is one
    example, cropped at a random offset drawn from ``(seed, epoch, index)`` when longer than ``max_length``.
    """

    def __init__(
        self,
        ids: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        max_length: int,
        windows: list[tuple[int, int]] | None = None,
        seed: int = 0,
    ):
        self.ids, self.labels, self.max_length, self.windows, self.seed = ids, labels, max_length, windows, seed

    def __len__(self) -> int:
        return len(self.windows) if self.windows is not None else len(self.ids)

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        if not isinstance(key, SampleKey):
            key = SampleKey(0, int(key))
        if self.windows is not None:
            chain, start = self.windows[key.index]
        else:
            chain, start = key.index, 0
            excess = len(self.ids[chain]) - self.max_length
            if excess > 0:
                start = int(np.random.default_rng([self.seed, key.epoch, key.index]).integers(0, excess + 1))
        end = start + self.max_length
        return {"input_ids": self.ids[chain][start:end], "labels": self.labels[chain][start:end]}


def eval_windows(lengths: Sequence[int], max_length: int, eval_crop: EvalCrop) -> list[tuple[int, int]]:
    """``(chain, start)`` of the evaluation crops: consecutive windows covering each chain, or its first one."""
    if eval_crop == "first":
        return [(i, 0) for i in range(len(lengths))]
    return [(i, start) for i, n in enumerate(lengths) for start in range(0, n, max_length)]


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Right-pad ``{"input_ids": [L], "labels": [L]}`` examples into the batch of the module docstring."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), ProteinTokenizer.pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        input_ids[row, :n] = torch.from_numpy(np.asarray(example["input_ids"], dtype=np.int64))
        labels[row, :n] = torch.from_numpy(np.asarray(example["labels"], dtype=np.int64))
        attention_mask[row, :n] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class ResidueLabelDataModule(pl.LightningDataModule):
    """Per-residue classification of proteins: a named task (``secondary-structure``) or a user's table."""

    def __init__(
        self,
        dataset: str | None = "secondary-structure",
        path: str | None = None,
        labels: Labels = "q3",
        terminal_coil: TerminalCoil = "ignore",
        max_chains: int | None = None,
        sequence_column: str = "sequence",
        label_column: str = "labels",
        split_column: str = "split",
        classes: list[str] | None = None,
        ignore_chars: str = "?",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_length: int = 1024,
        eval_crop: EvalCrop = "windows",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        mirror: str | None = None,
    ):
        """
        Args:
            dataset: a named task (``secondary-structure``); ignored when ``path`` is given.
            path: a CSV / TSV file with one protein per row: ``sequence_column``, ``label_column`` (a string of
                one label character per residue) and optionally ``split_column``.
            labels: ``q3`` (H E C) or ``q8`` (H G I E B T S C) DSSP states (named task only).
            terminal_coil: ``ignore`` leaves the chain-end coil runs unlabelled (where the file hides residues
                without coordinates; see ``zoo.domains.protein.structure``), ``label`` scores them as coil.
            max_chains: keep a seeded random subset of this many distinct chains (named task; quick runs).
            sequence_column: column of the sequences (user file).
            label_column: column of the per-residue label strings (user file).
            split_column: column of the splits (user file); without it the rows are split by similarity.
            classes: label characters in class-index order (user file); default: the sorted distinct characters.
            ignore_chars: label characters meaning "unlabelled" (-100, no loss) in a user file.
            val_fraction: share of rows for validation when the user file has no split column.
            test_fraction: share of rows for testing when the user file has no split column.
            max_length: longest crop fed to the model (residues).
            eval_crop: ``windows`` (consecutive crops covering each chain) or ``first`` (its first crop) at
                val / test / predict time.
            batch_size: crops per batch and process.
            num_workers: DataLoader worker processes.
            seed: seed of the subset, the similarity split, the order and the training crops.
            cache_dir: data cache folder (default: the user cache).
            mirror: a folder holding the pinned artifact files, for machines without index access.
        """
        super().__init__()
        if path is None and dataset not in DATASETS:
            raise ValueError(f"data.dataset={dataset!r} is not a per-residue task {DATASETS}; or give data.path")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"data.path: {path} does not exist")
        if labels not in CLASSES:
            raise ValueError(f"data.labels must be 'q3' or 'q8', got {labels!r}")
        if not ignore_chars.isascii():
            raise ValueError(f"data.ignore_chars must be ASCII characters, got {ignore_chars!r}")
        if eval_crop not in ("windows", "first"):
            raise ValueError(f"data.eval_crop must be 'windows' or 'first', got {eval_crop!r}")
        for key, value in (("batch_size", batch_size), ("max_length", max_length), ("max_chains", max_chains)):
            if value is not None and value <= 0:
                raise ValueError(f"data.{key} must be positive, got {value}")
        if not (0.0 < val_fraction < 1.0 and 0.0 < test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
            raise ValueError(
                f"data.val_fraction / data.test_fraction must be in (0, 1) with a sum < 1, "
                f"got {val_fraction} and {test_fraction}"
            )
        self.dataset = None if path is not None else dataset
        self.path, self.labels, self.terminal_coil, self.max_chains = path, labels, terminal_coil, max_chains
        self.sequence_column, self.label_column, self.split_column = sequence_column, label_column, split_column
        self.classes: tuple[str, ...] | None = None if classes is None else tuple(classes)
        self.ignore_chars, self.val_fraction, self.test_fraction = ignore_chars, val_fraction, test_fraction
        self.max_length, self.eval_crop, self.batch_size = max_length, eval_crop, batch_size
        self.num_workers, self.seed, self.cache_dir, self.mirror = num_workers, seed, cache_dir, mirror
        self.tokenizer = ProteinTokenizer()
        self.frame: pd.DataFrame | None = None
        self._ids: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    @property
    def num_classes(self) -> int:
        """Number of per-residue classes; known after ``setup()`` for a user file."""
        return len(self.classes) if self.classes else 0

    def prepare_data(self) -> None:
        """Fetch and parse a named task into the cache once (rank 0) before any process reads it."""
        if self.dataset is not None:
            self._load_named()

    def setup(self, stage: str | None = None) -> None:
        """Read the source, check and encode sequences and labels, split the rows (once)."""
        if self.frame is not None:
            return
        frame, labels, where = self._load_named() if self.dataset is not None else self._read_file()
        ids = []
        for i, seq in enumerate(frame["sequence"]):
            try:
                ids.append(self.tokenizer.encode(seq, dtype=np.uint8))
            except ValueError as error:
                raise ValueError(f"{where[i]}: {error}") from None
        labelled = np.array([(y != IGNORE_INDEX).any() for y in labels], dtype=bool)
        if not labelled.all():
            logger.info("dropping %d chains without any labelled residue", int((~labelled).sum()))
        keep = np.flatnonzero(labelled)
        self.frame = frame.iloc[keep].reset_index(drop=True)
        self._ids, self._labels = [ids[i] for i in keep], [labels[i] for i in keep]
        counts = self.frame["split"].value_counts()
        empty = [s for s in SPLITS if counts.get(s, 0) == 0]
        if empty:
            raise ValueError(f"split(s) {empty} have no labelled chains (chains per split: {counts.to_dict()})")

    def _load_named(self) -> tuple[pd.DataFrame, list[np.ndarray], list[str]]:
        from zoo.domains.protein.structure import load_secondary_structure

        frame = load_secondary_structure(
            max_chains=self.max_chains, seed=self.seed, cache_dir=self.cache_dir, mirror=self.mirror
        )
        self.classes = CLASSES[self.labels]
        where = [f"{self.dataset} chain {c}" for c in frame["id"]]
        labels = [dssp_to_labels(d, self.labels, self.terminal_coil, w) for d, w in zip(frame["dssp"], where)]
        return frame, labels, where

    def _read_file(self) -> tuple[pd.DataFrame, list[np.ndarray], list[str]]:
        path = Path(self.path)
        suffixes = [s.lower() for s in path.suffixes]
        suffix = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else path.suffix.lower()
        if suffix not in _SEPARATORS:
            raise ValueError(f"data.path: {path} is not a table ({', '.join(_SEPARATORS)}, optionally .gz)")
        frame = pd.read_csv(path, sep=_SEPARATORS[suffix], dtype=str, keep_default_na=False)
        missing = [c for c in (self.sequence_column, self.label_column) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {missing}; columns present: {list(frame.columns)} "
                "(set data.sequence_column / data.label_column)"
            )
        where = [f"{path} line {i + 2}" for i in range(len(frame))]  # line 1 is the header
        if frame.empty:
            raise ValueError(f"{path}: no rows")
        sequences, strings = frame[self.sequence_column].tolist(), frame[self.label_column].tolist()
        for i, (seq, text) in enumerate(zip(sequences, strings)):
            if not seq:
                raise ValueError(f"{where[i]}: empty sequence")
            if len(seq) != len(text):
                raise ValueError(
                    f"{where[i]}: {len(seq)} residues but {len(text)} label characters (one per residue expected)"
                )
        if self.classes is None:
            self.classes = tuple(sorted(set("".join(strings)) - set(self.ignore_chars)))
        if len(self.classes) < 2:
            raise ValueError(f"{path}: per-residue classification needs at least 2 classes, got {self.classes}")
        both = sorted(set(self.classes) & set(self.ignore_chars))
        if both:
            raise ValueError(f"data.classes and data.ignore_chars share {both}: a label is a class or ignored")
        table = np.full(128, -1, dtype=np.int64)
        for i, name in enumerate(self.classes):
            if len(name) != 1 or not name.isascii():
                raise ValueError(f"data.classes: {name!r} is not one ASCII character")
            table[ord(name)] = i
        for char in self.ignore_chars:
            table[ord(char)] = IGNORE_INDEX
        labels = []
        for i, text in enumerate(strings):
            if not text.isascii():
                bad = next(j for j, c in enumerate(text) if not c.isascii())
                raise ValueError(f"{where[i]}: label {text[bad]!r} at position {bad} is not an ASCII character")
            y = table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
            if (y == -1).any():
                bad = int(np.argmax(y == -1))
                raise ValueError(
                    f"{where[i]}: label {text[bad]!r} at position {bad} is not one of the classes "
                    f"{list(self.classes)} or data.ignore_chars={self.ignore_chars!r}"
                )
            labels.append(y)
        out = pd.DataFrame({"sequence": sequences})
        if self.split_column in frame.columns:
            split = frame[self.split_column].str.strip().str.lower()
            bad = ~split.isin(SPLITS)
            if bad.any():
                row = int(np.argmax(bad.to_numpy()))
                raise ValueError(f"{where[row]}: split {frame[self.split_column].iloc[row]!r} is not one of {SPLITS}")
            out["split"] = split.to_numpy()
        else:
            from zoo.domains.protein.similarity import cluster_sequences, split_by_cluster

            clusters = cluster_sequences(sequences, seed=self.seed)
            fractions = (1.0 - self.val_fraction - self.test_fraction, self.val_fraction, self.test_fraction)
            out["split"] = np.asarray(split_by_cluster(clusters, fractions=fractions, seed=self.seed))
            logger.info("no split column: similarity split of %d rows: %s", len(out), out["split"].value_counts())
        return out, labels, where

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``frame`` in ``split``."""
        return np.flatnonzero(self.frame["split"].to_numpy() == split)

    def _dataset(self, split: str) -> ResidueCrops:
        rows = self.split_indices(split)
        ids, labels = [self._ids[i] for i in rows], [self._labels[i] for i in rows]
        windows = None if split == "train" else eval_windows([len(x) for x in ids], self.max_length, self.eval_crop)
        return ResidueCrops(ids, labels, self.max_length, windows=windows, seed=self.seed)

    def _loader(self, split: str, shuffle: bool) -> ResumableDataLoader:
        dataset = self._dataset(split)
        # Under DDP every rank must run the same number of training steps: trim to a multiple of the world.
        world = self.trainer.world_size if self.trainer is not None else 1
        return resumable_loader(
            self, dataset, shuffle=shuffle, batch_size=self.batch_size, seed=self.seed,
            num_workers=self.num_workers, drop_last=shuffle and world > 1, collate_fn=collate,
        )  # fmt: skip

    def train_dataloader(self) -> ResumableDataLoader:
        """Training chains in a seeded, resumable order, long ones randomly cropped."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ResumableDataLoader:
        """Validation crops (``eval_crop``) in table order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> ResumableDataLoader:
        """Test crops (``eval_crop``) in table order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Test crops in table order (``eval_windows`` of the test chains says which chain and offset each is).

        A plain ``DataLoader``: Lightning rebuilds the prediction loader around its own batch sampler.
        """
        return DataLoader(self._dataset("test"), batch_size=self.batch_size, collate_fn=collate)
