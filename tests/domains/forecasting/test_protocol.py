"""The long-horizon protocol: split borders, scaling from train only, window counts and alignment, the DataModule."""

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.domains.forecasting.datasets import load_dataset
from zoo.domains.forecasting.protocol import (
    LongHorizonDataModule,
    LongHorizonSplits,
    WindowDataset,
    evaluate_windows,
    split_borders,
)
from zoo.training.loader import SampleKey


def ramp_frame(n=200, channels=2):
    """Row t of channel c holds 1000 * c + t: every value tells where it came from."""
    values = np.arange(n)[:, None] + 1000.0 * np.arange(channels)[None, :]
    frame = pd.DataFrame(values, columns=[f"c{i}" for i in range(channels)])
    frame.insert(0, "date", pd.date_range("2024-01-01", periods=n, freq="h"))
    return frame


def test_ratio_borders_follow_the_custom_loader_rule():
    # n = 1001: int(700.7) = 700 train, int(200.2) = 200 test, val takes the other 101.
    borders = split_borders(1001, 24, "ratio")
    assert borders == {"train": (0, 700), "val": (700 - 24, 801), "test": (801 - 24, 1001)}


def test_ett_borders_are_12_4_4_months():
    hours = 30 * 24
    borders = split_borders(17_420, 96, "ett-hourly")
    assert borders["train"] == (0, 12 * hours)
    assert borders["val"] == (12 * hours - 96, 16 * hours)
    assert borders["test"] == (16 * hours - 96, 20 * hours)
    assert split_borders(70_000, 96, "ett-minute")["test"] == (16 * hours * 4 - 96, 20 * hours * 4)
    with pytest.raises(ValueError, match=r"needs 14400 rows \(12/4/4 months\), the data has 1000.*ratio"):
        split_borders(1000, 96, "ett-hourly")
    with pytest.raises(ValueError, match=r"split='thirds'"):
        split_borders(1000, 96, "thirds")


def test_windows_align_and_first_test_forecast_starts_at_the_border():
    frame = ramp_frame(200)
    splits = LongHorizonSplits(frame, seq_len=8, pred_len=4, split="ratio", scale=False)
    # 200 rows: train 140, test 40, val 20; test rows start 8 before the border at 160.
    test = splits.windows("test")
    assert len(test) == (40 + 8) - 8 - 4 + 1
    x, y = test[0]
    assert x.shape == (8, 2) and y.shape == (4, 2) and x.dtype == torch.float32
    assert x[:, 0].tolist() == list(range(152, 160)) and y[:, 0].tolist() == [160, 161, 162, 163]
    assert y[0, 1].item() == 1160  # channels stay apart
    last_x, last_y = test[len(test) - 1]
    assert last_y[-1, 0].item() == 199  # the last window ends on the last row
    assert last_x[-1, 0].item() + 1 == last_y[0, 0].item()  # x ends right where y starts
    val_x, val_y = splits.windows("val")[0]
    assert val_y[0, 0].item() == 140 and val_x[-1, 0].item() == 139
    assert splits.dates["test"][8] == frame["date"][160]


def test_window_views_equal_items_and_sample_keys_work():
    splits = LongHorizonSplits(ramp_frame(120, 3), seq_len=6, pred_len=3, split="ratio")
    data = splits.windows("train")
    assert data.x.shape == (len(data), 6, 3) and data.y.shape == (len(data), 3, 3)
    for i in (0, 5, len(data) - 1):
        x, y = data[i]
        np.testing.assert_array_equal(data.x[i], x.numpy())
        np.testing.assert_array_equal(data.y[i], y.numpy())
    key_x, _ = data[SampleKey(epoch=2, index=5)]
    np.testing.assert_array_equal(key_x.numpy(), data.x[5])
    with pytest.raises(IndexError):
        data[len(data)]


