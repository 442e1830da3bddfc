"""Exogenous inputs of the ``Forecaster``: their column scaler and the training windows that carry them.

Shapes follow ``zoo.domains.forecasting.model``: per window ``x [L, C]``, ``y [H, C]``, ``hist [L, C, Fh]``,
``futr [L + H, C, Ff]``, ``static [C, Fs]`` (``C`` channels, a feature count may be 0). Exogenous inputs reach the
model standardised and without NaN: ``ExogenousScaler`` z-scores each column with its training statistics and
puts 0 (the training mean) where a value is unknown, which only happens on rows whose target is missing too
(gap rows inserted on a ``freq`` grid, the NaN padding in front of a short series): the model sees those rows as
masked through the target's observed mask, so the 0 there is never mistaken for a measurement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from zoo.domains.forecasting.protocol import WindowDataset
from zoo.training.loader import SampleKey


class ExogenousScaler:
    """Per-column ``(value - mean) / std`` with training statistics (population std, 1 for a constant column)."""

    def __init__(self, columns: Sequence[str], mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        """``columns``: the exogenous column names, in feature order; ``mean`` / ``std``: fitted statistics."""
        self.columns = list(columns)
        self.mean = np.zeros(len(self.columns)) if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = np.ones(len(self.columns)) if std is None else np.asarray(std, dtype=np.float64)
        if self.mean.shape != (len(self.columns),) or self.std.shape != (len(self.columns),):
            raise ValueError(f"{len(self.columns)} columns need {len(self.columns)} means and standard deviations, got "
                             f"{self.mean.shape} and {self.std.shape}")  # fmt: skip

    def fit(self, rows: Sequence[np.ndarray]) -> ExogenousScaler:
        """Statistics over the rows ``[T_i, F]`` of every series together, NaN (unknown) ignored; returns self."""
        if not self.columns:
            return self
        stacked = np.concatenate([np.asarray(r, dtype=np.float64).reshape(-1, len(self.columns)) for r in rows])
        known = ~np.isnan(stacked).all(axis=0)
        if not known.all():
            absent = [c for c, k in zip(self.columns, known, strict=True) if not k]
            raise ValueError(f"exogenous column(s) {absent} have no known value in the training rows")
        # StandardScaler ignores NaN when fitting and gives a constant column a scale of 1
        scaler = StandardScaler().fit(stacked)
        self.mean, self.std = scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``values [..., F]`` standardised, unknown (NaN) values set to 0 (the training mean; module docstring)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} exogenous features {self.columns}, got {values.shape[-1]}")
        return np.nan_to_num((values - self.mean) / self.std, nan=0.0)

    def to_json(self) -> dict:
        """Column names and statistics as plain JSON values (``from_json`` restores them)."""
        return {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, state: dict) -> ExogenousScaler:
        """The scaler ``to_json`` described."""
        return cls(state["columns"], state["mean"], state["std"])


class ExogenousWindows(Dataset):
    """Stride-1 windows with their exogenous slices: item ``i`` is a dict ``x [L, C]``, ``y [H, C]``,
    ``hist [L, C, Fh]``, ``futr [L + H, C, Ff]``, ``static [C, Fs]`` (float32; a kind with no feature is a
    zero-width tensor, which the model reads as absent)."""

    def __init__(
        self,
        values: np.ndarray,
        hist: np.ndarray,
        futr: np.ndarray,
        static: np.ndarray,
        seq_len: int,
        pred_len: int,
    ):
        """``values [T, C]`` (NaN = missing), ``hist [T, C, Fh]``, ``futr [T, C, Ff]`` (standardised, no NaN),
        ``static [C, Fs]``."""
        self.windows = WindowDataset(values, seq_len, pred_len)  # the target windows, and their shape checks
        rows, channels = self.windows.data.shape
        for name, array, ndim in (("hist", hist, 3), ("futr", futr, 3), ("static", static, 2)):
            lead = (rows, channels) if ndim == 3 else (channels,)
            if array.ndim != ndim or array.shape[:-1] != lead:
                raise ValueError(f"{name} must have shape {[*lead, 'F']}, got {list(array.shape)}")
            if np.isnan(array).any():
                raise ValueError(f"{name} has NaN: exogenous inputs must be standardised and known")
        self.hist = torch.from_numpy(np.ascontiguousarray(hist, dtype=np.float32))
        self.futr = torch.from_numpy(np.ascontiguousarray(futr, dtype=np.float32))
        self.static = torch.from_numpy(np.ascontiguousarray(static, dtype=np.float32))
        self.seq_len, self.pred_len = seq_len, pred_len

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        x, y = self.windows[key]
        i = key.index if isinstance(key, SampleKey) else int(key)
        end = i + self.seq_len
        return {"x": x, "y": y, "hist": self.hist[i:end], "futr": self.futr[i : end + self.pred_len],
                "static": self.static}  # fmt: skip
