"""The long-horizon forecasting protocol, as the Time-Series-Library / PatchTST / iTransformer data loaders run it.

A wide series ``[T, C]`` (time x channels) is cut into train / val / test row ranges by a *split rule*:

=============  =================================================================================================
rule           train / val / test rows (``n`` = rows of the file)
=============  =================================================================================================
``ett-hourly``  first 12*30*24 rows / next 4*30*24 / next 4*30*24 (ETTh1, ETTh2; rows after 20*30*24 are unused)
``ett-minute``  the same months at 15 minutes: 12*30*24*4 / 4*30*24*4 / 4*30*24*4 (ETTm1, ETTm2)
``ratio``       ``int(0.7 n)`` / ``n - int(0.7 n) - int(0.2 n)`` / ``int(0.2 n)`` (their "custom" loader: any CSV)
=============  =================================================================================================

The val and test ranges start ``seq_len`` rows before their border, so their first window's forecast begins exactly
at the border. Every channel is z-scored with the mean and (population) standard deviation of the train rows only
(sklearn ``StandardScaler``, as those libraries; NaN entries are ignored in the fit and stay NaN). A split of ``R``
rows gives ``R - seq_len - pred_len + 1`` windows at stride 1: input ``x = rows[i : i+seq_len]``, target
``y = rows[i+seq_len : i+seq_len+pred_len]``; e.g. ETTh1 test at 96/96: 2,880 + 96 rows -> 2,785 windows. Metrics
are on the normalised scale, averaged over all windows, steps and channels (``evaluate_windows``).

Missing values stay NaN in ``x`` and ``y``: a task must mask them (``torch.isnan``), never fill them silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from zoo.domains.forecasting import metrics
from zoo.domains.forecasting.frames import check_wide
from zoo.training.loader import ResumableDataLoader, SampleKey, resumable_loader

SplitRule = Literal["ett-hourly", "ett-minute", "ratio"]
SPLITS = ("train", "val", "test")
#: Rows of 12 / 4 / 4 thirty-day months at one step per hour (ETT-hourly) or per 15 minutes (ETT-minute).
_ETT_MONTH_ROWS = {"ett-hourly": 30 * 24, "ett-minute": 30 * 24 * 4}
#: Train and test fractions of the ratio rule; val takes the rest (so rounding never drops a row).
RATIO_TRAIN, RATIO_TEST = 0.7, 0.2


def split_borders(n_rows: int, seq_len: int, split: SplitRule) -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, end)`` of train / val / test, val and test starting ``seq_len`` rows before their
    border (so they include the look-back of their first window)."""
    if split in _ETT_MONTH_ROWS:
        month = _ETT_MONTH_ROWS[split]
        n_train, n_val, n_test = 12 * month, 4 * month, 4 * month
        if n_rows < n_train + n_val + n_test:
            raise ValueError(f"split={split!r} needs {n_train + n_val + n_test} rows (12/4/4 months), the data has "
                             f"{n_rows}: use split='ratio' for other files")  # fmt: skip
    elif split == "ratio":
        n_train, n_test = int(n_rows * RATIO_TRAIN), int(n_rows * RATIO_TEST)
        n_val = n_rows - n_train - n_test
    else:
        raise ValueError(f"split={split!r}: choose 'ett-hourly', 'ett-minute' or 'ratio'")
    val_border, test_border = n_train, n_train + n_val
    return {
        "train": (0, n_train),
        "val": (val_border - seq_len, test_border),
        "test": (test_border - seq_len, test_border + n_test),
    }


def num_windows(n_rows: int, seq_len: int, pred_len: int) -> int:
    """Stride-1 windows of ``seq_len`` inputs + ``pred_len`` targets in ``n_rows`` rows."""
    return n_rows - seq_len - pred_len + 1


