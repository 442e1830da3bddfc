"""``Forecaster``: neuralforecast-style ``fit`` / ``predict`` / ``cross_validation`` on long pandas frames.

Input: a long frame ``unique_id, ds, y`` (``zoo.domains.forecasting.frames.check_long``: duplicates, NaN-only
series and irregular stamps are errors; with ``freq=`` absent stamps become NaN rows). A wide frame such as an
ETT CSV becomes long with ``frames.wide_to_long``. NaN targets are masked (RevIN and the loss skip them), never
filled. Every series is z-scored with the mean and population standard deviation of its own training rows.

The two channel modes read the series differently:

* ``independent`` (default): one *global univariate* model (``num_channels=1``) trained on the windows of every
  series, as neuralforecast's univariate models; series may differ in length, start and end, and each forecast
  continues its own series from its own last timestamp. A series shorter than ``input_size + h`` is padded in
  front with NaN (masked); it needs more than ``h`` rows. New series may be forecast with ``predict(df)``:
  they are scaled with the statistics of the history given.
* ``mixing``: the series are the channels of one multivariate model (iTransformer-style variate tokens); they
  must share exactly the same timestamps, and ``predict(df)`` needs the same series as ``fit``.

Output columns follow neuralforecast: ``<alias>`` is the point forecast (the median of a quantile head) and a
quantile ``q`` gives ``<alias>-lo-<100 (1 - 2q)>`` below the median and ``<alias>-hi-<100 (2q - 1)>`` above it,
ordered by level of the quantile (e.g. ``m, m-lo-80, m-hi-80`` for quantiles ``(0.1, 0.5, 0.9)``).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch.utils.data import ConcatDataset, DataLoader

from zoo.config import from_dict, to_dict
from zoo.data.artifacts import atomic_file
from zoo.domains.forecasting.frames import Freq, check_long, split_exogenous
from zoo.domains.forecasting.model import CHANNEL_MODES, ChannelMode
from zoo.domains.forecasting.protocol import WindowDataset
from zoo.domains.forecasting.task import ForecastingTask, LossKind
from zoo.model import ModelConfig

ID, TIME, TARGET = "unique_id", "ds", "y"
SETTINGS_FILE, WEIGHTS_FILE, CONTEXT_FILE = "forecaster.json", "model.safetensors", "context.safetensors"
FORMAT = "seqzoo-forecaster/1"
#: Look-back windows forecast per forward pass at prediction time.
PREDICT_BATCH = 256


@dataclass
class _Series:
    """Checked series on their grids: ``values[i]`` raw floats (NaN = missing), ``stamps[i]`` their timestamps."""

    ids: list
    values: list[np.ndarray]
    stamps: list[pd.Series]


def quantile_columns(alias: str, quantiles: Sequence[float]) -> list[str]:
    """neuralforecast's column name of each quantile level: ``alias`` for 0.5, ``alias-lo-80`` for 0.1, ..."""
    names = []
    for q in quantiles:
        if np.isclose(q, 0.5):
            names.append(alias)
        else:
            level = round(100 * abs(1 - 2 * q), 6)
            names.append(f"{alias}-{'lo' if q < 0.5 else 'hi'}-{level:g}")
    return names