def test_scaler_uses_train_rows_only():
    frame = ramp_frame(100, 1)
    frame.loc[70:, "c0"] += 1e6  # a level shift after the train border must not leak into the statistics
    splits = LongHorizonSplits(frame, seq_len=4, pred_len=2, split="ratio")
    train = np.arange(70.0)
    assert splits.stats.mean[0] == pytest.approx(train.mean())
    assert splits.stats.std[0] == pytest.approx(train.std(ddof=0))  # population std, as StandardScaler
    assert splits.data["train"][:, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert splits.data["test"].min() > 1e4  # the shifted rows are far from the train scale
    raw = splits.inverse_transform(splits.data["test"].astype(np.float64))
    np.testing.assert_allclose(raw[:, 0], frame["c0"].to_numpy()[76:], rtol=1e-6)


def test_missing_values_stay_nan_and_are_ignored_by_the_scaler():
    frame = ramp_frame(100, 1)
    frame.loc[10, "c0"] = np.nan
    splits = LongHorizonSplits(frame, seq_len=4, pred_len=2, split="ratio")
    train = np.delete(np.arange(70.0), 10)
    assert splits.stats.mean[0] == pytest.approx(train.mean())
    assert np.isnan(splits.data["train"][10, 0]) and np.isfinite(np.delete(splits.data["train"][:, 0], 10)).all()


def test_horizon_longer_than_the_test_split_is_a_clear_error():
    with pytest.raises(ValueError, match=r"pred_len 30 is too long: the (val|test) split has"):
        LongHorizonSplits(ramp_frame(100), seq_len=8, pred_len=30, split="ratio")
    with pytest.raises(ValueError, match=r"positive"):
        LongHorizonSplits(ramp_frame(100), seq_len=0, pred_len=4)


def test_univariate_column_and_bad_columns():
    splits = LongHorizonSplits(ramp_frame(100, 3), seq_len=4, pred_len=2, columns=["c2"], scale=False)
    assert splits.channels == ["c2"] and splits.data["train"][0, 0] == 2000
    with pytest.raises(ValueError, match=r"\['OT'\] not in the frame; its channels are \['c0', 'c1'\]"):
        LongHorizonSplits(ramp_frame(100), columns=["OT"], seq_len=4, pred_len=2)


def test_irregular_csv_is_rejected_unless_freq_is_given():
    frame = ramp_frame(100).drop(index=[50, 51])
    with pytest.raises(ValueError, match=r"series 'c0' has irregular timestamps: 2024-01-03 01:00:00 is followed by"):
        LongHorizonSplits(frame, seq_len=4, pred_len=2)
    splits = LongHorizonSplits(frame, seq_len=4, pred_len=2, freq="h", scale=False)
    assert splits.freq == "h" and sum(len(d) for d in splits.data.values()) == 100 + 4 + 4  # gap rows reinserted
    assert np.isnan(splits.data["train"][50:52]).all() and splits.data["train"][52, 0] == 52
    shuffled = ramp_frame(20).sample(frac=1.0, random_state=0)[["date", "c1", "c0"]]
    ordered = LongHorizonSplits(shuffled, seq_len=2, pred_len=1, scale=False)
    assert ordered.channels == ["c1", "c0"] and ordered.data["train"][:3, 1].tolist() == [0, 1, 2]


def test_window_dataset_without_room_for_one_window():
    with pytest.raises(ValueError, match=r"10 rows hold no window"):
        WindowDataset(np.zeros((10, 1)), 8, 4)


def test_evaluate_windows_averages_over_windows_steps_channels():
    true = np.zeros((3, 2, 2))
    pred = np.zeros((3, 2, 2))
    pred[0, 0, 0], pred[2, 1, 1] = 2.0, -1.0
    out = evaluate_windows(pred, true)
    assert out["mse"] == pytest.approx((4 + 1) / 12) and out["mae"] == pytest.approx((2 + 1) / 12)
    true[1, 1, 0] = np.nan  # a missing target is left out of the mean
    assert evaluate_windows(pred, true)["mae"] == pytest.approx(3 / 11)
    with pytest.raises(ValueError, match=r"same shape"):
        evaluate_windows(pred[:2], true)


def test_datamodule_on_a_csv(tmp_path):
    path = tmp_path / "series.csv"
    ramp_frame(300, 2).to_csv(path, index=False)
    dm = LongHorizonDataModule(path=str(path), seq_len=12, pred_len=6, batch_size=8, seed=1)
    dm.setup("fit")
    assert dm.split_rule == "ratio" and dm.n_channels == 2
    train = dm.train_dataloader()
    x, y = next(iter(train))
    assert x.shape == (8, 12, 2) and y.shape == (8, 6, 2)
    torch.testing.assert_close(x[:, -1, 0] + 0, y[:, 0, 0] - 1 / dm.splits.stats.std[0], check_dtype=False)
    test = dm.test_dataloader()
    assert sum(len(b[0]) for b in test) == len(dm.splits.windows("test")) == 60 + 12 - 12 - 6 + 1
    first_x, _ = next(iter(test))
    np.testing.assert_array_equal(first_x[0].numpy(), dm.splits.windows("test")[0][0].numpy())  # in order
    orders = [next(iter(dm.train_dataloader()))[0][:, -1, 0] for _ in range(2)]
    torch.testing.assert_close(orders[0], orders[1])  # seeded: the same order each time


def test_datamodule_arguments():
    with pytest.raises(ValueError, match=r"give exactly one"):
        LongHorizonDataModule()
    with pytest.raises(FileNotFoundError, match=r"data.path: /no/such.csv"):
        LongHorizonDataModule(path="/no/such.csv")
    with pytest.raises(KeyError, match=r"unknown forecasting dataset 'etth9'"):
        LongHorizonDataModule(dataset="etth9")
    assert LongHorizonDataModule(dataset="etth1").split_rule == "ett-hourly"
    assert LongHorizonDataModule(dataset="household-power").split_rule == "ratio"


@pytest.mark.data
def test_etth1_sizes_and_published_window_counts():
    frame = load_dataset("etth1")
    assert frame.shape == (17_420, 8)
    splits = LongHorizonSplits(frame, seq_len=96, pred_len=96, split="ett-hourly")
    assert {s: len(d) for s, d in splits.data.items()} == {"train": 8_640, "val": 2_976, "test": 2_976}
    counts = {s: len(splits.windows(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 8_449, "val": 2_785, "test": 2_785}
    assert [len(LongHorizonSplits(frame, 96, h, split="ett-hourly").windows("test")) for h in (192, 336, 720)] == [
        2_689, 2_545, 2_161,
    ]  # fmt: skip
    assert splits.dates["test"][96] == pd.Timestamp("2017-10-24 00:00")  # the border: 480 days after 2016-07-01
    ot = frame["OT"].to_numpy()[:8_640]
    assert splits.stats.mean[-1] == pytest.approx(ot.mean()) and splits.stats.std[-1] == pytest.approx(ot.std())


@pytest.mark.data
def test_etth1_datamodule_serves_every_test_window():
    dm = LongHorizonDataModule(dataset="etth1", seq_len=96, pred_len=96, batch_size=32, eval_batch_size=256)
    dm.setup("test")
    assert dm.n_channels == 7 and dm.split_rule == "ett-hourly"
    assert sum(len(x) for x, _ in dm.test_dataloader()) == 2_785


@pytest.mark.data
def test_household_power_ratio_split():
    splits = LongHorizonSplits(load_dataset("household-power"), seq_len=96, pred_len=96, split="ratio")
    # 34,589 hours: int(0.7 n) = 24,212 train, int(0.2 n) = 6,917 test, 3,460 val
    assert [len(splits.data[s]) for s in ("train", "val", "test")] == [24_212, 3_460 + 96, 6_917 + 96]
    assert len(splits.windows("test")) == 6_822
    assert np.isnan(splits.data["train"]).any()  # missing hours stay masked after scaling


@pytest.mark.data
@pytest.mark.parametrize("pred_len, published", [(96, (1.295, 0.713)), (192, (1.325, 0.733))])
def test_etth1_repeat_baseline_matches_the_published_row(pred_len, published):
    # The "Repeat" row of Zeng et al. 2023 (LTSF-Linear, Table 2): forecast the last input value. It was computed by
    # an independent implementation of the same protocol (whose test loader drops the last partial batch of 32:
    # 2,784 instead of 2,785 windows at H=96, hence the 1e-3 tolerance).
    test = LongHorizonSplits(load_dataset("etth1"), 96, pred_len, split="ett-hourly").windows("test")
    repeat = np.repeat(test.x[:, -1:, :], pred_len, axis=1)
    scores = evaluate_windows(repeat, test.y)
    assert (scores["mse"], scores["mae"]) == pytest.approx(published, abs=1e-3)
