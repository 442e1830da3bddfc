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

Exogenous inputs, as neuralforecast: ``futr_exog_list`` columns of ``df`` are known in advance (calendar,
planned promotions): the model reads them over the look-back and the horizon, so ``predict`` needs ``futr_df``
with exactly the ``h`` future rows of each series (``make_future_dataframe`` lists them,
``get_missing_future`` what a ``futr_df`` lacks); ``cross_validation`` takes them from ``df`` itself.
``hist_exog_list`` columns are known up to the forecast start only. ``stat_exog_list`` names columns of
``static_df`` (one row per series). Each exogenous column is z-scored with the mean and standard deviation of its
training rows over all series (``zoo.domains.forecasting.exogenous``), kept by ``save`` / ``load``. Exogenous
values may be NaN only where the target is missing.

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
from zoo.domains.forecasting.exogenous import ExogenousScaler, ExogenousWindows
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
    """Checked series on their grids: ``values[i]`` raw floats (NaN = missing), ``stamps[i]`` their timestamps,
    ``hist[i]`` / ``futr[i]`` their raw exogenous rows ``[T_i, F]`` (``F`` may be 0), ``static`` ``[S, Fs]``."""

    ids: list
    values: list[np.ndarray]
    stamps: list[pd.Series]
    hist: list[np.ndarray]
    futr: list[np.ndarray]
    static: np.ndarray | None = None

    def take(self, order: Sequence[int]) -> _Series:
        """The series at positions ``order``."""
        static = None if self.static is None else self.static[list(order)]
        return _Series([self.ids[i] for i in order], [self.values[i] for i in order],
                       [self.stamps[i] for i in order], [self.hist[i] for i in order],
                       [self.futr[i] for i in order], static)  # fmt: skip

    def head(self, ends: Sequence[int]) -> _Series:
        """The first ``ends[i]`` rows of each series."""
        cut = functools.partial(zip, ends, strict=True)
        return _Series(self.ids, [v[:e] for e, v in cut(self.values)], [t.iloc[:e] for e, t in cut(self.stamps)],
                       [a[:e] for e, a in cut(self.hist)], [a[:e] for e, a in cut(self.futr)],
                       self.static)  # fmt: skip


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
        stat_exog_list: Sequence[str] | None = None,
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
            futr_exog_list: future exogenous columns of ``df``, known over the look-back and the horizon
                (``predict`` then needs ``futr_df``).
            hist_exog_list: historical exogenous columns of ``df``, known over the look-back only.
            stat_exog_list: static exogenous columns of ``static_df`` (one row per series).
            **model_kwargs: more ``ForecastingTask`` settings (``patch_len``, ``stride``, ``dropout``, ...).
        """
        self.futr_exog_list, self.hist_exog_list, self.stat_exog_list = _exog_lists(
            futr_exog_list, hist_exog_list, stat_exog_list
        )
        counts = sorted(set(model_kwargs) & {"hist_exog", "futr_exog", "static_exog"})
        if counts:
            raise ValueError(f"{counts} are set from the column lists: pass futr_exog_list / hist_exog_list / "
                             "stat_exog_list instead")  # fmt: skip
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
        # raw exogenous look-back of each series after fit [S, L, F] (NaN-padded), raw static rows [S, Fs]
        self._hist_context = np.zeros((0, self.input_size, len(self.hist_exog_list)))
        self._futr_context = np.zeros((0, self.input_size, len(self.futr_exog_list)))
        self._static = np.zeros((0, len(self.stat_exog_list)))
        self.scalers = {kind: ExogenousScaler(columns) for kind, columns in self._exog_kinds().items()}

    def _exog_kinds(self) -> dict[str, list[str]]:
        return {"hist": self.hist_exog_list, "futr": self.futr_exog_list, "static": self.stat_exog_list}

    # ----------------------------------------------------------------------------------------------- fit

    def fit(self, df: pd.DataFrame, static_df: pd.DataFrame | None = None, val_size: int | None = None) -> Forecaster:
        """Train on a long frame ``unique_id, ds, y`` (plus the exogenous columns named at construction) and, with
        ``stat_exog_list``, ``static_df`` (``unique_id`` plus those columns, one row per series); ``val_size``
        overrides the constructor's. Returns self."""
        val_size = self.val_size if val_size is None else val_size
        if val_size is not None and val_size < self.h:
            raise ValueError(f"val_size={val_size} is shorter than h={self.h}: a validation window needs h steps")
        series = self._check(df)
        series.static = self._static_rows(series.ids, static_df, fitting=True)
        return self._fit(series, val_size)

    def _check(self, df: pd.DataFrame) -> _Series:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a long pandas DataFrame (unique_id, ds, y), got {type(df).__name__}")
        # after fit, self.freq is set, so a later frame is read on the fitted grid (off-grid stamps are errors)
        frame, self.freq = check_long(df, freq=self.freq)
        split_exogenous(frame, self.futr_exog_list, self.hist_exog_list)  # columns present, numeric, known
        ids, values, stamps, hist, futr = [], [], [], [], []
        for key, part in frame.groupby(ID, sort=False):
            ids.append(key)
            values.append(part[TARGET].to_numpy(np.float64))
            stamps.append(part[TIME].reset_index(drop=True))
            hist.append(part[self.hist_exog_list].to_numpy(np.float64).reshape(len(part), -1))
            futr.append(part[self.futr_exog_list].to_numpy(np.float64).reshape(len(part), -1))
        if self.series_as_channels:
            for key, s in zip(ids[1:], stamps[1:], strict=True):
                if len(s) != len(stamps[0]) or not (s.to_numpy() == stamps[0].to_numpy()).all():
                    raise ValueError(f"channel_mode='mixing' needs every series on the same timestamps: series "
                                     f"{key!r} spans {s.iloc[0]}..{s.iloc[-1]} ({len(s)} rows), {ids[0]!r} "
                                     f"{stamps[0].iloc[0]}..{stamps[0].iloc[-1]} ({len(stamps[0])} rows); "
                                     "align them or use channel_mode='independent'")  # fmt: skip
        return _Series(ids, values, stamps, hist, futr)

    def _static_rows(self, ids: list, static_df: pd.DataFrame | None, fitting: bool = False) -> np.ndarray:
        """Raw static rows ``[S, Fs]`` of ``ids`` from ``static_df``, or (not fitting) those kept by ``fit``."""
        columns = self.stat_exog_list
        if static_df is not None and not columns:
            named = [c for c in static_df.columns if c != ID]
            raise ValueError(f"static_df given but stat_exog_list is empty: name the static columns to use, e.g. "
                             f"Forecaster(..., stat_exog_list={named})")  # fmt: skip
        if not columns:
            return np.zeros((len(ids), 0))
        if static_df is None:
            known = {key: i for i, key in enumerate(self.ids)}
            new = [key for key in ids if key not in known]
            if fitting or new:
                whom = f"series {new[0]!r} ({len(new)} new series)" if not fitting else "each series"
                raise ValueError(f"stat_exog_list={columns} needs static_df with a row for {whom}: columns "
                                 f"unique_id, {', '.join(columns)}")  # fmt: skip
            return self._static[[known[key] for key in ids]]
        if not isinstance(static_df, pd.DataFrame):
            raise TypeError(f"static_df must be a pandas DataFrame, got {type(static_df).__name__}")
        absent = [c for c in columns if c not in static_df.columns]
        if absent:
            raise ValueError(f"static_df lacks the static column(s) {absent} of stat_exog_list; it has "
                             f"{list(static_df.columns)}")  # fmt: skip
        ids_frame = pd.DataFrame({ID: ids})
        static = split_exogenous(ids_frame, static_df=static_df[[ID, *columns]] if ID in static_df else static_df)
        return static.static[columns].to_numpy(np.float64)

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
        self.scalers["hist"].fit([a[: len(a) - held] for a in series.hist])
        self.scalers["futr"].fit([a[: len(a) - held] for a in series.futr])
        self.scalers["static"].fit([series.static])
        self._static = series.static
        scaled = self._scaled(series)
        train_sets = self._windows(scaled.head([len(v) - held for v in scaled.values]), self.input_size + self.h)
        val_sets = None
        if held:
            # from 0 when the series is shorter than a look-back (a negative start would slice from the end)
            starts = [max(len(v) - held - self.input_size, 0) for v in scaled.values]
            val_sets = self._windows(_tails(scaled, starts), self.input_size + held)

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
        self._hist_context = np.stack([_tail(a, self.input_size) for a in series.hist])
        self._futr_context = np.stack([_tail(a, self.input_size) for a in series.futr])
        self._last = [s.iloc[-1] for s in series.stamps]
        self._pretrained = None
        return self

    def _scaled(self, series: _Series) -> _Series:
        """``series`` with the target z-scored by the training statistics of each series and the exogenous
        columns standardised (unknown values 0, see ``zoo.domains.forecasting.exogenous``)."""
        values = [(v - m) / s for v, m, s in zip(series.values, self.mean, self.std, strict=True)]
        return _Series(series.ids, values, series.stamps, [self.scalers["hist"].transform(a) for a in series.hist],
                       [self.scalers["futr"].transform(a) for a in series.futr],
                       self.scalers["static"].transform(series.static))  # fmt: skip

    def _windows(self, scaled: _Series, min_rows: int) -> torch.utils.data.Dataset:
        """Stride-1 windows of each series (independent) or of the series as channels (mixing), padded in front
        to ``min_rows`` (NaN target, 0 exogenous) so a short series still gives one window."""
        if not any(self._exog_kinds().values()):  # the target alone: the protocol's (x, y) windows
            padded = [_pad(x, min_rows) for x in scaled.values]
            if self.series_as_channels:
                return WindowDataset(np.stack(padded, axis=1), self.input_size, self.h)
            return ConcatDataset([WindowDataset(x[:, None], self.input_size, self.h) for x in padded])
        values = [_pad(x, min_rows) for x in scaled.values]
        hist = [_pad(a, min_rows, fill=0.0) for a in scaled.hist]
        futr = [_pad(a, min_rows, fill=0.0) for a in scaled.futr]
        windows = functools.partial(ExogenousWindows, seq_len=self.input_size, pred_len=self.h)
        if self.series_as_channels:
            return windows(np.stack(values, axis=1), np.stack(hist, axis=1), np.stack(futr, axis=1), scaled.static)
        return ConcatDataset([windows(v[:, None], a[:, None], f[:, None], s[None])
                              for v, a, f, s in zip(values, hist, futr, scaled.static, strict=True)])  # fmt: skip

    def _build_task(self) -> ForecastingTask:
        entry, config = (self.model, None) if isinstance(self.model, str) else (None, self.model)
        settings = dict(seq_len=self.input_size, pred_len=self.h, loss=self.loss, channel_mode=self.channel_mode,
                        num_channels=len(self.ids) if self.series_as_channels else 1,
                        hist_exog=len(self.hist_exog_list), futr_exog=len(self.futr_exog_list),
                        static_exog=len(self.stat_exog_list))  # fmt: skip
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

    def predict(
        self,
        df: pd.DataFrame | None = None,
        futr_df: pd.DataFrame | None = None,
        static_df: pd.DataFrame | None = None,
        h: int | None = None,
    ) -> pd.DataFrame:
        """Forecast the ``h`` steps (default: the trained horizon) after each series' last timestamp.

        ``df``: a long frame of recent history to forecast from, with the exogenous columns (default: the frame
        given to ``fit``). ``futr_df``: with ``futr_exog_list``, ``unique_id, ds`` and those columns at exactly the
        ``h`` stamps after each series' last one (``make_future_dataframe``). ``static_df``: static rows for the
        series of ``df`` (default: those given to ``fit``; a new series needs one).
        Returns ``unique_id, ds`` and the forecast columns (``columns``).
        """
        self._require_fit()
        h = self._horizon(h)
        if df is None and self._pretrained is not None:
            raise ValueError(f"a Forecaster from {self._pretrained!r} has no history of its own: predict(df) with "
                             f"recent values of {self.ids}")  # fmt: skip
        if df is None:
            ids, context, last = self.ids, self._context, self._last
            hist, futr = self._hist_context, self._futr_context
            mean, std = self.mean, self.std
        else:
            series = self._check(df)
            if self.series_as_channels:
                series = self._in_channel_order(series)
            ids, last = series.ids, [s.iloc[-1] for s in series.stamps]
            context = np.stack([_tail(v, self.input_size) for v in series.values])
            hist = np.stack([_tail(a, self.input_size) for a in series.hist])
            futr = np.stack([_tail(a, self.input_size) for a in series.futr])
            mean, std = self._stats_for(series)
        static = self._static_rows(ids, static_df)
        future = self._future_exog(ids, last, futr_df, h)  # [S, h, Ff]
        # beyond a shorter h the model still reads H future rows: the training mean (0) stands in; the forecasts
        # of those steps are dropped, and the earlier ones depend on them only through futr_exog_proj's weights
        future = np.concatenate([self.scalers["futr"].transform(future),
                                 np.zeros((len(ids), self.h - h, len(self.futr_exog_list)))], axis=1)  # fmt: skip
        scaled_futr = np.concatenate([self.scalers["futr"].transform(futr), future], axis=1)  # [S, L + H, Ff]
        forecast = self._forecast(((context - mean[:, None]) / std[:, None])[None],
                                  self.scalers["hist"].transform(hist)[None], scaled_futr[None],
                                  self.scalers["static"].transform(static))[0]  # fmt: skip  # [S, H, Q]
        forecast = forecast * std[:, None, None] + mean[:, None, None]
        stamps = [self._future(t, h) for t in last]
        return self._frame(ids, stamps, forecast[:, :h])

    def make_future_dataframe(self, df: pd.DataFrame | None = None, h: int | None = None) -> pd.DataFrame:
        """``unique_id, ds`` of the ``h`` stamps (default: the trained horizon) after each series' last one, in
        ``df`` (default: the frame given to ``fit``): the rows a ``futr_df`` must fill."""
        self._require_fit()
        h = self._horizon(h)
        if df is None:
            ids, last = self.ids, self._last
        else:
            series = self._check(df)
            ids, last = series.ids, [s.iloc[-1] for s in series.stamps]
        return self._future_rows(ids, last, h)

    def _future_rows(self, ids: list, last: list, h: int) -> pd.DataFrame:
        """``unique_id, ds`` of the ``h`` stamps after ``last[i]`` for each series ``ids[i]``."""
        return pd.DataFrame({ID: np.repeat(np.asarray(ids, dtype=object), h),
                             TIME: _concat([self._future(t, h) for t in last])})  # fmt: skip

    def get_missing_future(
        self, futr_df: pd.DataFrame, df: pd.DataFrame | None = None, h: int | None = None
    ) -> pd.DataFrame:
        """The rows of ``make_future_dataframe(df, h)`` that ``futr_df`` lacks (``unique_id, ds``)."""
        expected = self.make_future_dataframe(df, h)
        missing = [c for c in (ID, TIME) if c not in futr_df.columns]
        if missing:
            raise ValueError(f"futr_df lacks column(s) {missing}; it has {list(futr_df.columns)}")
        given = futr_df[[ID, TIME]].assign(**{TIME: self._stamps_like(futr_df[TIME], expected[TIME])})
        merged = expected.merge(given.drop_duplicates(), on=[ID, TIME], how="left", indicator=True)
        return merged.loc[merged["_merge"] == "left_only", [ID, TIME]].reset_index(drop=True)

    def _stamps_like(self, stamps: pd.Series, reference: pd.Series) -> pd.Series:
        """``stamps`` parsed as the fitted frame's (datetimes, or integer steps)."""
        if pd.api.types.is_integer_dtype(reference) or pd.api.types.is_datetime64_any_dtype(stamps):
            return stamps
        try:
            return pd.to_datetime(stamps)
        except (ValueError, TypeError) as error:
            raise ValueError(f"futr_df column {TIME!r} cannot be parsed as datetimes ({error})") from None

    def _future_exog(self, ids: list, last: list, futr_df: pd.DataFrame | None, h: int) -> np.ndarray:
        """Raw future exogenous ``[S, h, Ff]`` of ``ids`` from ``futr_df``, which must hold exactly their next
        ``h`` stamps after ``last``, known (no NaN)."""
        columns = self.futr_exog_list
        if not columns:
            if futr_df is not None:
                raise ValueError("futr_df given but this Forecaster has no futr_exog_list: leave futr_df out, or "
                                 "refit with Forecaster(..., futr_exog_list=[...])")  # fmt: skip
            return np.zeros((len(ids), h, 0))
        if futr_df is None:
            raise ValueError(f"futr_exog_list={columns}: predict needs futr_df with unique_id, ds and {columns} at the "
                             f"next h={h} stamps of each series (make_future_dataframe() lists them)")  # fmt: skip
        if not isinstance(futr_df, pd.DataFrame):
            raise TypeError(f"futr_df must be a pandas DataFrame, got {type(futr_df).__name__}")
        absent = [c for c in (ID, TIME, *columns) if c not in futr_df.columns]
        if absent:
            raise ValueError(f"futr_df lacks column(s) {absent}; it has {list(futr_df.columns)}")
        expected = self._future_rows(ids, last, h)
        given = futr_df[[ID, TIME, *columns]].assign(**{TIME: self._stamps_like(futr_df[TIME], expected[TIME])})
        duplicated = given.duplicated([ID, TIME])
        if duplicated.any():
            row = given[duplicated].iloc[0]
            raise ValueError(f"futr_df has several rows for series {row[ID]!r} at {row[TIME]}")
        merged = expected.merge(given, on=[ID, TIME], how="outer", indicator=True, sort=False)
        for side, what in (("left_only", "lacks"), ("right_only", "has extra")):
            rows = merged[merged["_merge"] == side]
            if len(rows):
                first = rows.iloc[0]
                hint = ("get_missing_future(futr_df) lists them" if side == "left_only"
                        else "keep only make_future_dataframe()'s rows")  # fmt: skip
                raise ValueError(f"futr_df {what} {len(rows)} row(s) against the next h={h} stamps of the forecast "
                                 f"series, e.g. series {first[ID]!r} at {first[TIME]}: {hint}")  # fmt: skip
        split_exogenous(given, futr_exog_list=columns)  # numeric, and no NaN: the future must be known
        rows = expected.merge(given, on=[ID, TIME], how="left", sort=False)
        return rows[columns].to_numpy(np.float64).reshape(len(ids), h, len(columns))

    def _in_channel_order(self, series: _Series) -> _Series:
        """``series`` reordered as the model's channels (``self.ids``); other or missing series are an error."""
        if sorted(map(str, series.ids)) != sorted(map(str, self.ids)):
            missing = [i for i in self.ids if i not in series.ids]
            extra = [i for i in series.ids if i not in self.ids]
            raise ValueError(f"this model forecasts the series {self.ids} together, as its channels; the frame "
                             f"lacks {missing} and has others {extra}")  # fmt: skip
        where = {key: i for i, key in enumerate(series.ids)}
        return series.take([where[key] for key in self.ids])

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

    def _forecast(self, context: np.ndarray, hist: np.ndarray, futr: np.ndarray, static: np.ndarray) -> np.ndarray:
        """Scaled look-backs ``[W, S, L]`` (``W`` windows of ``S`` series), exogenous ``hist [W, S, L, Fh]``,
        ``futr [W, S, L + H, Ff]``, ``static [S, Fs]`` (standardised) -> scaled forecasts ``[W, S, H, Q]``."""
        windows, n_series, _ = context.shape
        as_tensor = functools.partial(torch.as_tensor, dtype=torch.float32)
        x, hist, futr = as_tensor(context), as_tensor(hist), as_tensor(futr)
        static = as_tensor(static).expand(windows, *static.shape)  # [W, S, Fs]
        if self.series_as_channels:  # the series are the channels
            x, hist, futr = x.transpose(1, 2), hist.transpose(1, 2), futr.transpose(1, 2)  # [W, L, S(, F)]
        else:  # every series is a sample of one channel
            x = x.reshape(windows * n_series, self.input_size, 1)  # [(W S), L, 1]
            hist, futr = hist.flatten(0, 1).unsqueeze(2), futr.flatten(0, 1).unsqueeze(2)  # [(W S), L(+H), 1, F]
            static = static.flatten(0, 1).unsqueeze(1)  # [(W S), 1, Fs]
        outputs = []
        device = next(self.task.parameters()).device
        with torch.inference_mode():
            for chunk in zip(x.split(PREDICT_BATCH), hist.split(PREDICT_BATCH), futr.split(PREDICT_BATCH),
                             static.split(PREDICT_BATCH), strict=True):  # fmt: skip
                out = self.task(*(t.to(device) for t in chunk)).float().cpu()
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
        self,
        df: pd.DataFrame,
        static_df: pd.DataFrame | None = None,
        n_windows: int = 1,
        step_size: int | None = None,
        refit: bool = False,
    ) -> pd.DataFrame:
        """Rolling-origin evaluation, as neuralforecast's: the last ``n_windows`` forecast windows of each series,
        ``step_size`` steps apart (default ``h``), the last one ending at the series' last timestamp.

        The model is fitted on each series up to its first cutoff (``refit=False``), or again up to every cutoff
        (``refit=True``); each window then forecasts from the actual history up to its cutoff. Future exogenous
        values of each window come from ``df``; ``static_df`` as in ``fit``. The Forecaster stays fitted on the
        last training. Returns ``unique_id, ds, cutoff, y`` and the forecast columns.
        """
        step = self.h if step_size is None else step_size
        if not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
            raise ValueError(f"n_windows must be a positive integer, got {n_windows!r}")
        if not isinstance(step, (int, np.integer)) or step < 1:
            raise ValueError(f"step_size must be a positive integer, got {step!r}")
        series = self._check(df)
        series.static = self._static_rows(series.ids, static_df, fitting=True)
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
            self._fit(series.head(ends), self.val_size)
            windows = range(n_windows) if not refit else [first]
            parts.append(self._cv_windows(series, span, step, windows))
        return pd.concat(parts, ignore_index=True)

    def _cv_windows(self, series: _Series, span: int, step: int, windows: Sequence[int]) -> pd.DataFrame:
        scaled = self._scaled(series)
        n_series, length = len(series.ids), self.input_size + self.h
        context = np.empty((len(windows), n_series, self.input_size))
        hist = np.empty((len(windows), n_series, self.input_size, len(self.hist_exog_list)))
        futr = np.empty((len(windows), n_series, length, len(self.futr_exog_list)))
        truth, stamps, cutoffs, ids = [], [], [], []
        for w, window in enumerate(windows):
            for s, (key, values, times) in enumerate(zip(series.ids, series.values, series.stamps, strict=True)):
                end = len(values) - span + window * step  # first forecast row
                context[w, s] = _tail(scaled.values[s][:end], self.input_size)
                hist[w, s] = _pad(scaled.hist[s][max(end - self.input_size, 0) : end], self.input_size, fill=0.0)
                futr[w, s] = _pad(scaled.futr[s][max(end - self.input_size, 0) : end + self.h], length, fill=0.0)
                truth.append(values[end : end + self.h])
                stamps.append(times.iloc[end : end + self.h])
                cutoffs.append(times.iloc[end - 1])
                ids.append(key)
        mean, std = self.mean, self.std
        forecast = self._forecast(context, hist, futr, scaled.static)  # [W, S, H, Q]
        forecast = forecast * std[:, None, None] + mean[:, None, None]
        frame = self._frame(ids, stamps, forecast.reshape(-1, self.h, forecast.shape[-1]), cutoffs)
        frame.insert(3, TARGET, np.concatenate(truth))
        return frame

    # ------------------------------------------------------------------------------------------ save/load

    def save(self, path: str | Path) -> Path:
        """Write ``path/`` (a folder): ``model.safetensors`` (weights), ``context.safetensors`` (each series'
        look-back and its exogenous look-back, so ``predict()`` works after ``load``) and ``forecaster.json``
        (settings, series ids, last timestamps, scaler statistics of the target and of the exogenous columns,
        static rows); each file atomically, the JSON last. No pickle."""
        self._require_fit()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        # clone: safetensors refuses tensors that share storage (tied weights), and load_state_dict re-ties them
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in self.task.model.state_dict().items()}
        with atomic_file(folder / WEIGHTS_FILE) as handle:
            handle.write(save_safetensors(weights))
        with atomic_file(folder / CONTEXT_FILE) as handle:
            context = {"context": self._context, "hist": self._hist_context, "futr": self._futr_context}
            handle.write(save_safetensors({key: torch.as_tensor(value, dtype=torch.float64)
                                           for key, value in context.items() if value.size}))  # fmt: skip
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
            "futr_exog_list": self.futr_exog_list, "hist_exog_list": self.hist_exog_list,
            "stat_exog_list": self.stat_exog_list, "static": self._static.tolist(),
            "exog_scalers": {kind: scaler.to_json() for kind, scaler in self.scalers.items()},
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
        exog_state = {key: settings.pop(key, None) for key in ("static", "exog_scalers")}
        quantiles, kwargs = settings.pop("quantiles"), settings.pop("model_kwargs")
        series_as_channels = settings.pop("series_as_channels", settings["channel_mode"] == "mixing")
        # built from the saved config (never the registry, whose entry may have changed since); the entry name
        # is restored afterwards for a later refit
        forecaster = cls(model=config, quantiles=quantiles, **settings, **kwargs)
        forecaster.ids = state["ids"]
        forecaster.series_as_channels = series_as_channels
        forecaster.mean, forecaster.std = np.array(state["mean"]), np.array(state["std"])
        forecaster._last = [t if isinstance(t, int) else pd.Timestamp(t) for t in state["last"]]
        context = load_safetensors((folder / CONTEXT_FILE).read_bytes())
        forecaster._context = context["context"].numpy()
        rows = len(forecaster._context)
        for key in ("hist", "futr"):
            empty = np.zeros((rows, forecaster.input_size, len(forecaster._exog_kinds()[key])))
            setattr(forecaster, f"_{key}_context", context[key].numpy() if key in context else empty)
        if exog_state["static"] is not None:
            forecaster._static = np.array(exog_state["static"], dtype=np.float64).reshape(rows, -1)
        for kind, scaler in (exog_state["exog_scalers"] or {}).items():
            forecaster.scalers[kind] = ExogenousScaler.from_json(scaler)
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
        exog = {key: settings.pop(key, 0) for key in ("hist_exog", "futr_exog", "static_exog")}
        if any(exog.values()):
            raise ValueError(f"{name}: a model with exogenous inputs {exog} has no column names to read them from "
                             "a frame; use zoo.domains.forecasting.pretrained.load_forecaster")  # fmt: skip
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


