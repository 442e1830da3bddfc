"""Forecast accuracy metrics: numpy arrays in, a float out.

``y_true`` may hold NaN for missing observations: those entries are *masked* (left out of every mean), never
filled; an optional boolean ``mask`` (True = scored) removes more. A forecast that is NaN where an observation is
scored is an error. Point metrics average over every scored entry of any shape (windows x steps x channels), as the
long-horizon papers report. Quantile forecasts carry the quantile levels on a trailing axis ``[..., Q]``.

CRPS is the *quantile-loss approximation*: ``2 * mean over levels q of the mean pinball loss at q``, which tends to
the CRPS as the levels fill (0, 1). ``scaled_crps`` divides it by the mean absolute observation; that equals
neuralforecast's ``scaled_crps`` and GluonTS's ``mean_weighted_sum_quantile_loss`` on the same quantile levels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_pinball_loss, mean_squared_error


def _scored(y_true, y_pred, mask=None, trailing: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flat observed targets and the matching forecasts (forecasts keep ``trailing`` extra axes, e.g. quantiles)."""
    true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if pred.shape[: pred.ndim - trailing] != true.shape:
        raise ValueError(f"forecast shape {pred.shape} does not match the target shape {true.shape}")
    keep = ~np.isnan(true)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != true.shape:
            raise ValueError(f"mask shape {mask.shape} does not match the target shape {true.shape}")
        keep &= mask
    if not keep.any():
        raise ValueError("no observed target to score: every entry is NaN or masked")
    true, pred = true[keep], pred[keep]
    if np.isnan(pred).any():
        missing = int(np.isnan(pred).reshape(len(pred), -1).any(axis=1).sum())
        raise ValueError(f"the forecast is NaN at {missing} observed entries: it must cover every scored target")
    return true, pred


def mse(y_true, y_pred, mask=None) -> float:
    """Mean squared error over every observed entry."""
    true, pred = _scored(y_true, y_pred, mask)
    return float(mean_squared_error(true, pred))


def mae(y_true, y_pred, mask=None) -> float:
    """Mean absolute error over every observed entry."""
    true, pred = _scored(y_true, y_pred, mask)
    return float(mean_absolute_error(true, pred))


def seasonal_naive_scale(y_train, season: int = 1) -> np.ndarray:
    """Mean absolute ``season``-step difference of the training series ``[T]`` or ``[T, C]`` (per channel), NaN
    pairs skipped: the in-sample error of the seasonal naive forecast, MASE's denominator."""
    train = np.asarray(y_train, dtype=np.float64)
    if season < 1:
        raise ValueError(f"season must be a positive number of steps, got {season}")
    if len(train) <= season:
        raise ValueError(f"the training part has {len(train)} steps: MASE needs more than season={season}")
    diffs = np.abs(train[season:] - train[:-season])
    with warnings.catch_warnings():
        # nanmean warns on an all-NaN column and returns NaN; mase reports that case with its series.
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(diffs, axis=0))


def mase(y_true, y_pred, y_train, season: int = 1, mask=None) -> float:
    """Mean absolute scaled error: MAE divided by the seasonal naive in-sample MAE of ``y_train``.

    ``y_true`` / ``y_pred``: ``[H]`` for one series or ``[H, C]`` for ``C`` series (time first, as ``y_train``
    ``[T]`` / ``[T, C]``); with several series each is scaled by its own training scale and the scaled errors are
    averaged (as GluonTS and Monash do per series). A zero or undefined scale (a constant training series) is an
    error, because the ratio is then meaningless.
    """
    scale = seasonal_naive_scale(y_train, season)
    true = np.asarray(y_true, dtype=np.float64)
    if scale.shape != true.shape[1:]:
        raise ValueError(f"y_train {np.shape(y_train)} and y_true {true.shape} must share the series axis")
    bad = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)).ravel())
    if len(bad):
        where = "" if scale.ndim == 0 else f" of series {int(bad[0])}"
        raise ValueError(f"the seasonal naive scale{where} is {scale.ravel()[bad[0]]} (constant or unobserved "
                         f"training part, season={season}): MASE is undefined")  # fmt: skip
    # Scaling before the mean gives each series its own denominator; sklearn's MAE then averages the scaled errors.
    return mae(true / scale, np.asarray(y_pred, dtype=np.float64) / scale, mask)


def _levels(quantiles: Sequence[float], n: int) -> np.ndarray:
    levels = np.asarray(quantiles, dtype=np.float64)
    if levels.ndim != 1 or len(levels) != n:
        raise ValueError(f"{len(levels)} quantile levels given for forecasts with {n} quantiles on the last axis")
    if ((levels <= 0) | (levels >= 1)).any():
        raise ValueError(f"quantile levels must lie in (0, 1), got {levels.tolist()}")
    return levels


def pinball_loss(y_true, y_quantiles, quantiles: Sequence[float], mask=None) -> float:
    """Mean pinball (quantile) loss over observed entries and quantile levels; ``y_quantiles`` is ``[..., Q]``."""
    true, pred = _scored(y_true, y_quantiles, mask, trailing=1)
    levels = _levels(quantiles, pred.shape[-1])
    return float(np.mean([mean_pinball_loss(true, pred[:, i], alpha=q) for i, q in enumerate(levels)]))


def crps(y_true, y_quantiles, quantiles: Sequence[float], mask=None) -> float:
    """CRPS approximated from quantile forecasts ``[..., Q]``: 2 x the mean pinball loss over the levels."""
    return 2.0 * pinball_loss(y_true, y_quantiles, quantiles, mask)


def scaled_crps(y_true, y_quantiles, quantiles: Sequence[float], mask=None) -> float:
    """``crps`` divided by the mean absolute observation (neuralforecast ``scaled_crps``, GluonTS mean wQL)."""
    true, _ = _scored(y_true, y_quantiles, mask, trailing=1)
    denominator = np.abs(true).mean()
    if denominator == 0:
        raise ValueError("every observed target is 0: scaled CRPS is undefined")
    return crps(y_true, y_quantiles, quantiles, mask) / float(denominator)
