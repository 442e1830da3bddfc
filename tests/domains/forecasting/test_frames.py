"""Long-format validation, gap handling, wide/long conversion and exogenous checks on tiny synthetic frames."""

import numpy as np
import pandas as pd
import pytest

from zoo.domains.forecasting.frames import (
    check_long,
    check_wide,
    infer_freq,
    long_to_wide,
    split_exogenous,
    wide_to_long,
)


def long_frame(ids=("a", "b"), n=5, freq="h", start="2024-01-01"):
    stamps = pd.date_range(start, periods=n, freq=freq)
    rows = [(u, t, float(i + 10 * k)) for k, u in enumerate(ids) for i, t in enumerate(stamps)]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


def test_check_long_sorts_parses_and_infers_hourly():
    df = long_frame().sample(frac=1.0, random_state=0)
    df["ds"] = df["ds"].astype(str)  # ISO strings are parsed
    out, freq = check_long(df)
    assert freq == "h"
    assert pd.api.types.is_datetime64_any_dtype(out["ds"])
    assert out["unique_id"].tolist() == ["a"] * 5 + ["b"] * 5
    assert out.groupby("unique_id")["ds"].apply(lambda s: s.is_monotonic_increasing).all()
    assert out["y"].tolist() == [0.0, 1, 2, 3, 4, 10, 11, 12, 13, 14]


def test_missing_columns_are_named_with_the_present_ones():
    df = long_frame().rename(columns={"y": "value"})
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['y'\].*'value'"):
        check_long(df)