class WindowDataset(Dataset):
    """Stride-1 windows over one split: item ``i`` is ``(x [seq_len, C], y [pred_len, C])`` float32 tensors.

    Items may be addressed by an int or by the ``SampleKey`` a ``ResumableSampler`` yields. ``x`` / ``y`` give
    all windows at once as read-only numpy views ``[N, seq_len, C]`` / ``[N, pred_len, C]`` (no copy).
    """

    def __init__(self, data: np.ndarray, seq_len: int, pred_len: int):
        """``data``: the split's rows ``[T, C]`` (already normalised)."""
        if data.ndim != 2:
            raise ValueError(f"WindowDataset needs rows [T, C], got shape {data.shape}")
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.seq_len, self.pred_len = seq_len, pred_len
        self.length = num_windows(len(data), seq_len, pred_len)
        if self.length <= 0:
            raise ValueError(f"{len(data)} rows hold no window of seq_len {seq_len} + pred_len {pred_len}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        i = key.index if isinstance(key, SampleKey) else int(key)
        if not 0 <= i < self.length:
            raise IndexError(f"window {i} out of range [0, {self.length})")
        end = i + self.seq_len
        return torch.from_numpy(self.data[i:end]), torch.from_numpy(self.data[end : end + self.pred_len])

    def _view(self, start: int, width: int) -> np.ndarray:
        # sliding_window_view puts the window axis last: [N, C, width] -> [N, width, C].
        rows = self.data[start : start + self.length + width - 1]
        return np.lib.stride_tricks.sliding_window_view(rows, width, axis=0).transpose(0, 2, 1)

    @property
    def x(self) -> np.ndarray:
        """All inputs ``[N, seq_len, C]`` (a view)."""
        return self._view(0, self.seq_len)

    @property
    def y(self) -> np.ndarray:
        """All targets ``[N, pred_len, C]`` (a view)."""
        return self._view(self.seq_len, self.pred_len)


@dataclass(frozen=True)
class ScalerStats:
    """Per-channel train statistics: ``normalised = (raw - mean) / std``."""

    mean: np.ndarray
    """``[C]``"""
    std: np.ndarray
    """``[C]``; 1 for a constant channel (as ``StandardScaler``)."""


class LongHorizonSplits:
    """Train / val / test rows of a wide frame under the long-horizon protocol.

    ``frame``: a wide frame (``time_col`` + numeric channels) or an array ``[T, C]``. ``columns`` picks channels
    (default: every column but ``time_col``; one name for a univariate run). The frame is checked with
    ``zoo.domains.forecasting.frames.check_wide``: irregular timestamps are an error unless ``freq`` is given, which
    inserts the absent ones as NaN rows (masked). Attributes: ``data[split]`` ``[R, C]``
    float32 (normalised if ``scale``), ``borders[split]`` row ranges, ``stats`` (train mean/std), ``channels``,
    ``dates[split]`` (or None for an array).
    """

    def __init__(
        self,
        frame: pd.DataFrame | np.ndarray,
        seq_len: int = 96,
        pred_len: int = 96,
        split: SplitRule = "ratio",
        scale: bool = True,
        columns: list[str] | None = None,
        time_col: str = "date",
        freq: str | int | None = None,
    ):
        if seq_len <= 0 or pred_len <= 0:
            raise ValueError(f"seq_len and pred_len must be positive, got {seq_len} and {pred_len}")
        self.freq = freq
        if isinstance(frame, pd.DataFrame) and time_col in frame.columns:
            frame, self.freq = check_wide(frame, time_col=time_col, freq=freq)
        values, self.channels, stamps = _as_array(frame, columns, time_col)
        self.seq_len, self.pred_len, self.split, self.scale = seq_len, pred_len, split, scale
        self.borders = split_borders(len(values), seq_len, split)
        for name, (start, end) in self.borders.items():
            if num_windows(end - start, seq_len, pred_len) <= 0:
                held = end - start - (0 if name == "train" else seq_len)
                raise ValueError(f"pred_len {pred_len} is too long: the {name} split has {held} rows to forecast "
                                 f"({end - start} with the look-back), a window needs seq_len + pred_len = "
                                 f"{seq_len + pred_len}; use a shorter horizon or look-back, or more data")  # fmt: skip
        train_start, train_end = self.borders["train"]
        train = values[train_start:train_end]
        empty = np.isnan(train).all(axis=0)
        if empty.any():
            raise ValueError(f"channel {self.channels[int(empty.argmax())]!r} has no observed value in the train split")
        scaler = StandardScaler().fit(train)
        self.stats = ScalerStats(mean=scaler.mean_.astype(np.float64), std=scaler.scale_.astype(np.float64))
        normalised = scaler.transform(values) if scale else values
        self.data = {s: normalised[a:b].astype(np.float32) for s, (a, b) in self.borders.items()}
        self.dates = None if stamps is None else {s: stamps[a:b] for s, (a, b) in self.borders.items()}

    @property
    def n_channels(self) -> int:
        """Number of channels ``C``."""
        return len(self.channels)

    def windows(self, split: str) -> WindowDataset:
        """Stride-1 windows of ``split`` (``train`` / ``val`` / ``test``)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: choose one of {SPLITS}")
        return WindowDataset(self.data[split], self.seq_len, self.pred_len)

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        """Normalised values ``[..., C]`` back to the data's scale (identity when ``scale=False``)."""
        return values * self.stats.std + self.stats.mean if self.scale else values


def _as_array(frame, columns, time_col) -> tuple[np.ndarray, list[str], pd.Index | None]:
    if isinstance(frame, np.ndarray):
        if frame.ndim != 2:
            raise ValueError(f"an array frame must be [T, C], got shape {frame.shape}")
        return frame.astype(np.float64), [str(i) for i in range(frame.shape[1])], None
    stamps = pd.Index(frame[time_col]) if time_col in frame.columns else None
    available = [c for c in frame.columns if c != time_col]
    chosen = available if columns is None else list(columns)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise ValueError(f"column(s) {unknown} not in the frame; its channels are {available}")
    if not chosen:
        raise ValueError(f"the frame has no channel besides {time_col!r}")
    bad = [c for c in chosen if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"channel(s) {bad} are not numeric: a wide frame holds {time_col!r} plus numeric channels")
    return frame[chosen].to_numpy(dtype=np.float64), [str(c) for c in chosen], stamps


def evaluate_windows(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MSE and MAE of forecasts ``pred`` vs targets ``true`` (both ``[N, pred_len, C]``, normalised scale), each
    the mean over all windows, steps and channels, as those libraries report; NaN targets are masked."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must have the same shape [N, pred_len, C]")
    return {"mse": metrics.mse(true, pred), "mae": metrics.mae(true, pred)}


class LongHorizonDataModule(pl.LightningDataModule):
    """Windows of a named dataset or a wide CSV under the long-horizon protocol.

    Batches are ``(x [B, seq_len, C], y [B, pred_len, C])`` float32, normalised with train statistics; NaN marks
    missing values. Training windows come shuffled in a resumable order (``zoo.training.loader``); val and test
    windows in time order, all of them (no dropped last batch, so the test set is exactly the published one).
    """

    def __init__(
        self,
        dataset: str | None = None,
        path: str | None = None,
        seq_len: int = 96,
        pred_len: int = 96,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        split: SplitRule | None = None,
        target: str | None = None,
        scale: bool = True,
        time_col: str = "date",
        freq: str | None = None,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | None = None,
        cache_dir: str | None = None,
    ):
        """
        Args:
            dataset: a named dataset (``etth1``, ``household-power``; see ``zoo.domains.forecasting.datasets``).
            path: a wide CSV instead (``time_col`` + one column per channel). Give exactly one of the two.
            seq_len: look-back rows per window.
            pred_len: horizon rows per window (96 / 192 / 336 / 720 in the published tables).
            batch_size: training windows per batch and process.
            eval_batch_size: val/test windows per batch (default: ``batch_size``).
            split: split rule; default: the dataset's own (``ett-hourly`` for ETTh1), ``ratio`` for a CSV.
            target: one channel for a univariate run; default: every channel (multivariate).
            scale: z-score with train statistics (the protocol); False keeps raw values.
            time_col: the time column of a CSV.
            freq: pandas offset alias of the time column; needed only when timestamps are missing (they become
                NaN rows, masked); without it an irregular file is an error naming the first gap.
            num_workers: DataLoader worker processes.
            seed: seed of the training order.
            data_dir: extra folder searched for user-supplied dataset files (ETT).
            cache_dir: data cache folder (default: the user cache).
        """
        super().__init__()
        if (dataset is None) == (path is None):
            raise ValueError("data.dataset / data.path: give exactly one (a named dataset or a wide CSV)")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"data.path: {path} does not exist")
        if batch_size <= 0 or (eval_batch_size is not None and eval_batch_size <= 0):
            raise ValueError(f"data.batch_size must be positive, got {batch_size} / {eval_batch_size}")
        if dataset is not None:
            from zoo.domains.forecasting.datasets import get_dataset

            spec = get_dataset(dataset)  # an unknown name fails here, before any loading
            split = split or spec.split
        self.dataset, self.path, self.split_rule = dataset, path, split or "ratio"
        self.seq_len, self.pred_len, self.target, self.scale, self.time_col = seq_len, pred_len, target, scale, time_col
        self.freq = freq
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.seed, self.data_dir, self.cache_dir = num_workers, seed, data_dir, cache_dir
        self.splits: LongHorizonSplits | None = None

    def prepare_data(self) -> None:
        """Fetch a named dataset into the cache once (rank 0)."""
        if self.dataset is not None:
            self._frame()

    def _frame(self) -> pd.DataFrame:
        if self.dataset is not None:
            from zoo.domains.forecasting.datasets import load_dataset

            return load_dataset(self.dataset, data_dir=self.data_dir, cache_dir=self.cache_dir)
        frame = pd.read_csv(self.path)
        if self.time_col not in frame.columns:
            raise ValueError(f"data.path: {self.path} has no time column {self.time_col!r} (columns "
                             f"{list(frame.columns)}); set data.time_col")  # fmt: skip
        return frame

    def setup(self, stage: str | None = None) -> None:
        """Read the data and cut the splits (once)."""
        if self.splits is None:
            columns = None if self.target is None else [self.target]
            self.splits = LongHorizonSplits(self._frame(), self.seq_len, self.pred_len, split=self.split_rule,
                                            scale=self.scale, columns=columns, time_col=self.time_col,
                                            freq=self.freq)  # fmt: skip

    @property
    def n_channels(self) -> int:
        """Channels per window (after ``setup``)."""
        if self.splits is None:
            raise RuntimeError("call setup() first")
        return self.splits.n_channels

    def _loader(self, split: str, shuffle: bool) -> ResumableDataLoader:
        dataset = self.splits.windows(split)
        batch = self.batch_size if shuffle else self.eval_batch_size
        return resumable_loader(
            self, dataset, shuffle=shuffle, batch_size=batch, seed=self.seed, num_workers=self.num_workers,
            drop_last=shuffle and len(dataset) >= batch,
        )  # fmt: skip

    def train_dataloader(self) -> ResumableDataLoader:
        """Training windows, shuffled per epoch, resumable."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ResumableDataLoader:
        """Validation windows in time order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> ResumableDataLoader:
        """Every test window, in time order."""
        return self._loader("test", shuffle=False)
