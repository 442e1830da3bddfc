"""Labelled DNA or protein sequences for fine-tuning: a named task, a CSV/TSV/FASTA file, or BED regions of a genome.

The alphabet picks the tokenizer: ``dna`` (``DNATokenizer``) or ``protein`` (``ProteinTokenizer``). A named task
brings its own (``zoo.domains.genomics.datasets.TASKS`` are DNA, ``zoo.domains.protein.datasets.TASKS`` protein);
files are DNA unless ``alphabet="protein"``. BED regions and reverse-complement augmentation are DNA only.

The class lives here rather than in a domain-neutral module because its BED/genome input needs the genomics
readers; protein users reach it under the same name (``zoo.domains.genomics.labelled.LabelledSequenceDataModule``).

Every source becomes one table (``LabelledSequenceDataModule.frame``) with columns ``sequence`` (str),
``label`` (class index or float), ``split`` (``train``/``val``/``test``) and, when known, ``chrom``
(``"<genome>:<chromosome>"``), ``start``, ``end``. Batches are dicts::

    input_ids       [B, T] long   right-padded with [PAD] (id 4 in both vocabularies) to the longest sequence
    attention_mask  [B, T] bool   True on bases / residues
    labels          [B]           long class indices (classification) or float32 values (regression)

Regression labels are given on their original scale; the data module computes the training mean and
standard deviation (``label_mean``, ``label_std``) and ``SequenceRegressionTask`` reads them at the start of
fitting to standardise its targets (they are stored in the task's checkpoint).
Reverse-complement augmentation is drawn from ``(seed, epoch, index)`` (see ``zoo.training.loader``), so a
resumed or multi-process run sees the same examples as an uninterrupted one.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.domains.genomics.readers import FORMATS, format_of, open_genome
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.domains.protein.tokenizer import Nonstandard, ProteinTokenizer
from zoo.naming import did_you_mean
from zoo.training.loader import ResumableDataLoader, SampleKey, resumable_loader

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
Task = Literal["classification", "regression"]
Alphabet = Literal["dna", "protein"]
#: Alphabet -> module holding that domain's named tasks (``TASKS`` and ``load_labelled``), searched in this order.
TASK_REGISTRIES: dict[str, str] = {"dna": "genomics", "protein": "protein"}
_UNIT = {"dna": "bases", "protein": "residues"}
#: BED fields by name -> 1-based column number (as ``cut -f`` and bedtools count them).
BED_FIELDS = {"chrom": 1, "start": 2, "end": 3, "name": 4, "score": 5, "strand": 6}
_TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


class LabelledSequences(Dataset):
    """Encoded sequences with labels; indexed by ``SampleKey`` so augmentation follows ``(seed, epoch, index)``."""

    def __init__(self, ids: Sequence[np.ndarray], labels: np.ndarray, rc_augment: bool = False, seed: int = 0):
        self.ids, self.labels, self.rc_augment, self.seed = list(ids), labels, rc_augment, seed
        self.tokenizer = DNATokenizer()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: SampleKey | int) -> dict:
        if not isinstance(key, SampleKey):  # a plain index (prediction order): never augmented
            key = SampleKey(0, int(key))
        ids = self.ids[key.index]
        if self.rc_augment and np.random.default_rng([self.seed, key.epoch, key.index]).random() < 0.5:
            ids = self.tokenizer.reverse_complement(ids)
        return {"input_ids": ids, "label": self.labels[key.index]}


def collate(examples: list[dict], pad_id: int = DNATokenizer.pad_id) -> dict[str, torch.Tensor]:
    """Right-pad a list of ``{"input_ids": [L], "label"}`` with ``pad_id`` into the batch dict of the module
    docstring."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        input_ids[row, :n] = torch.from_numpy(np.asarray(example["input_ids"], dtype=np.int64))
        attention_mask[row, :n] = True
    labels = np.array([e["label"] for e in examples])
    dtype = torch.float32 if labels.dtype.kind == "f" else torch.long
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.as_tensor(labels, dtype=dtype)}


