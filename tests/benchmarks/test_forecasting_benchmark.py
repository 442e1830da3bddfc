"""benchmarks/forecasting.py on a small synthetic wide CSV: the peers' frame and window alignment, the same-hour
baseline, one of our recipes end to end (shortened), the resumable rows and the rendered table. neuralforecast
and statsforecast are made unimportable (they are not in the test extra): their rows are errors, rendered as such."""

import sys

import numpy as np
import pandas as pd
import pytest

from zoo.domains.forecasting.protocol import LongHorizonSplits


@pytest.fixture
def bench(load_benchmark):
    return load_benchmark("forecasting")


def _wide(path, rows=1000, missing=()):
    """Two hourly series with a daily cycle; ``missing`` rows are NaN."""
    t = np.arange(rows)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2023-01-01", periods=rows, freq="h")})
    frame["a"] = np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=rows)
    frame["b"] = 5 + 2 * np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=rows)
    frame.loc[list(missing), "a"] = np.nan
    frame.to_csv(path, index=False)
    return frame


def _splits(frame, horizon=24):
    return LongHorizonSplits(frame, seq_len=96, pred_len=horizon, split="ratio")


def test_long_frame_holds_train_val_and_test_rows_once(bench, tmp_path):
    frame = _wide(tmp_path / "s.csv", missing=[10, 900])
    splits = _splits(frame)
    long = bench.long_frame(splits)
    assert len(long) == 2 * 1000 and long["unique_id"].unique().tolist() == ["a", "b"]
    a = long[long["unique_id"] == "a"]
    np.testing.assert_allclose(a["y"].to_numpy(), (frame["a"] - splits.stats.mean[0]) / splits.stats.std[0])
    masked = bench.long_frame(splits, missing="mask")
    assert masked["available_mask"].sum() == 2000 - 2 and not masked["y"].isna().any()
    filled = bench.long_frame(splits, missing="interpolate")
    assert not filled["y"].isna().any() and np.isclose(filled["y"].iloc[10], (a["y"].iloc[9] + a["y"].iloc[11]) / 2)


def test_windows_array_reorders_a_peer_frame_and_checks_its_targets(bench, tmp_path):
    splits = _splits(_wide(tmp_path / "s.csv"))
    targets = splits.windows("test").y  # [N, H, C]
    n, h, c = targets.shape
    long = bench.long_frame(splits)
    rows = []
    for ci, name in enumerate(splits.channels):
        series = long[long["unique_id"] == name].reset_index(drop=True)
        first = len(series) - (n - 1) - h
        for w in range(n):
            part = series.iloc[first + w : first + w + h]
            rows.append(pd.DataFrame({"unique_id": name, "ds": part["ds"], "cutoff": series["ds"][first + w - 1],
                                      "y": part["y"], "model": part["y"] + ci}))  # fmt: skip
    cv = pd.concat(rows).sample(frac=1.0, random_state=0)  # the peer's row order is not ours
    pred = bench.windows_array(cv, "model", splits, h)
    np.testing.assert_allclose(pred, targets + np.arange(c), atol=1e-6)
    cv["y"] += 1.0
    with pytest.raises(RuntimeError, match="targets differ from the protocol's test windows"):
        bench.windows_array(cv, "model", splits, h)
    with pytest.raises(RuntimeError, match="forecast rows, expected"):
        bench.windows_array(cv.iloc[1:], "model", splits, h)


def test_same_hour_baseline_averages_the_same_hour_of_the_previous_days(bench, tmp_path):
    splits = _splits(_wide(tmp_path / "s.csv"))
    row = bench.run_same_hour(24, splits, days=7)
    series = bench.long_frame(splits)["y"].to_numpy().reshape(2, -1).T
    test_start = splits.borders["test"][0] + 96
    first = np.mean([series[test_start - 24 * k] for k in range(1, 8)], axis=0)  # step 0 of window 0
    pred = np.empty_like(splits.windows("test").y)
    for w in range(len(pred)):
        for s in range(24):
            pred[w, s] = np.mean([series[test_start + w + s - 24 * k] for k in range(1, 8)], axis=0)
    np.testing.assert_allclose(pred[0, 0], first)
    expected = np.mean((pred - splits.windows("test").y) ** 2)
    assert row["mse"] == pytest.approx(expected, rel=1e-9) and row["mse"] < 0.1  # a daily cycle is easy


def test_a_run_resumes_and_renders_our_rows_and_the_peers_errors(bench, tmp_path, monkeypatch):
    csv = tmp_path / "two.csv"
    _wide(csv)
    monkeypatch.chdir(tmp_path)
    for peer in ("neuralforecast", "statsforecast"):  # absent, as in the test extra (None in sys.modules: ImportError)
        monkeypatch.setitem(sys.modules, peer, None)
    out, results = tmp_path / "runs.csv", tmp_path / "RESULTS.md"
    argv = ["--data", str(csv), "--horizons", "96", "--families", "attn-ts-small", "--steps", "2",
            "--peers", "PatchTST", "--stats", "SeasonalNaive", "--out", str(out), "--write", str(results)]  # fmt: skip
    bench.main(argv)
    frame = pd.read_csv(out)
    ours = frame[frame["model"] == "attn-ts-small"].iloc[0]
    assert ours["status"] == "ok" and ours["steps"] == 2 and ours["windows"] == 200 - 96 + 1
    assert 0 < ours["mse"] < 10 and ours["fit_seconds"] > 0
    baseline = frame[frame["model"] == "same-hour-7d"].iloc[0]
    assert baseline["status"] == "ok"
    for peer in ("PatchTST", "SeasonalNaive"):  # not installed here: an error row naming the fix
        assert frame.loc[frame["model"] == peer, "status"].iloc[0].startswith("error")
    section = results.read_text()
    assert "<!-- forecasting-two:start -->" in section and "| attn-ts-small | ours |" in section
    assert "PatchTST H=96: error" in section and "(published)" not in section  # ETTh1 rows only for ETTh1
    bench.main(argv)  # resumes: our ok rows are kept, not recomputed (the error rows are retried)
    again = pd.read_csv(out)
    assert len(again) == len(frame)
    assert again.loc[again["model"] == "attn-ts-small", "fit_seconds"].iloc[0] == ours["fit_seconds"]