class Forecaster:
    """A ``PatchForecaster`` on a zoo backbone behind the neuralforecast API (pandas in, pandas out).

    See the module docstring for the channel modes and the output columns.
    """

    def __init__(
        self,
        h: int,
        model: str | ModelConfig = "attn-ts-small",
        input_size: int = 96,
        freq: Freq | None = None,
        channel_mode: ChannelMode = "independent",
        loss: LossKind = "mse",
        quantiles: Sequence[float] | None = None,
        max_steps: int = 500,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        val_size: int | None = None,
        val_check_steps: int = 50,
        early_stopping: int | None = None,
        seed: int = 0,
        accelerator: str = "cpu",
        alias: str | None = None,
        futr_exog_list: Sequence[str] | None = None,
        hist_exog_list: Sequence[str] | None = None,
        **model_kwargs: Any,
    ):
        """
        Args:
            h: forecast horizon in steps of ``freq``.
            model: a forecasting zoo entry (``zoo.list_models(domain="forecasting")``) or a ``ModelConfig`` with
                ``vocab=None``.
            input_size: look-back steps the model reads.
            freq: pandas offset alias (``"h"``) or integer step; None infers it (irregular stamps are then an
                error); given, absent stamps are inserted as NaN (masked).
            channel_mode: ``independent`` (global univariate model) or ``mixing`` (series as channels).
            loss: ``mse`` or ``mae`` (point head), ``pinball`` (quantile head).
            quantiles: levels of a quantile head, e.g. ``(0.1, 0.5, 0.9)``; implies ``loss="pinball"``. The
                median is added when absent, so the point column is always the median.
            max_steps: optimizer steps.
            batch_size: training windows per step.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay on matrices.
            val_size: hold out the last ``val_size`` steps of each series (at least ``h``) to select the best
                checkpoint by validation loss; None trains on everything and keeps the last weights.
            val_check_steps: optimizer steps between validations.
            early_stopping: stop after this many validations without improvement (needs ``val_size``).
            seed: seeds weights and window order.
            accelerator: Lightning accelerator (``cpu``, ``gpu``, ``auto``).
            alias: name of the forecast columns; default the entry name, or ``PatchForecaster`` for a config.
            futr_exog_list: future exogenous columns; not used by the model yet (NotImplementedError).
            hist_exog_list: historical exogenous columns; not used by the model yet (NotImplementedError).
            **model_kwargs: more ``ForecastingTask`` settings (``patch_len``, ``stride``, ``dropout``, ...).
        """
        exogenous = [*(futr_exog_list or ()), *(hist_exog_list or ())]
        if exogenous:
            raise NotImplementedError(f"exogenous column(s) {exogenous} (futr_exog_list / hist_exog_list): the "
                                      "PatchForecaster reads the target only so far; drop them")  # fmt: skip
        for name, value in (("h", h), ("input_size", input_size), ("max_steps", max_steps),
                            ("batch_size", batch_size), ("val_check_steps", val_check_steps)):  # fmt: skip
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if channel_mode not in CHANNEL_MODES:
            raise ValueError(f"channel_mode={channel_mode!r} is not one of {CHANNEL_MODES}")
        if quantiles is not None or loss == "pinball":
            levels = sorted({float(q) for q in (quantiles or (0.1, 0.9))} | {0.5})
            if quantiles is not None and loss not in ("mse", "pinball"):
                raise ValueError(f"loss={loss!r} with quantiles: a quantile head trains with loss='pinball'")
            loss, self.quantiles = "pinball", tuple(levels)
        elif loss in ("mse", "mae"):
            self.quantiles = None
        else:
            raise ValueError(f"loss={loss!r} is not one of 'mse', 'mae', 'pinball'")
        if val_size is not None and val_size < h:
            raise ValueError(f"val_size={val_size} is shorter than h={h}: a validation window needs h steps")
        if early_stopping is not None and val_size is None:
            raise ValueError("early_stopping needs val_size (a validation split to watch)")
        if isinstance(model, str):
            self.alias = alias or model
        elif isinstance(model, ModelConfig):
            self.alias = alias or "PatchForecaster"
        else:
            raise TypeError(f"model must be an entry name or a ModelConfig, got {type(model).__name__}")
        self.model, self.h, self.input_size, self.freq = model, int(h), int(input_size), freq
        self.channel_mode, self.loss = channel_mode, loss
        self.max_steps, self.batch_size, self.lr, self.weight_decay = max_steps, batch_size, lr, weight_decay
        self.val_size, self.val_check_steps, self.early_stopping = val_size, val_check_steps, early_stopping
        self.seed, self.accelerator, self.model_kwargs = seed, accelerator, dict(model_kwargs)
        self.task: ForecastingTask | None = None
        # a pretrained multivariate model of independent channels (Forecaster.from_pretrained) also reads the
        # series as its channels, in the order of its training data
        self.series_as_channels = channel_mode == "mixing"
        self._pretrained: str | None = None  # the snapshot name of from_pretrained (no history of its own)
        self.steps_trained = 0  # optimizer steps of the last fit (fewer than max_steps after early stopping)
        self.best_val_loss: float | None = None  # validation loss of the kept weights (with val_size)
        self.ids: list = []
        self.mean = self.std = np.zeros(0)
        self._context = np.zeros((0, self.input_size))  # raw look-back of each series after fit, NaN-padded
        self._last: list = []  # last timestamp of each series

    # ----------------------------------------------------------------------------------------------- fit

    def fit(self, df: pd.DataFrame, static_df: pd.DataFrame | None = None, val_size: int | None = None) -> Forecaster:
        """Train on a long frame ``unique_id, ds, y``; ``val_size`` overrides the constructor's. Returns self."""
        if static_df is not None:
            split_exogenous(df, static_df=static_df)  # a malformed static frame is named before the refusal
            raise NotImplementedError(f"static exogenous column(s) {[c for c in static_df.columns if c != ID]} "
                                      "(static_df): the PatchForecaster reads the target only so far")  # fmt: skip
        val_size = self.val_size if val_size is None else val_size
        if val_size is not None and val_size < self.h:
            raise ValueError(f"val_size={val_size} is shorter than h={self.h}: a validation window needs h steps")
        series = self._check(df)
        return self._fit(series, val_size)

    def _check(self, df: pd.DataFrame) -> _Series:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a long pandas DataFrame (unique_id, ds, y), got {type(df).__name__}")
        # after fit, self.freq is set, so a later frame is read on the fitted grid (off-grid stamps are errors)
        frame, self.freq = check_long(df, freq=self.freq)
        ids, values, stamps = [], [], []
        for key, part in frame.groupby(ID, sort=False):
            ids.append(key)
            values.append(part[TARGET].to_numpy(np.float64))
            stamps.append(part[TIME].reset_index(drop=True))
        if self.series_as_channels:
            for key, s in zip(ids[1:], stamps[1:], strict=True):
                if len(s) != len(stamps[0]) or not (s.to_numpy() == stamps[0].to_numpy()).all():
                    raise ValueError(f"channel_mode='mixing' needs every series on the same timestamps: series "
                                     f"{key!r} spans {s.iloc[0]}..{s.iloc[-1]} ({len(s)} rows), {ids[0]!r} "
                                     f"{stamps[0].iloc[0]}..{stamps[0].iloc[-1]} ({len(stamps[0])} rows); "
                                     "align them or use channel_mode='independent'")  # fmt: skip
        return _Series(ids, values, stamps)

    def _fit(self, series: _Series, val_size: int | None) -> Forecaster:
        held = val_size or 0
        for key, values in zip(series.ids, series.values, strict=True):
            if len(values) - held <= self.h:
                what = f" after holding out val_size={held}" if held else ""
                raise ValueError(f"series {key!r} has {len(values) - held} timestamps{what}, the horizon "
                                 f"h={self.h} needs at least {self.h + 1} (h targets after one input): lower h or "
                                 "drop it")  # fmt: skip
            if np.isnan(values[: len(values) - held]).all():
                raise ValueError(f"series {key!r} has no observed value before its last {held} (validation) steps")
        train = [v[: len(v) - held] for v in series.values]
        # Per-series z-score from training rows only, NaN ignored (StandardScaler's statistics; numpy's nan
        # reductions take ragged series one at a time, which a 2-D scaler cannot).
        self.mean = np.array([np.nanmean(v) for v in train])
        std = np.array([np.nanstd(v) for v in train])
        self.std = np.where(std > 0, std, 1.0)
        self.ids = list(series.ids)
        scaled = [(v - m) / s for v, m, s in zip(series.values, self.mean, self.std, strict=True)]
        train_sets = self._windows([x[: len(x) - held] for x in scaled], self.input_size + self.h)
        val_sets = None
        if held:
            val_sets = self._windows([x[len(x) - held - self.input_size :] for x in scaled], self.input_size + held)

        pl.seed_everything(self.seed, verbose=False)
        self.task = self._build_task()
        generator = torch.Generator().manual_seed(self.seed)
        train_loader = DataLoader(train_sets, batch_size=self.batch_size, shuffle=True, generator=generator,
                                  drop_last=len(train_sets) > self.batch_size)  # fmt: skip
        val_loader = None if val_sets is None else DataLoader(val_sets, batch_size=PREDICT_BATCH)
        with tempfile.TemporaryDirectory(prefix="zoo-forecaster-") as root:
            callbacks: list[pl.Callback] = []
            best = None
            if val_loader is not None:
                best = ModelCheckpoint(dirpath=root, monitor="val/loss", mode="min", save_top_k=1,
                                       save_weights_only=True)  # fmt: skip
                callbacks.append(best)
                if self.early_stopping is not None:
                    callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=self.early_stopping))
            trainer = pl.Trainer(
                accelerator=self.accelerator, devices=1, max_steps=self.max_steps, default_root_dir=root,
                # validate every val_check_steps optimizer steps, across epoch ends
                val_check_interval=self.val_check_steps if val_loader is not None else 1.0,
                check_val_every_n_epoch=None if val_loader is not None else 1, num_sanity_val_steps=0,
                callbacks=callbacks, logger=False, enable_checkpointing=best is not None,
                enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0,
            )  # fmt: skip
            trainer.fit(self.task, train_dataloaders=train_loader, val_dataloaders=val_loader)
            self.steps_trained = trainer.global_step
            self.best_val_loss = None if best is None or best.best_model_score is None else float(best.best_model_score)
            if best is not None and best.best_model_path:
                state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
                self.task.load_state_dict(state)
        self.task = self.task.cpu().eval()
        self._context = np.stack([_tail(v, self.input_size) for v in series.values])
        self._last = [s.iloc[-1] for s in series.stamps]
        self._pretrained = None
        return self

    def _windows(self, scaled: list[np.ndarray], min_rows: int) -> torch.utils.data.Dataset:
        """Stride-1 windows of each series (independent) or of the series as channels (mixing), NaN-padded in
        front to ``min_rows`` so a short series still gives one window."""
        padded = [_pad(x, min_rows) for x in scaled]
        if self.series_as_channels:
            return WindowDataset(np.stack(padded, axis=1), self.input_size, self.h)
        return ConcatDataset([WindowDataset(x[:, None], self.input_size, self.h) for x in padded])

    def _build_task(self) -> ForecastingTask:
        entry, config = (self.model, None) if isinstance(self.model, str) else (None, self.model)
        settings = dict(seq_len=self.input_size, pred_len=self.h, loss=self.loss, channel_mode=self.channel_mode,
                        num_channels=len(self.ids) if self.series_as_channels else 1)  # fmt: skip
        if self.quantiles is not None:
            settings.update(head="quantile", quantiles=self.quantiles)
        optimizer = functools.partial(torch.optim.AdamW, lr=self.lr, weight_decay=self.weight_decay)
        return ForecastingTask(entry=entry, config=config, optimizer=optimizer, **settings, **self.model_kwargs)

    # ------------------------------------------------------------------------------------------- predict

    @property
    def columns(self) -> list[str]:
        """The forecast columns ``predict`` returns, point first: ``[alias]`` or neuralforecast's quantile names."""
        if self.quantiles is None:
            return [self.alias]
        order = [self.quantiles.index(0.5)] + [i for i, q in enumerate(self.quantiles) if q != 0.5]
        names = quantile_columns(self.alias, self.quantiles)
        return [names[i] for i in order]

    def predict(self, df: pd.DataFrame | None = None, h: int | None = None) -> pd.DataFrame:
        """Forecast the ``h`` steps (default: the trained horizon) after each series' last timestamp.

        ``df``: a long frame of recent history to forecast from (default: the frame given to ``fit``).
        Returns ``unique_id, ds`` and the forecast columns (``columns``).
        """
        self._require_fit()
        h = self._horizon(h)
        if df is None and self._pretrained is not None:
            raise ValueError(f"a Forecaster from {self._pretrained!r} has no history of its own: predict(df) with "
                             f"recent values of {self.ids}")  # fmt: skip
        if df is None:
            ids, context, last = self.ids, self._context, self._last
            mean, std = self.mean, self.std
        else:
            series = self._check(df)
            if self.series_as_channels:
                series = self._in_channel_order(series)
            ids, last = series.ids, [s.iloc[-1] for s in series.stamps]
            context = np.stack([_tail(v, self.input_size) for v in series.values])
            mean, std = self._stats_for(series)
        forecast = self._forecast(((context - mean[:, None]) / std[:, None])[None])[0]  # [S, H, Q]
        forecast = forecast * std[:, None, None] + mean[:, None, None]
        stamps = [self._future(t, h) for t in last]
        return self._frame(ids, stamps, forecast[:, :h])

    def _in_channel_order(self, series: _Series) -> _Series:
        """``series`` reordered as the model's channels (``self.ids``); other or missing series are an error."""
        if sorted(map(str, series.ids)) != sorted(map(str, self.ids)):
            missing = [i for i in self.ids if i not in series.ids]
            extra = [i for i in series.ids if i not in self.ids]
            raise ValueError(f"this model forecasts the series {self.ids} together, as its channels; the frame "
                             f"lacks {missing} and has others {extra}")  # fmt: skip
        where = {key: i for i, key in enumerate(series.ids)}
        order = [where[key] for key in self.ids]
        return _Series([series.ids[i] for i in order], [series.values[i] for i in order],
                       [series.stamps[i] for i in order])  # fmt: skip

    def _stats_for(self, series: _Series) -> tuple[np.ndarray, np.ndarray]:
        """Training statistics of known series; a new series (independent mode only) is scaled by its history."""
        known = {key: i for i, key in enumerate(self.ids)}
        if self.series_as_channels and list(series.ids) != list(self.ids):
            raise ValueError(f"this model forecasts the series {self.ids} together, as its channels; the frame has "
                             f"{list(series.ids)}")  # fmt: skip
        mean, std = [], []
        for key, values in zip(series.ids, series.values, strict=True):
            if key in known:
                mean.append(self.mean[known[key]])
                std.append(self.std[known[key]])
            else:
                spread = np.nanstd(values)
                mean.append(np.nanmean(values))
                std.append(spread if spread > 0 else 1.0)
        return np.array(mean), np.array(std)

    def _forecast(self, context: np.ndarray) -> np.ndarray:
        """Scaled look-backs ``[W, S, L]`` (``W`` windows of ``S`` series) -> scaled forecasts ``[W, S, H, Q]``."""
        windows, n_series, _ = context.shape
        x = torch.as_tensor(context, dtype=torch.float32)
        if self.series_as_channels:
            x = x.transpose(1, 2)  # [W, L, S]: the series are the channels
        else:
            x = x.reshape(windows * n_series, self.input_size, 1)  # [(W S), L, 1]
        outputs = []
        device = next(self.task.parameters()).device
        with torch.inference_mode():
            for chunk in x.split(PREDICT_BATCH):
                out = self.task(chunk.to(device)).float().cpu()
                outputs.append(out if out.ndim == 4 else out[..., None])  # [b, H, C, Q]
        out = torch.cat(outputs).numpy().astype(np.float64)
        if self.series_as_channels:
            return out.transpose(0, 2, 1, 3)  # [W, S, H, Q]
        return out.reshape(windows, n_series, self.h, -1)

    def _frame(self, ids: list, stamps: list, forecast: np.ndarray, cutoffs: list | None = None) -> pd.DataFrame:
        """Rows per series and step; ``forecast [S, h, Q]`` in ``self.quantiles`` order."""
        h = forecast.shape[1]
        frame = pd.DataFrame({ID: np.repeat(np.asarray(ids), h), TIME: _concat(stamps)})
        if cutoffs is not None:
            frame["cutoff"] = pd.Series(cutoffs).repeat(h).to_numpy()
        flat = forecast.reshape(-1, forecast.shape[-1])
        names = [self.alias] if self.quantiles is None else quantile_columns(self.alias, self.quantiles)
        for i, name in enumerate(names):
            frame[name] = flat[:, i]
        extra = [c for c in frame.columns if c not in self.columns]
        return frame[extra + self.columns]

    def _future(self, last, h: int) -> pd.Series:
        if isinstance(self.freq, (int, np.integer)):
            return pd.Series(last + self.freq * np.arange(1, h + 1))
        return pd.Series(pd.date_range(last, periods=h + 1, freq=self.freq)[1:])

    def _horizon(self, h: int | None) -> int:
        if h is None:
            return self.h
        if not isinstance(h, (int, np.integer)) or h < 1:
            raise ValueError(f"h must be a positive integer, got {h!r}")
        if h > self.h:
            raise ValueError(f"h={h} is longer than the trained horizon h={self.h}: refit with Forecaster(h={h}, ...)")
        return int(h)

    def _require_fit(self) -> None:
        if self.task is None:
            raise RuntimeError("this Forecaster is not fitted yet: call fit(df) (or Forecaster.load(path)) first")

    # ---------------------------------------------------------------------------------- cross-validation

    def cross_validation(
        self, df: pd.DataFrame, n_windows: int = 1, step_size: int | None = None, refit: bool = False
    ) -> pd.DataFrame:
        """Rolling-origin evaluation, as neuralforecast's: the last ``n_windows`` forecast windows of each series,
        ``step_size`` steps apart (default ``h``), the last one ending at the series' last timestamp.

        The model is fitted on each series up to its first cutoff (``refit=False``), or again up to every cutoff
        (``refit=True``); each window then forecasts from the actual history up to its cutoff. The Forecaster
        stays fitted on the last training. Returns ``unique_id, ds, cutoff, y`` and the forecast columns.
        """
        step = self.h if step_size is None else step_size
        if not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
            raise ValueError(f"n_windows must be a positive integer, got {n_windows!r}")
        if not isinstance(step, (int, np.integer)) or step < 1:
            raise ValueError(f"step_size must be a positive integer, got {step!r}")
        series = self._check(df)
        span = self.h + (n_windows - 1) * step  # rows after the first cutoff
        parts = []
        fits = range(n_windows) if refit else [0]
        for first in fits:
            # the training data ends at this window's cutoff; without refit one fit serves every window
            ends = [len(v) - span + first * step for v in series.values]
            need = self.h + 1 + (self.val_size or 0)  # what _fit needs to train (and validate) on
            for key, end in zip(series.ids, ends, strict=True):
                if end < need:
                    raise ValueError(f"series {key!r} has {end + span - first * step} timestamps: n_windows="
                                     f"{n_windows} windows of h={self.h} every {step} steps take its last {span}, "
                                     f"leaving {end} to train on, fewer than {need}; use fewer windows or a smaller "
                                     "step_size")  # fmt: skip
            head = _Series(series.ids, [v[:e] for v, e in zip(series.values, ends, strict=True)],
                           [s.iloc[:e] for s, e in zip(series.stamps, ends, strict=True)])  # fmt: skip
            self._fit(head, self.val_size)
            windows = range(n_windows) if not refit else [first]
            parts.append(self._cv_windows(series, span, step, windows))
        return pd.concat(parts, ignore_index=True)

    def _cv_windows(self, series: _Series, span: int, step: int, windows: Sequence[int]) -> pd.DataFrame:
        context = np.empty((len(windows), len(series.ids), self.input_size))
        truth, stamps, cutoffs, ids = [], [], [], []
        for w, window in enumerate(windows):
            for s, (key, values, times) in enumerate(zip(series.ids, series.values, series.stamps, strict=True)):
                end = len(values) - span + window * step  # first forecast row
                context[w, s] = _tail(values[:end], self.input_size)
                truth.append(values[end : end + self.h])
                stamps.append(times.iloc[end : end + self.h])
                cutoffs.append(times.iloc[end - 1])
                ids.append(key)
        mean, std = self.mean, self.std
        forecast = self._forecast((context - mean[:, None]) / std[:, None])  # [W, S, H, Q]
        forecast = forecast * std[:, None, None] + mean[:, None, None]
        frame = self._frame(ids, stamps, forecast.reshape(-1, self.h, forecast.shape[-1]), cutoffs)
        frame.insert(3, TARGET, np.concatenate(truth))
        return frame

    # ------------------------------------------------------------------------------------------ save/load

    def save(self, path: str | Path) -> Path:
        """Write ``path/`` (a folder): ``model.safetensors`` (weights), ``context.safetensors`` (each series'
        look-back, so ``predict()`` works after ``load``) and ``forecaster.json`` (settings, series ids, last
        timestamps, scaler statistics); each file atomically, the JSON last. No pickle."""
        self._require_fit()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        # clone: safetensors refuses tensors that share storage (tied weights), and load_state_dict re-ties them
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in self.task.model.state_dict().items()}
        with atomic_file(folder / WEIGHTS_FILE) as handle:
            handle.write(save_safetensors(weights))
        with atomic_file(folder / CONTEXT_FILE) as handle:
            handle.write(save_safetensors({"context": torch.as_tensor(self._context, dtype=torch.float64)}))
        integer = isinstance(self.freq, (int, np.integer))
        settings = {
            "format": FORMAT,
            "model": self.model if isinstance(self.model, str) else None,
            "config": to_dict(self.task.model.backbone.config),
            "h": self.h, "input_size": self.input_size, "freq": int(self.freq) if integer else self.freq,
            "channel_mode": self.channel_mode, "loss": self.loss, "quantiles": self.quantiles,
            "max_steps": self.max_steps, "batch_size": self.batch_size, "lr": self.lr,
            "weight_decay": self.weight_decay, "val_size": self.val_size, "val_check_steps": self.val_check_steps,
            "early_stopping": self.early_stopping, "seed": self.seed, "accelerator": self.accelerator,
            "alias": self.alias, "model_kwargs": self.model_kwargs, "series_as_channels": self.series_as_channels,
            "ids": [_plain(i) for i in self.ids], "last": [_plain(t) for t in self._last],
            "mean": self.mean.tolist(), "std": self.std.tolist(),
        }  # fmt: skip
        with atomic_file(folder / SETTINGS_FILE) as handle:
            handle.write(json.dumps(settings, indent=2).encode())
        return folder

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """A fitted Forecaster from a folder written by ``save``; the backbone is rebuilt from the saved config."""
        folder = Path(path)
        if not (folder / SETTINGS_FILE).is_file():
            raise FileNotFoundError(f"{folder / SETTINGS_FILE} not found: not a folder written by Forecaster.save")
        settings = json.loads((folder / SETTINGS_FILE).read_text())
        if settings.get("format") != FORMAT:
            raise ValueError(f"{folder / SETTINGS_FILE}: format {settings.get('format')!r}, expected {FORMAT!r}")
        config = from_dict(ModelConfig, settings.pop("config"))
        name = settings.pop("model")
        state = {key: settings.pop(key) for key in ("ids", "last", "mean", "std", "format")}
        quantiles, kwargs = settings.pop("quantiles"), settings.pop("model_kwargs")
        series_as_channels = settings.pop("series_as_channels", settings["channel_mode"] == "mixing")
        # built from the saved config (never the registry, whose entry may have changed since); the entry name
        # is restored afterwards for a later refit
        forecaster = cls(model=config, quantiles=quantiles, **settings, **kwargs)
        forecaster.ids = state["ids"]
        forecaster.series_as_channels = series_as_channels
        forecaster.mean, forecaster.std = np.array(state["mean"]), np.array(state["std"])
        forecaster._last = [t if isinstance(t, int) else pd.Timestamp(t) for t in state["last"]]
        forecaster._context = load_safetensors((folder / CONTEXT_FILE).read_bytes())["context"].numpy()
        forecaster.task = forecaster._build_task()
        forecaster.model = name or config
        forecaster.task.model.load_state_dict(load_safetensors((folder / WEIGHTS_FILE).read_bytes()))
        forecaster.task.eval()
        return forecaster

    @classmethod
    def from_pretrained(cls, name: str, **load_kwargs: Any) -> Forecaster:
        """A fitted Forecaster around a trained forecaster snapshot: an entry with shipped or published weights
        (``attn-ts-small``, ...), ``hf-hub:ORG/NAME@REV`` or ``local-dir:PATH`` (``zoo export`` of a forecasting
        run; see ``zoo.domains.forecasting.pretrained``). ``load_kwargs`` go to ``zoo.download``.

        ``predict(df)`` then forecasts series named as the model's training channels (for a multivariate model,
        all of them, on the same timestamps), scaled with the training statistics the snapshot stores; ``fit``
        trains anew.
        """
        from zoo.domains.forecasting.pretrained import load_forecaster

        module, task = load_forecaster(name, **load_kwargs)
        settings, data = dict(task["settings"]), task["data"]
        head = settings.pop("head", "point")
        levels = tuple(settings.pop("quantiles", ()))
        quantiles = levels if head == "quantile" else None
        if quantiles is not None and not any(np.isclose(q, 0.5) for q in quantiles):
            raise ValueError(f"{name}: a quantile head without the median ({quantiles}) has no point forecast")
        fixed = {key: settings.pop(key) for key in ("seq_len", "pred_len", "num_channels", "channel_mode")}
        forecaster = cls(h=fixed["pred_len"], model=module.backbone.config, input_size=fixed["seq_len"],
                         freq=data.get("freq"), channel_mode=fixed["channel_mode"], quantiles=quantiles,
                         alias=name.rsplit(":", 1)[-1].rsplit("/", 1)[-1], **settings)  # fmt: skip
        forecaster.ids = list(data["channels"])
        if len(forecaster.ids) != fixed["num_channels"]:
            raise ValueError(f"{name}: {len(forecaster.ids)} channel names for a {fixed['num_channels']}-channel model")
        forecaster.series_as_channels = fixed["channel_mode"] == "mixing" or fixed["num_channels"] > 1
        if data.get("scaled", True):
            forecaster.mean, forecaster.std = np.array(data["mean"]), np.array(data["std"])
        else:
            forecaster.mean, forecaster.std = np.zeros(len(forecaster.ids)), np.ones(len(forecaster.ids))
        forecaster.task = forecaster._build_task()
        forecaster.task.model.load_state_dict(module.state_dict())
        forecaster.task.eval()
        forecaster._pretrained = name
        return forecaster


def _pad(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` with NaN rows in front up to ``rows`` (masked look-back of a short series)."""
    missing = rows - len(values)
    return values if missing <= 0 else np.concatenate([np.full(missing, np.nan), values])


def _tail(values: np.ndarray, rows: int) -> np.ndarray:
    """The last ``rows`` values, NaN-padded in front."""
    return _pad(values[-rows:], rows)


def _concat(parts: Sequence) -> np.ndarray:
    return np.concatenate([np.asarray(pd.Series(p).to_numpy()) for p in parts]) if parts else np.array([])


def _plain(value: Any) -> Any:
    """A JSON value of a series id or timestamp (numpy scalars and Timestamps are not JSON)."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value
