"""PNG plots of forecasts: per series, the recent history, the point forecast and shaded quantile bands."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_forecasts(
    history_df: pd.DataFrame,
    forecast_df: pd.DataFrame,
    path: str | Path,
    unique_ids: Sequence | None = None,
    quantiles: Mapping[float, str] | None = None,
    point_col: str | None = None,
    actual_df: pd.DataFrame | None = None,
    max_history: int | None = 200,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    width: float = 10.0,
    height_per_series: float = 2.5,
    dpi: int = 100,
) -> Path:
    """Write a PNG with one panel per series; returns ``path``.

    Args:
        history_df: long frame of past values (``unique_id, ds, y``).
        forecast_df: long frame of forecasts (``unique_id, ds`` + the point column + quantile columns).
        path: the PNG to write (its folder is created).
        unique_ids: series to draw, in order (default: every series of ``forecast_df``).
        quantiles: quantile level -> column of ``forecast_df``; level ``q`` is shaded against level ``1 - q``
            (e.g. ``{0.1: "m-q-0.1", 0.9: "m-q-0.9"}`` gives an 80% band); nested bands get darker inwards.
        point_col: column of the point forecast (default: the only column that is not the id, time, target or a
            quantile column).
        actual_df: optional long frame of the values that happened over the horizon, drawn beside the forecast.
        max_history: draw at most this many last history steps per series (None: all).
        width, height_per_series, dpi: the image is ``width * dpi`` by ``height_per_series * n_series * dpi``
            pixels.
    """
    quantiles = dict(quantiles or {})
    for name in [id_col, time_col, *quantiles.values()]:
        if name not in forecast_df.columns:
            raise ValueError(f"forecast_df lacks column {name!r}; it has {list(forecast_df.columns)}")
    for name in (id_col, time_col, target_col):
        if name not in history_df.columns:
            raise ValueError(f"history_df lacks column {name!r}; it has {list(history_df.columns)}")
    point_col = _point_column(forecast_df, point_col, {id_col, time_col, target_col, *quantiles.values()})
    bands = _bands(quantiles)
    ids = list(pd.unique(forecast_df[id_col])) if unique_ids is None else list(unique_ids)
    if not ids:
        raise ValueError("nothing to plot: forecast_df has no series")
    absent = [u for u in ids if not (forecast_df[id_col] == u).any()]
    if absent:
        raise ValueError(f"series {absent[0]!r} has no forecast in forecast_df")

    # A bare Figure on the Agg canvas: no pyplot state, no global backend switch, safe in threads and servers.
    figure = Figure(figsize=(width, height_per_series * len(ids)), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(ids), 1, squeeze=False)[:, 0]
    for ax, uid in zip(axes, ids):
        past = history_df[history_df[id_col] == uid].sort_values(time_col)
        if max_history is not None:
            past = past.tail(max_history)
        future = forecast_df[forecast_df[id_col] == uid].sort_values(time_col)
        ax.plot(past[time_col], past[target_col], color="black", linewidth=1.0, label="history")
        if actual_df is not None:
            real = actual_df[actual_df[id_col] == uid].sort_values(time_col)
            ax.plot(real[time_col], real[target_col], color="gray", linewidth=1.0, label="actual")
        for alpha, (low, high, coverage) in zip(_shades(len(bands)), bands):
            ax.fill_between(future[time_col], future[quantiles[low]], future[quantiles[high]], color="tab:blue",
                            alpha=alpha, linewidth=0, label=f"{coverage:.0%} interval")  # fmt: skip
        ax.plot(future[time_col], future[point_col], color="tab:blue", linewidth=1.2, label=point_col)
        ax.set_title(str(uid), fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _point_column(forecast_df: pd.DataFrame, point_col: str | None, taken: set) -> str:
    if point_col is not None:
        if point_col not in forecast_df.columns:
            raise ValueError(f"forecast_df lacks the point column {point_col!r}; it has {list(forecast_df.columns)}")
        return point_col
    rest = [c for c in forecast_df.columns if c not in taken]
    if len(rest) != 1:
        raise ValueError(f"cannot tell the point forecast among {rest}: pass point_col=")
    return rest[0]


def _bands(quantiles: dict[float, str]) -> list[tuple[float, float, float]]:
    """``(low level, high level, coverage)`` of each symmetric pair of levels, widest first."""
    bands = []
    for q in sorted(quantiles):
        if q < 0.5:
            partner = next((p for p in quantiles if abs(p - (1 - q)) < 1e-9), None)
            if partner is None:
                raise ValueError(f"quantile {q} has no partner {1 - q:g} to form a band; give levels in pairs")
            bands.append((q, partner, partner - q))
    unpaired = [q for q in quantiles if q > 0.5 and all(abs(q - hi) > 1e-9 for _, hi, _ in bands)]
    if unpaired:
        raise ValueError(f"quantile {unpaired[0]} has no partner {1 - unpaired[0]:g} to form a band")
    return bands


def _shades(n: int) -> list[float]:
    # Overlaid translucent bands darken towards the median: the widest is lightest.
    return [0.15 + 0.1 * i for i in range(n)]