def _pad(values: np.ndarray, rows: int, fill: float = np.nan) -> np.ndarray:
    """``values`` (rows first) with ``fill`` rows in front up to ``rows`` (masked look-back of a short series)."""
    missing = rows - len(values)
    if missing <= 0:
        return values
    return np.concatenate([np.full((missing, *values.shape[1:]), fill), values])


def _tail(values: np.ndarray, rows: int) -> np.ndarray:
    """The last ``rows`` values, NaN-padded in front."""
    return _pad(values[-rows:], rows)


def _tails(series: _Series, starts: Sequence[int]) -> _Series:
    """The rows of each series from ``starts[i]`` on (the validation look-back and horizon)."""
    cut = functools.partial(zip, starts, strict=True)
    return _Series(series.ids, [v[b:] for b, v in cut(series.values)], [t.iloc[b:] for b, t in cut(series.stamps)],
                   [a[b:] for b, a in cut(series.hist)], [a[b:] for b, a in cut(series.futr)],
                   series.static)  # fmt: skip


def _exog_lists(*lists: Sequence[str] | None) -> tuple[list[str], ...]:
    """The future, historical and static column lists, checked: strings, each column named once."""
    checked = []
    for names in lists:
        names = [names] if isinstance(names, str) else list(names or ())
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise TypeError(f"exogenous column names must be strings, got {bad}")
        checked.append(names)
    seen: set[str] = set()
    for names in checked:
        for name in names:
            if name in seen:
                raise ValueError(f"exogenous column {name!r} is named more than once in futr_exog_list, "
                                 "hist_exog_list and stat_exog_list: list it once")  # fmt: skip
            if name in (ID, TIME, TARGET):
                raise ValueError(f"exogenous column {name!r} is the id, time or target column")
            seen.add(name)
    return tuple(checked)


def _concat(parts: Sequence) -> np.ndarray:
    return np.concatenate([np.asarray(pd.Series(p).to_numpy()) for p in parts]) if parts else np.array([])


def _plain(value: Any) -> Any:
    """A JSON value of a series id or timestamp (numpy scalars and Timestamps are not JSON)."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value