class LabelledSequenceDataModule(pl.LightningDataModule):
    """Sequence-level labelled DNA or protein: classification or regression, from a named task or from files."""

    def __init__(
        self,
        dataset: str | None = None,
        path: str | None = None,
        bed: str | None = None,
        genome: str | None = None,
        sequence_column: str = "sequence",
        label_column: str = "label",
        split_column: str = "split",
        task: Task | None = None,
        classes: list[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_length: int | None = None,
        truncate: bool = False,
        rc_augment: bool = False,
        max_train_samples: int | None = None,
        pretraining_corpus: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        unknown: Literal["error", "N"] = "error",
        alphabet: Alphabet | None = None,
        nonstandard: Nonstandard | None = None,
    ):
        """
        Args:
            dataset: a named task: DNA (``zoo.domains.genomics.datasets.TASKS``, e.g. ``oct4-mafk``) or protein
                (``zoo.domains.protein.datasets.TASKS``, e.g. ``localisation``).
            path: a CSV / TSV file (columns named by ``*_column``) or a FASTA file whose headers carry
                ``label=<x>`` and optionally ``split=<s>`` (e.g. ``>seq1 label=1 split=train``).
            bed: a BED file of regions (``chrom start end [name] [score] [strand] [more...]``, 0-based
                half-open) cut from ``genome``; minus-strand regions are reverse-complemented.
            genome: a named genome (``yeast-s288c``) or a FASTA / GenBank / 2bit file; only with ``bed`` (DNA).
                Give exactly one of ``dataset``, ``path`` and ``bed``.
            sequence_column: column of the sequences (CSV/TSV).
            label_column: column of the labels (CSV/TSV); for BED the 1-based column number (``"4"`` is the
                name field, ``"7"`` the first column after strand) or a BED field name (``name``, ``score``).
            split_column: column of the splits (values ``train``/``val``/``test``); for BED a 1-based column
                number. Without it the rows are split at random (``val_fraction``, ``test_fraction``, ``seed``).
            task: ``classification`` or ``regression``; default: the named task's, else classification for
                integer or string labels and regression for float labels.
            classes: class names; string labels map to their index here (default: sorted distinct labels),
                integer labels must lie in ``[0, len(classes))``.
            val_fraction: fraction of rows for validation when there is no split column.
            test_fraction: fraction of rows for testing when there is no split column.
            max_length: longest sequence accepted (bases / residues); a longer one is an error unless ``truncate``.
            truncate: keep the first ``max_length`` bases / residues of longer sequences instead of failing.
            rc_augment: reverse-complement half of the training examples (drawn from seed, epoch and index); DNA.
            max_train_samples: train on a seeded random subset of this many training rows (quick runs).
            pretraining_corpus: a named corpus (``dna-corpus``); warn when val/test regions overlap its
                training segments (needs ``chrom``/``start``/``end``).
            batch_size: examples per batch and process.
            num_workers: DataLoader worker processes.
            seed: seed of the random split, the subsample, the order and the augmentation.
            cache_dir: data cache folder (default: the user cache).
            unknown: what IUPAC ambiguity codes become: ``error`` or ``N`` (DNA).
            alphabet: ``dna`` or ``protein``; default: the named task's, else ``dna`` (files).
            nonstandard: what the residues X B Z U O become (protein; default ``keep``): their own ids, ``X``, or
                ``error`` (see ``ProteinTokenizer``).
        """
        super().__init__()
        given = [k for k, v in (("dataset", dataset), ("path", path), ("bed", bed)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"data.dataset / data.path / data.bed: give exactly one (got {given or 'none'})")
        if (bed is None) != (genome is None):
            raise ValueError("data.genome: give a genome exactly when data.bed is given (regions are cut from it)")
        for key, value in (("path", path), ("bed", bed)):
            if value is not None and not Path(value).is_file():
                raise FileNotFoundError(f"data.{key}: {value} does not exist")
        if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
            raise ValueError(
                f"data.val_fraction / data.test_fraction must be in [0, 1) with a sum < 1, "
                f"got {val_fraction} and {test_fraction}"
            )
        for key, value in (
            ("batch_size", batch_size),
            ("max_length", max_length),
            ("max_train_samples", max_train_samples),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"data.{key} must be positive, got {value}")
        if truncate and max_length is None:
            raise ValueError("data.truncate needs data.max_length")
        if unknown not in ("error", "N"):
            raise ValueError(f"data.unknown must be 'error' or 'N', got {unknown!r}")
        self.alphabet: Alphabet = _resolve_alphabet(dataset, alphabet)
        if self.alphabet == "protein":
            # DNA-only options fail here, before any data is read, naming the option to drop.
            dna_only = {
                "bed": bed is not None,
                "rc_augment": rc_augment,
                "unknown": unknown != "error",
                "pretraining_corpus": pretraining_corpus is not None,
            }
            for key, given in dna_only.items():
                if given:
                    raise ValueError(
                        f"data.{key} is for DNA only (reverse complements, genome regions, IUPAC codes, DNA "
                        f"corpora); the data here is protein: remove data.{key}"
                        + (" (non-standard residues: data.nonstandard)" if key == "unknown" else "")
                    )
            self.tokenizer = ProteinTokenizer(nonstandard="keep" if nonstandard is None else nonstandard)
        else:
            if nonstandard is not None:
                raise ValueError(
                    "data.nonstandard is for protein only (data.alphabet=protein); for DNA see data.unknown"
                )
            self.tokenizer = DNATokenizer(unknown=unknown)
        self.dataset, self.path, self.bed, self.genome = dataset, path, bed, genome
        self.sequence_column, self.label_column, self.split_column = sequence_column, label_column, split_column
        self.task: Task | None = task
        self.classes: tuple[str, ...] | None = None if classes is None else tuple(classes)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.max_length, self.truncate, self.rc_augment = max_length, truncate, rc_augment
        self.max_train_samples, self.pretraining_corpus = max_train_samples, pretraining_corpus
        self.batch_size, self.num_workers, self.seed, self.cache_dir = batch_size, num_workers, seed, cache_dir
        self.frame: pd.DataFrame | None = None
        self.label_mean: float | None = None
        self.label_std: float | None = None
        self._ids: list[np.ndarray] = []

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for regression); known after ``setup()``."""
        return 0 if not self.classes else len(self.classes)

    def prepare_data(self) -> None:
        """Fetch a named task or genome into the cache once (rank 0) before any process reads it."""
        if self.dataset is not None:
            _datasets(self.alphabet).load_labelled(self.dataset, cache_dir=self.cache_dir)
        elif self.genome is not None and not Path(self.genome).is_file():
            open_genome(self.genome, cache_dir=self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        """Read the source, check it, encode the sequences and split the rows (once)."""
        if self.frame is not None:
            return
        frame, where = self._read()
        frame = frame.reset_index(drop=True)
        frame, ids = self._check_sequences(frame, where)
        frame = self._encode_labels(frame, where)
        frame = self._assign_splits(frame, where)
        if self.max_train_samples is not None:
            frame = self._subsample(frame)
        self._ids = [ids[i] for i in frame.index]  # the index still numbers the rows as read
        self.frame = frame.reset_index(drop=True)
        if self.task == "regression":
            train = self.frame.loc[self.frame["split"] == "train", "label"].to_numpy(np.float64)
            self.label_mean = float(train.mean())
            std = float(train.std())
            self.label_std = std if std > 0 else 1.0  # constant targets: nothing to scale
        self._check_leaks()

    def _read(self) -> tuple[pd.DataFrame, list[str]]:
        """The raw table and, per row, where it came from (for error messages)."""
        if self.dataset is not None:
            registry = _datasets(self.alphabet)
            frame = registry.load_labelled(self.dataset, cache_dir=self.cache_dir)
            spec = registry.TASKS[self.dataset]
            if self.task is None:
                self.task = spec.task
            if self.classes is None and spec.classes:
                self.classes = tuple(spec.classes)
            frame = frame.reset_index(drop=True)
            return self._columns(frame, f"dataset {self.dataset!r}"), [f"{self.dataset} row {i}" for i in frame.index]
        if self.bed is not None:
            return self._read_bed()
        path = Path(self.path)
        suffixes = [x.lower() for x in path.suffixes]
        suffix = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else path.suffix.lower()
        if suffix in _TABLE_SEPARATORS:
            frame = pd.read_csv(path, sep=_TABLE_SEPARATORS[suffix], keep_default_na=False, na_values=[""])
            frame = self._columns(frame, str(path))
            # line 1 is the header
            return frame, [f"{path} line {i + 2}" for i in range(len(frame))]
        try:
            fmt, _ = format_of(path)
        except ValueError:
            fmt = None
        if fmt != "fasta":
            fasta = ", ".join(k for k, v in FORMATS.items() if v == "fasta")
            raise ValueError(
                f"data.path: {path} is neither a table ({', '.join(_TABLE_SEPARATORS)}) nor FASTA ({fasta}, "
                "optionally .gz)"
            )
        return _read_labelled_fasta(path)

    def _columns(self, frame: pd.DataFrame, origin: str) -> pd.DataFrame:
        """Rename the user's columns to ``sequence``/``label``/``split``; a missing one names those present."""
        required = {self.sequence_column: "sequence", self.label_column: "label"}
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{origin}: missing column(s) {missing}; columns present: {list(frame.columns)} "
                "(set data.sequence_column / data.label_column)"
            )
        renames = dict(required)
        if self.split_column in frame.columns:
            renames[self.split_column] = "split"
        clashing = [new for old, new in renames.items() if new in frame.columns and new != old]
        frame = frame.drop(columns=clashing).rename(columns=renames)
        return frame

    def _read_bed(self) -> tuple[pd.DataFrame, list[str]]:
        """Regions of ``self.bed`` cut from ``self.genome`` (reverse-complemented on the minus strand)."""
        label_col = _bed_column(self.label_column, "label_column")
        split_col = _bed_column(self.split_column, "split_column", required=False)
        chromosomes = open_genome(self.genome, cache_dir=self.cache_dir, unknown=self.tokenizer.unknown)
        genome_name = self.genome if not Path(self.genome).is_file() else Path(self.genome).name
        rows, where = [], []
        with open(self.bed) as handle:
            # Read line by line (not pandas) so that every error names the file line.
            for number, line in enumerate(handle, start=1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                fields = line.rstrip("\n").split("\t")
                here = f"{self.bed} line {number}"
                if len(fields) < max(3, label_col, split_col or 0):
                    wanted = f"label (data.label_column) in field {label_col}"
                    if split_col:
                        wanted += f", split (data.split_column) in field {split_col}"
                    raise ValueError(f"{here}: {len(fields)} tab-separated fields; expected the {wanted}")
                chrom, start, end = fields[0], fields[1], fields[2]
                try:
                    start, end = int(start), int(end)
                except ValueError:
                    raise ValueError(f"{here}: start/end {fields[1]!r}/{fields[2]!r} are not integers") from None
                if chrom not in chromosomes:
                    names = list(chromosomes)
                    raise ValueError(
                        f"{here}: chromosome {chrom!r} is not in {genome_name} "
                        f"(it has {names[:10]}{' ...' if len(names) > 10 else ''})"
                    )
                length = len(chromosomes[chrom])
                if not 0 <= start < end <= length:
                    raise ValueError(
                        f"{here}: region {chrom}:{start}-{end} is outside the chromosome [0, {length}) or empty"
                    )
                ids = chromosomes[chrom][start:end]
                strand = fields[5] if len(fields) >= 6 else "+"
                if strand == "-":
                    ids = self.tokenizer.reverse_complement(ids)
                elif strand not in ("+", "."):
                    raise ValueError(f"{here}: strand {strand!r} must be +, - or .")
                row = {
                    "sequence": self.tokenizer.decode(ids),
                    "label": fields[label_col - 1],
                    "chrom": f"{genome_name}:{chrom}",
                    "start": start,
                    "end": end,
                }
                if split_col is not None:
                    row["split"] = fields[split_col - 1]
                rows.append(row)
                where.append(here)
        if not rows:
            raise ValueError(f"{self.bed}: no regions")
        frame = pd.DataFrame(rows)
        frame["label"] = _parse_labels(frame["label"])
        return frame, where

    def _check_sequences(self, frame: pd.DataFrame, where: list[str]) -> tuple[pd.DataFrame, list[np.ndarray]]:
        """Token ids of every row; empty, too long (unless truncated) and invalid sequences name their row."""
        sequences, ids, unit = [], [], _UNIT[self.alphabet]
        for i, seq in enumerate(frame["sequence"]):
            if not isinstance(seq, str) or not seq:
                raise ValueError(f"{where[i]}: empty sequence")
            if self.max_length is not None and len(seq) > self.max_length:
                if not self.truncate:
                    raise ValueError(
                        f"{where[i]}: sequence of {len(seq)} {unit} is longer than data.max_length="
                        f"{self.max_length} (set data.truncate=true to keep its first {unit})"
                    )
                seq = seq[: self.max_length]
            try:
                ids.append(self.tokenizer.encode(seq, dtype=np.uint8))
            except ValueError as error:
                raise ValueError(f"{where[i]}: {error}") from None
            sequences.append(seq)
        return frame.assign(sequence=sequences), ids

    def _encode_labels(self, frame: pd.DataFrame, where: list[str]) -> pd.DataFrame:
        """Labels -> class indices (classification) or float32 (regression); fixes ``task`` and ``classes``."""
        labels = frame["label"]
        missing = labels.isna().to_numpy()
        if missing.any():
            raise ValueError(f"{where[int(np.argmax(missing))]}: missing label")
        kind = labels.dtype.kind
        if self.task is None:
            self.task = "regression" if kind == "f" else "classification"
            logger.info("task inferred from the labels (dtype %s): %s", labels.dtype, self.task)
        if self.task == "regression":
            if kind not in "iuf":
                bad = next(i for i, v in enumerate(labels) if not isinstance(v, (int, float, np.number)))
                raise ValueError(f"{where[bad]}: regression label {labels.iloc[bad]!r} is not a number")
            self.classes = ()
            return frame.assign(label=labels.to_numpy(np.float32))
        if kind == "f":
            if not np.all(np.mod(labels, 1) == 0):
                bad = int(np.argmax(np.mod(labels, 1) != 0))
                raise ValueError(
                    f"{where[bad]}: class label {labels.iloc[bad]!r} is not an integer (regression? "
                    "set data.task=regression)"
                )
            labels, kind = labels.astype(np.int64), "i"
        if kind in "iu":
            values = labels.to_numpy(np.int64)
            if self.classes is None:
                if values.min() < 0:
                    raise ValueError(f"{where[int(np.argmin(values))]}: class index {values.min()} is negative")
                self.classes = tuple(str(i) for i in range(int(values.max()) + 1))
            outside = (values < 0) | (values >= len(self.classes))
            if outside.any():
                bad = int(np.argmax(outside))
                raise ValueError(
                    f"{where[bad]}: class index {values[bad]} does not match the {len(self.classes)} "
                    f"classes {list(self.classes)}"
                )
        else:
            names = labels.astype(str)
            if self.classes is None:
                self.classes = tuple(sorted(names.unique()))
            index = {name: i for i, name in enumerate(self.classes)}
            unknown = ~names.isin(list(index)).to_numpy()
            if unknown.any():
                bad = int(np.argmax(unknown))
                raise ValueError(
                    f"{where[bad]}: label {names.iloc[bad]!r} is not one of the classes {list(self.classes)}"
                )
            values = names.map(index).to_numpy(np.int64)
        if len(self.classes) < 2:
            raise ValueError(f"classification needs at least 2 classes, got {list(self.classes)}")
        return frame.assign(label=values)

    def _assign_splits(self, frame: pd.DataFrame, where: list[str]) -> pd.DataFrame:
        """Use the split column, or draw a seeded random split; every split must have rows."""
        if "split" in frame.columns:
            split = frame["split"].astype(str).str.strip().str.lower()
            bad = ~split.isin(SPLITS)
            if bad.any():
                row = int(np.argmax(bad.to_numpy()))
                raise ValueError(f"{where[row]}: split {frame['split'].iloc[row]!r} is not one of {SPLITS}")
        else:
            n = len(frame)
            n_val, n_test = round(self.val_fraction * n), round(self.test_fraction * n)
            order = np.random.default_rng(self.seed).permutation(n)
            values = np.full(n, "train", dtype=object)
            values[order[:n_val]] = "val"
            values[order[n_val : n_val + n_test]] = "test"
            split = pd.Series(values, index=frame.index)
            logger.info(
                "no split column: random split (seed %d) of %d rows: %d train, %d val, %d test",
                self.seed,
                n,
                n - n_val - n_test,
                n_val,
                n_test,
            )
        counts = split.value_counts()
        empty = [s for s in SPLITS if counts.get(s, 0) == 0]
        if empty:
            raise ValueError(
                f"split(s) {empty} have no rows (rows per split: {counts.to_dict()}); give a split column with "
                "all of train/val/test or raise data.val_fraction / data.test_fraction"
            )
        return frame.assign(split=split.to_numpy())

    def _subsample(self, frame: pd.DataFrame) -> pd.DataFrame:
        train = np.flatnonzero(frame["split"].to_numpy() == "train")
        if len(train) <= self.max_train_samples:
            return frame
        keep = np.random.default_rng([self.seed, 1]).choice(train, self.max_train_samples, replace=False)
        drop = np.setdiff1d(train, keep)
        logger.info("data.max_train_samples: training on %d of %d training rows", len(keep), len(train))
        return frame.drop(index=frame.index[drop])

    def _check_leaks(self) -> None:
        """Warn when val/test regions overlap the pretraining corpus's training segments."""
        if self.pretraining_corpus is None:
            return
        if not {"chrom", "start", "end"} <= set(self.frame.columns):
            logger.info("data.pretraining_corpus: the rows have no chrom/start/end, no overlap check possible")
            return
        try:
            from zoo.domains.genomics.corpus import overlapping_rows
        except ImportError as error:
            raise RuntimeError(
                f"data.pretraining_corpus needs zoo.domains.genomics.corpus.overlapping_rows: {error}"
            ) from None
        overlap = np.asarray(overlapping_rows(self.frame, self.pretraining_corpus), dtype=bool)
        held_out = self.frame["split"].isin(["val", "test"]).to_numpy()
        n = int((overlap & held_out).sum())
        if n:
            warnings.warn(
                f"{n} of {int(held_out.sum())} val/test rows overlap training regions of the pretraining corpus "
                f"{self.pretraining_corpus!r}: their scores may be inflated",
                stacklevel=2,
            )

    @property
    def _collate(self):
        # A partial of a module-level function, not a lambda: DataLoader workers must be able to pickle it.
        return functools.partial(collate, pad_id=self.tokenizer.pad_id)

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``frame`` in ``split``."""
        return np.flatnonzero(self.frame["split"].to_numpy() == split)

    def _dataset(self, split: str, augment: bool) -> LabelledSequences:
        rows = self.split_indices(split)
        labels = self.frame["label"].to_numpy()[rows]
        return LabelledSequences([self._ids[i] for i in rows], labels, rc_augment=augment, seed=self.seed)

    def _loader(self, split: str, shuffle: bool) -> ResumableDataLoader:
        dataset = self._dataset(split, augment=shuffle and self.rc_augment)
        # Under DDP every rank must run the same number of training steps: trim to a multiple of the world.
        world = self.trainer.world_size if self.trainer is not None else 1
        return resumable_loader(
            self, dataset, shuffle=shuffle, batch_size=self.batch_size, seed=self.seed,
            num_workers=self.num_workers, drop_last=shuffle and world > 1, collate_fn=self._collate,
        )  # fmt: skip

    def train_dataloader(self) -> ResumableDataLoader:
        """Training rows in a seeded, resumable order (reverse-complemented at random with ``rc_augment``)."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ResumableDataLoader:
        """Validation rows in file order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> ResumableDataLoader:
        """Test rows in file order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Test rows in file order (predictions line up with ``frame[frame.split == 'test']``).

        A plain ``DataLoader``: Lightning rebuilds the prediction loader around its own batch sampler, and
        there is no position to resume.
        """
        return DataLoader(
            self._dataset("test", augment=False),
            batch_size=self.batch_size,
            collate_fn=self._collate,
            num_workers=self.num_workers,
        )


def _datasets(alphabet: Alphabet):
    """The named-task module of ``alphabet`` (``zoo.domains.<domain>.datasets``), imported when a task is used."""
    # Explicit imports, not importlib on a built name: the set of registries is fixed and greppable.
    if alphabet == "protein":
        from zoo.domains.protein import datasets
    else:
        from zoo.domains.genomics import datasets
    return datasets


def _resolve_alphabet(dataset: str | None, alphabet: Alphabet | None) -> Alphabet:
    """The alphabet of a named task (the registry holding it) or of files (``alphabet``, default ``dna``).

    An unknown task name is an error listing the close names of every registry; an ``alphabet`` that contradicts
    the task's is an error too.
    """
    if alphabet is not None and alphabet not in TASK_REGISTRIES:
        raise ValueError(f"data.alphabet must be one of {list(TASK_REGISTRIES)}, got {alphabet!r}")
    if dataset is None:
        return alphabet or "dna"
    known: dict[str, str] = {}
    for domain in TASK_REGISTRIES:
        # Search the genomics registry first: the protein one is only imported when a name is not DNA.
        tasks = _datasets(domain).TASKS
        if dataset in tasks:
            if alphabet is not None and alphabet != domain:
                raise ValueError(
                    f"data.alphabet={alphabet!r} but the named task {dataset!r} is {domain} "
                    f"(drop data.alphabet or use a {alphabet} task)"
                )
            return domain
        known.update({name: domain for name in tasks})
    hint = did_you_mean(dataset, known)
    listing = "; ".join(
        f"{domain}: {', '.join(sorted(n for n, d in known.items() if d == domain))}" for domain in TASK_REGISTRIES
    )
    raise ValueError(f"data.dataset: unknown labelled task {dataset!r}; {hint}known tasks ({listing})")


def _bed_column(value: str, key: str, required: bool = True) -> int | None:
    """1-based BED column number from ``"4"`` or a field name; None when optional and not a BED column."""
    if value in BED_FIELDS:
        return BED_FIELDS[value]
    if value.isdigit() and int(value) >= 1:
        return int(value)
    if not required:
        return None
    raise ValueError(
        f"data.{key}={value!r}: for a BED file give a 1-based column number (4 = name, 7 = the first "
        f"after strand) or one of {list(BED_FIELDS)}"
    )


def _parse_labels(values: pd.Series) -> pd.Series:
    """Text labels -> int64 if all are integers, else float64 if all are numbers, else str."""
    try:
        return pd.to_numeric(values.astype(str).str.strip())
    except ValueError:
        return values.astype(str)


def _read_labelled_fasta(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A FASTA file whose headers carry ``label=<x>`` (and optionally ``split=<s>``, other ``key=value``)."""
    import gzip

    from Bio import SeqIO

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    rows, where = [], []
    with opener(path, "rt", encoding="ascii") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            fields = dict(w.split("=", 1) for w in record.description.split()[1:] if "=" in w)
            here = f"{path} record {record.id!r}"
            if "label" not in fields:
                raise ValueError(f"{here}: the header has no label=<x> (e.g. '>{record.id} label=1 split=train')")
            rows.append({"id": record.id, "sequence": str(record.seq), **fields})
            where.append(here)
    if not rows:
        raise ValueError(f"{path}: no FASTA records")
    frame = pd.DataFrame(rows)
    frame["label"] = _parse_labels(frame["label"])
    return frame, where