def test_duplicate_timestamp_names_series_and_stamp():
    df = long_frame()
    df = pd.concat([df, df.iloc[[7]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"duplicate timestamp 2024-01-01 02:00:00 in series 'b'"):
        check_long(df)


def test_irregular_series_is_rejected_with_its_first_gap():
    df = long_frame(n=6)
    df = df.drop(index=[8, 9]).reset_index(drop=True)  # series b loses 02:00 and 03:00
    with pytest.raises(ValueError, match=r"series 'b'.*2024-01-01 01:00:00 is followed by 2024-01-01 04:00:00.*freq="):
        check_long(df)


def test_freq_inserts_missing_stamps_as_nan_rows_not_filled():
    df = long_frame(n=6)
    df["price"] = np.arange(len(df), dtype=float)
    df = df.drop(index=[8, 9]).reset_index(drop=True)
    out, freq = check_long(df, freq="h")
    assert freq == "h" and len(out) == 12
    b = out[out["unique_id"] == "b"].set_index("ds")
    missing = pd.to_datetime(["2024-01-01 02:00", "2024-01-01 03:00"])
    assert b.loc[missing, "y"].isna().all() and b.loc[missing, "price"].isna().all()
    assert b["y"].notna().sum() == 4  # the observed values are kept, nothing interpolated
    assert b.loc[pd.Timestamp("2024-01-01 04:00"), "y"] == 14.0


def test_freq_rejects_stamps_off_the_grid():
    df = long_frame(n=4)
    df.loc[1, "ds"] = pd.Timestamp("2024-01-01 01:30")
    with pytest.raises(ValueError, match=r"series 'a': timestamp 2024-01-01 01:30:00 is not on the 'h' grid"):
        check_long(df, freq="h")


def test_nan_only_series_is_named():
    df = long_frame()
    df.loc[df["unique_id"] == "b", "y"] = np.nan
    with pytest.raises(ValueError, match=r"series 'b' has no observed 'y' \(all NaN\)"):
        check_long(df)


def test_partly_missing_target_is_kept_as_nan():
    df = long_frame()
    df.loc[2, "y"] = np.nan
    out, _ = check_long(df)
    assert np.isnan(out.loc[2, "y"]) and out["y"].notna().sum() == 9


def test_non_numeric_target_names_the_value():
    df = long_frame()
    df["y"] = df["y"].astype(object)
    df.loc[3, "y"] = "n/a"
    with pytest.raises(ValueError, match=r"not numeric: value 'n/a' in series 'a' at 2024-01-01 03:00:00"):
        check_long(df)


def test_numeric_strings_are_accepted():
    df = long_frame()
    df["y"] = df["y"].astype(str)
    out, _ = check_long(df)
    assert out["y"].dtype == float and out["y"].iloc[1] == 1.0


def test_integer_steps_infer_and_fill():
    df = pd.DataFrame({"unique_id": ["s"] * 4, "ds": [0, 2, 4, 8], "y": [1.0, 2, 3, 4]})
    with pytest.raises(ValueError, match=r"series 's' has irregular timestamps: 4 is followed by 8"):
        check_long(df)
    out, step = check_long(df, freq=2)
    assert step == 2 and out["ds"].tolist() == [0, 2, 4, 6, 8]
    assert np.isnan(out["y"].iloc[3])
    ok, step = check_long(df.iloc[:3])
    assert step == 2 and len(ok) == 3


def test_different_frequencies_across_series_are_rejected():
    df = pd.concat([long_frame(ids=("a",)), long_frame(ids=("b",), freq="D")], ignore_index=True)
    with pytest.raises(ValueError, match=r"different frequencies: 'a' is 'h', 'b' is 'D'"):
        check_long(df)


def test_unparseable_timestamps_and_bad_freq():
    df = long_frame()
    df["ds"] = df["ds"].astype(str)
    df.loc[4, "ds"] = "yesterday"
    with pytest.raises(ValueError, match=r"column 'ds' cannot be parsed as datetimes"):
        check_long(df)
    with pytest.raises(ValueError, match=r"freq='hourly'.*offset alias"):
        check_long(long_frame(), freq="hourly")


def test_infer_freq_monthly_and_irregular():
    assert infer_freq(pd.date_range("2024-01-01", periods=5, freq="MS")) == "MS"
    assert infer_freq(pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-04"])) is None
    assert infer_freq(pd.DatetimeIndex(["2024-01-01", "2024-01-02"])) is None


def test_wide_long_round_trip_keeps_channel_order():
    wide = pd.DataFrame(
        {"date": pd.date_range("2024-01-01", periods=3, freq="h"), "OT": [1.0, 2, 3], "HUFL": [4.0, 5, 6]}
    )
    long = wide_to_long(wide)
    assert list(long.columns) == ["unique_id", "ds", "y"]
    assert long["unique_id"].tolist() == ["OT"] * 3 + ["HUFL"] * 3
    assert long["y"].tolist() == [1.0, 2, 3, 4, 5, 6]
    back = long_to_wide(long)
    pd.testing.assert_frame_equal(back, wide)


def test_long_to_wide_leaves_absent_stamps_nan():
    long = long_frame(n=3).drop(index=[4]).reset_index(drop=True)
    wide = long_to_wide(long)
    assert wide.shape == (3, 3) and np.isnan(wide.loc[1, "b"]) and wide.loc[1, "a"] == 1.0


def test_wide_to_long_needs_the_time_column():
    with pytest.raises(ValueError, match=r"lacks the time column 'date'.*\['ds', 'x'\]"):
        wide_to_long(pd.DataFrame({"ds": [1], "x": [2.0]}))


def test_split_exogenous_checks_columns_nan_and_static():
    df = long_frame()
    df["temp"] = np.linspace(0, 1, len(df))
    df["holiday"] = 0.0
    static = pd.DataFrame({"unique_id": ["b", "a"], "size": [2.0, 1.0]})
    exog = split_exogenous(df, futr_exog_list=["holiday"], hist_exog_list=["temp"], static_df=static)
    assert exog.futr == ["holiday"] and exog.hist == ["temp"]
    assert exog.static.index.tolist() == ["a", "b"] and exog.static["size"].tolist() == [1.0, 2.0]

    with pytest.raises(ValueError, match=r"exogenous column\(s\) \['rain'\] are not in the frame"):
        split_exogenous(df, hist_exog_list=["rain"])
    with pytest.raises(ValueError, match=r"both future and historical"):
        split_exogenous(df, futr_exog_list=["temp"], hist_exog_list=["temp"])
    gap = df.copy()
    gap.loc[6, "temp"] = np.nan
    with pytest.raises(ValueError, match=r"'temp' is NaN in series 'b' at 2024-01-01 01:00:00"):
        split_exogenous(gap, hist_exog_list=["temp"])
    gap.loc[6, "y"] = np.nan  # a masked row may lack its covariates
    assert split_exogenous(gap, hist_exog_list=["temp"]).hist == ["temp"]
    with pytest.raises(ValueError, match=r"static_df has no row for series 'b'"):
        split_exogenous(df, static_df=static.iloc[1:])
    with pytest.raises(ValueError, match=r"static_df has several rows for series 'a'"):
        split_exogenous(df, static_df=pd.concat([static, static.iloc[[1]]]))
    text = df.assign(kind="x")
    with pytest.raises(ValueError, match=r"'kind' is not numeric"):
        split_exogenous(text, futr_exog_list=["kind"])


def test_check_wide_validates_every_channel():
    wide = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=4, freq="D"), "b": [1.0, 2, 3, 4], "a": np.nan})
    with pytest.raises(ValueError, match=r"series 'a' has no observed 'y'"):
        check_wide(wide)
    wide["a"] = [1.0, 1, 1, 1]
    out, freq = check_wide(wide.drop(index=[2]), freq="D")
    assert (
        freq == "D"
        and list(out.columns) == ["date", "b", "a"]
        and len(out) == 4
        and out[["a", "b"]].iloc[2].isna().all()
    )
