"""Validation and conversion of forecasting frames.

*Long* format (as neuralforecast): one row per (series, timestamp) with columns ``unique_id`` (series id), ``ds``
(datetime, or integer step) and ``y`` (numeric target), plus optional exogenous columns. *Wide* format (as the ETT
CSVs): one row per timestamp, a time column (``date``) and one column per series/channel.

Missing values are *masked*, never filled: a NaN ``y`` stays NaN, and a timestamp absent from a regular grid is
inserted as a NaN row only when the caller names the frequency (``freq=``); without it an irregular series is an
error naming the series and the first gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

Freq = str | int
"""A pandas offset alias (``"h"``, ``"15min"``, ``"D"``) for datetime stamps, or an integer step for integer stamps."""


def infer_freq(stamps: pd.Series | pd.DatetimeIndex) -> str | None:
    """pandas' inferred offset alias of sorted, unique datetime ``stamps`` (``"h"``, ``"MS"``...), or None when
    they are irregular or fewer than 3."""
    index = pd.DatetimeIndex(stamps)
    if len(index) < 3:
        return None
    # pandas >= 3 warns that infer_freq will return an offset instead of a string; ask for the offset where the
    # option exists (and read its alias), so the result is the same on pandas 2 and 3.
    try:
        with pd.option_context("future.infer_freq_returns_offset", True):
            offset = pd.infer_freq(index)
    except (KeyError, pd.errors.OptionError):
        offset = pd.infer_freq(index)
    if offset is None:
        return None
    return offset if isinstance(offset, str) else offset.freqstr


def check_long(
    df: pd.DataFrame,
    freq: Freq | None = None,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
) -> tuple[pd.DataFrame, Freq]:
    """Validate a long-format frame; returns ``(frame sorted by series then time, frequency)``.

    ``ds`` is parsed to datetime unless it holds integers (steps). Errors name the column, series or timestamp:
    missing columns, unparseable stamps, non-numeric ``y``, duplicate ``(unique_id, ds)``, a series whose ``y``
    is all NaN, and irregular stamps. With ``freq`` given, timestamps missing from each series' grid (first to last
    stamp) are inserted as rows with NaN ``y`` and NaN exogenous values: masked, not filled.
    """
    missing = [c for c in (id_col, time_col, target_col) if c not in df.columns]
    if missing:
        raise ValueError(f"long frame lacks column(s) {missing}; it has {list(df.columns)} "
                         f"(rename them, or pass id_col/time_col/target_col)")  # fmt: skip
    if df.empty:
        raise ValueError("long frame has no rows")
    out = df.copy()
    if out[id_col].isna().any():
        raise ValueError(
            f"column {id_col!r} has missing series ids (row {int(out[id_col].isna().to_numpy().argmax())})"
        )
    out[time_col] = _parse_stamps(out[time_col], time_col)
    out[target_col] = _numeric_target(out, id_col, time_col, target_col)

    duplicated = out.duplicated([id_col, time_col], keep="first")
    if duplicated.any():
        row = out[duplicated].iloc[0]
        raise ValueError(f"duplicate timestamp {row[time_col]} in series {row[id_col]!r} "
                         f"({int(duplicated.sum())} duplicate row(s)): keep one row per timestamp")  # fmt: skip
    out = out.sort_values([id_col, time_col], kind="stable").reset_index(drop=True)

    observed = out[target_col].notna().groupby(out[id_col], sort=False).any()
    if not observed.all():
        empty = observed.index[~observed.to_numpy()].tolist()
        raise ValueError(f"series {empty[0]!r} has no observed {target_col!r} (all NaN)"
                         + (f", as do {len(empty) - 1} more" if len(empty) > 1 else "") + ": drop it")  # fmt: skip

    integer = pd.api.types.is_integer_dtype(out[time_col])
    groups = {key: part for key, part in out.groupby(id_col, sort=False)[time_col]}
    if freq is None:
        freq = _infer_integer_step(groups) if integer else _infer_datetime_freq(groups)
        return out, freq
    return _fill_grid(out, groups, freq, integer, id_col, time_col), freq


def _parse_stamps(stamps: pd.Series, time_col: str) -> pd.Series:
    if pd.api.types.is_integer_dtype(stamps) or pd.api.types.is_datetime64_any_dtype(stamps):
        return stamps
    if stamps.isna().any():
        raise ValueError(f"column {time_col!r} has missing timestamps (row {int(stamps.isna().to_numpy().argmax())})")
    try:
        return pd.to_datetime(stamps)
    except (ValueError, TypeError) as error:
        raise ValueError(f"column {time_col!r} cannot be parsed as datetimes ({error}); give datetimes, "
                         f"ISO strings or integer steps") from None  # fmt: skip


def _numeric_target(df: pd.DataFrame, id_col: str, time_col: str, target_col: str) -> pd.Series:
    y = df[target_col]
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        return y.astype(float)
    coerced = pd.to_numeric(y, errors="coerce")
    bad = coerced.isna() & y.notna()
    if bad.any():
        row = df[bad.to_numpy()].iloc[0]
        raise ValueError(f"column {target_col!r} is not numeric: value {row[target_col]!r} in series "
                         f"{row[id_col]!r} at {row[time_col]}; use NaN for missing values")  # fmt: skip
    return coerced.astype(float)


def _first_gap(series_id, stamps: pd.Series) -> str:
    """Where a series first leaves its most common step, for the error message."""
    values = stamps.to_numpy()
    steps = np.diff(values)
    kinds, counts = np.unique(steps, return_counts=True)
    usual = kinds[counts.argmax()]
    i = int(np.flatnonzero(steps != usual)[0])
    usual_text = pd.Timedelta(usual) if np.issubdtype(steps.dtype, np.timedelta64) else usual
    return (f"series {series_id!r} has irregular timestamps: {stamps.iloc[i]} is followed by {stamps.iloc[i + 1]} "
            f"(its usual step is {usual_text})")  # fmt: skip


def _infer_datetime_freq(groups: dict) -> str:
    found: dict[str, object] = {}
    for key, stamps in groups.items():
        if len(stamps) < 3:
            continue
        alias = infer_freq(stamps)
        if alias is None:
            raise ValueError(_first_gap(key, stamps) + "; pass freq= (e.g. freq='h') to insert the missing "
                             "timestamps as masked NaN rows")  # fmt: skip
        found.setdefault(alias, key)
    if not found:
        raise ValueError("cannot infer the frequency: every series has fewer than 3 timestamps; pass freq=")
    if len(found) > 1:
        (a, ka), (b, kb) = list(found.items())[:2]
        raise ValueError(f"series have different frequencies: {ka!r} is {a!r}, {kb!r} is {b!r}; pass freq= "
                         f"or split the frame by frequency")  # fmt: skip
    alias = next(iter(found))
    for key, stamps in groups.items():
        if len(stamps) < 3 and not _on_grid(stamps, alias).all():
            raise ValueError(f"series {key!r} ({len(stamps)} timestamps) is not on the {alias!r} grid; pass freq=")
    return alias


def _infer_integer_step(groups: dict) -> int:
    steps = {}
    for key, stamps in groups.items():
        diffs = np.unique(np.diff(stamps.to_numpy()))
        if len(diffs) > 1:
            raise ValueError(_first_gap(key, stamps) + "; pass freq=<step> to insert the missing steps as masked NaN "
                             "rows")  # fmt: skip
        if len(diffs) == 1:
            steps.setdefault(int(diffs[0]), key)
    if not steps:
        return 1  # every series has one stamp: a unit step is the only sensible reading of integer stamps
    if len(steps) > 1:
        (a, ka), (b, kb) = list(steps.items())[:2]
        raise ValueError(f"series have different integer steps: {ka!r} steps by {a}, {kb!r} by {b}; pass freq=")
    return next(iter(steps))


def _grid(stamps: pd.Series, freq: Freq, integer: bool) -> pd.Index:
    first, last = stamps.iloc[0], stamps.iloc[-1]
    if integer:
        return pd.Index(np.arange(first, last + 1, int(freq)))
    return pd.date_range(first, last, freq=freq)


def _on_grid(stamps: pd.Series, freq: Freq, integer: bool = False) -> np.ndarray:
    return stamps.isin(_grid(stamps, freq, integer)).to_numpy()


def _fill_grid(df: pd.DataFrame, groups: dict, freq: Freq, integer: bool, id_col: str, time_col: str) -> pd.DataFrame:
    if integer and (not isinstance(freq, (int, np.integer)) or freq <= 0):
        raise ValueError(f"freq={freq!r}: integer timestamps need a positive integer step")
    if not integer:
        try:
            pd.tseries.frequencies.to_offset(freq)
        except (ValueError, TypeError):
            raise ValueError(
                f"freq={freq!r}: datetime timestamps need a pandas offset alias such as 'h' or '15min'"
            ) from None
    parts = []
    for key, stamps in groups.items():
        grid = _grid(stamps, freq, integer)
        off = ~stamps.isin(grid).to_numpy()
        if off.any():
            raise ValueError(f"series {key!r}: timestamp {stamps.iloc[int(off.argmax())]} is not on the {freq!r} grid "
                             f"that starts at {stamps.iloc[0]}; check freq=")  # fmt: skip
        parts.append(pd.DataFrame({id_col: key, time_col: grid}))
    full = pd.concat(parts, ignore_index=True)
    if len(full) == len(df):
        return df
    # A left merge on the grid keeps every observed row and adds the absent stamps with NaN in every other column.
    return full.merge(df, on=[id_col, time_col], how="left", validate="one_to_one")


def wide_to_long(
    df: pd.DataFrame, time_col: str = "date", id_name: str = "unique_id", time_name: str = "ds", value_name: str = "y"
) -> pd.DataFrame:
    """A wide frame (a time column plus one column per channel, as ETT) as long ``unique_id, ds, y``, series in
    column order; every non-time column is a channel."""
    if time_col not in df.columns:
        raise ValueError(f"wide frame lacks the time column {time_col!r}; it has {list(df.columns)} (pass time_col=)")
    channels = [c for c in df.columns if c != time_col]
    if not channels:
        raise ValueError(f"wide frame has no channel column besides {time_col!r}")
    long = df.melt(id_vars=[time_col], value_vars=channels, var_name=id_name, value_name=value_name)
    return long.rename(columns={time_col: time_name})[[id_name, time_name, value_name]]


def long_to_wide(
    df: pd.DataFrame, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y", time_name: str = "date"
) -> pd.DataFrame:
    """A long frame as wide: one row per timestamp (sorted), one column per series in order of first appearance;
    a stamp a series lacks is NaN."""
    missing = [c for c in (id_col, time_col, target_col) if c not in df.columns]
    if missing:
        raise ValueError(f"long frame lacks column(s) {missing}; it has {list(df.columns)}")
    order = list(pd.unique(df[id_col]))
    wide = df.pivot(index=time_col, columns=id_col, values=target_col).sort_index()
    wide = wide[order].reset_index().rename(columns={time_col: time_name})
    wide.columns.name = None
    return wide


def check_wide(df: pd.DataFrame, time_col: str = "date", freq: Freq | None = None) -> tuple[pd.DataFrame, Freq]:
    """Validate a wide frame as ``check_long`` does for each channel; returns ``(frame sorted by time with the
    channels in their original order, frequency)``. With ``freq`` given, absent timestamps become NaN rows."""
    if time_col not in df.columns:
        raise ValueError(f"wide frame lacks the time column {time_col!r}; it has {list(df.columns)} (pass time_col=)")
    channels = [c for c in df.columns if c != time_col]
    long, freq = check_long(wide_to_long(df, time_col=time_col), freq=freq)
    # check_long orders series by id; restore the file's channel order (models and reports index channels by it).
    return long_to_wide(long, time_name=time_col)[[time_col, *channels]], freq


@dataclass
class Exogenous:
    """Exogenous inputs of a long frame, checked by ``split_exogenous``."""

    futr: list[str] = field(default_factory=list)
    """Columns known in advance (calendar, planned prices): needed for the forecast horizon too."""
    hist: list[str] = field(default_factory=list)
    """Columns known only up to the forecast start (observed covariates)."""
    static: pd.DataFrame | None = None
    """One row per series, indexed by series id, numeric columns (or None)."""


def split_exogenous(
    df: pd.DataFrame,
    futr_exog_list: Sequence[str] = (),
    hist_exog_list: Sequence[str] = (),
    static_df: pd.DataFrame | None = None,
    id_col: str = "unique_id",
    target_col: str = "y",
) -> Exogenous:
    """Check the exogenous columns of a long frame and return them as an ``Exogenous``.

    Future and historical columns must exist, be numeric and have no NaN on a row whose target is observed (rows
    inserted for gaps, with NaN target, are masked whole). ``static_df`` needs ``id_col`` plus numeric columns,
    exactly one row per series of ``df`` and no NaN.
    """
    futr, hist = list(futr_exog_list), list(hist_exog_list)
    both = sorted(set(futr) & set(hist))
    if both:
        raise ValueError(f"column(s) {both} are listed as both future and historical exogenous: pick one")
    reserved = {id_col, target_col}
    for name in futr + hist:
        if name in reserved or name == "ds":
            raise ValueError(f"exogenous column {name!r} is the id, time or target column")
    absent = [c for c in futr + hist if c not in df.columns]
    if absent:
        raise ValueError(f"exogenous column(s) {absent} are not in the frame; it has {list(df.columns)}")
    observed = df[target_col].notna().to_numpy() if target_col in df.columns else np.ones(len(df), bool)
    for name in futr + hist:
        _check_numeric(df, name, id_col, observed, "exogenous")
    static = None
    if static_df is not None:
        static = _check_static(df, static_df, id_col)
    return Exogenous(futr=futr, hist=hist, static=static)


def _check_numeric(df: pd.DataFrame, name: str, id_col: str, rows: np.ndarray, what: str) -> None:
    column = df[name]
    if not pd.api.types.is_numeric_dtype(column):
        raise ValueError(f"{what} column {name!r} is not numeric (dtype {column.dtype}): encode it as numbers")
    bad = column.isna().to_numpy() & rows
    if bad.any():
        row = df[bad].iloc[0]
        where = f" in series {row[id_col]!r}" if id_col in df.columns else ""
        stamp = f" at {row['ds']}" if "ds" in df.columns else ""
        raise ValueError(f"{what} column {name!r} is NaN{where}{stamp} ({int(bad.sum())} row(s)): exogenous inputs "
                         f"must be known wherever the target is")  # fmt: skip


def _check_static(df: pd.DataFrame, static_df: pd.DataFrame, id_col: str) -> pd.DataFrame:
    if id_col not in static_df.columns:
        raise ValueError(f"static_df lacks the id column {id_col!r}; it has {list(static_df.columns)}")
    duplicated = static_df[id_col].duplicated()
    if duplicated.any():
        raise ValueError(f"static_df has several rows for series {static_df[id_col][duplicated].iloc[0]!r}")
    lacking = sorted(set(df[id_col]) - set(static_df[id_col]), key=str)
    if lacking:
        raise ValueError(f"static_df has no row for series {lacking[0]!r} ({len(lacking)} series lack one)")
    static = static_df.set_index(id_col)
    for name in static.columns:
        _check_numeric(static_df, name, id_col, np.ones(len(static_df), bool), "static")
    return static.loc[list(pd.unique(df[id_col]))]
