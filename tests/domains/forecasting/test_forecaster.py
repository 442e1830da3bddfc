"""Forecaster: pandas in, pandas out — fit/predict stamps and columns, quantile naming and order, both channel
modes, cross-validation cutoffs, save/load, and an actionable error for every kind of bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.forecasting.forecaster import Forecaster, quantile_columns
from zoo.layers.attention import AttentionConfig
from zoo.model import ModelConfig

H, L = 4, 16
TINY = ModelConfig(
    vocab=None,
    max_seq_len=32,
    backbone=BackboneConfig(
        d_model=16, pattern="A", mixers=MixerConfigs(attention=AttentionConfig(num_heads=2, causal=False, rotary=False))
    ),
)


# tiny matrices: one intra-op thread (the one_thread fixture of tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def sines(lengths=(60, 48, 40), starts=(0, 5, 9), freq="h", seed=0) -> pd.DataFrame:
    """Noisy sines, one per series, of different lengths and starts (in steps of ``freq``), levels 0, 10, 20."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, (n, start) in enumerate(zip(lengths, starts, strict=True)):
        t = np.arange(n)
        if freq is None:
            ds = start + t
        else:
            ds = pd.date_range("2024-01-01", periods=n + start, freq=freq)[start:]
        y = 10.0 * k + np.sin(2 * np.pi * t / (6 + 2 * k)) + 0.1 * rng.standard_normal(n)
        parts.append(pd.DataFrame({"unique_id": f"s{k}", "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


def forecaster(**kwargs) -> Forecaster:
    settings = dict(h=H, model=TINY, input_size=L, max_steps=6, batch_size=8, patch_len=8, stride=4, dropout=0.0)
    settings.update(kwargs)
    return Forecaster(**settings)


@pytest.fixture(scope="module")
def fitted() -> tuple[Forecaster, pd.DataFrame]:
    df = sines()
    return forecaster(alias="m").fit(df), df


def test_predict_continues_each_series_from_its_own_last_stamp(fitted):
    model, df = fitted
    out = model.predict()
    assert list(out.columns) == ["unique_id", "ds", "m"]
    assert list(out["unique_id"]) == [s for s in ("s0", "s1", "s2") for _ in range(H)]
    for key, part in out.groupby("unique_id"):
        last = df.loc[df["unique_id"] == key, "ds"].max()
        assert list(part["ds"]) == list(pd.date_range(last, periods=H + 1, freq="h")[1:])
    assert out["ds"].dtype == df["ds"].dtype
    assert np.isfinite(out["m"]).all()
    # forecasts come back on each series' own scale (levels 0, 10, 20; amplitude 1)
    levels = out.groupby("unique_id")["m"].mean().to_numpy()
    np.testing.assert_allclose(levels, [0.0, 10.0, 20.0], atol=3.0)
    shorter = model.predict(h=2)
    assert len(shorter) == 3 * 2
    pd.testing.assert_frame_equal(shorter, out.groupby("unique_id").head(2).reset_index(drop=True))


def test_predict_from_new_history_and_a_new_series(fitted):
    model, df = fitted
    history = df[df["unique_id"] == "s1"].iloc[:30]
    new = history.assign(unique_id="fresh", y=history["y"] + 100.0)
    out = model.predict(pd.concat([history, new]))
    assert list(pd.unique(out["unique_id"])) == ["fresh", "s1"]
    assert (out.groupby("unique_id")["ds"].min() == history["ds"].iloc[-1] + pd.Timedelta(hours=1)).all()
    fresh = out.loc[out["unique_id"] == "fresh", "m"].to_numpy()
    known = out.loc[out["unique_id"] == "s1", "m"].to_numpy()
    # independent mode is one global model: a shifted copy is scaled by its own history and forecast shifted
    np.testing.assert_allclose(fresh - known, 100.0, atol=1e-3)


def test_quantile_columns_follow_neuralforecast_and_are_monotone():
    assert quantile_columns("m", (0.1, 0.25, 0.5, 0.75, 0.9)) == ["m-lo-80", "m-lo-50", "m", "m-hi-50", "m-hi-80"]
    assert quantile_columns("m", (0.025, 0.975)) == ["m-lo-95", "m-hi-95"]
    model = forecaster(alias="q", quantiles=(0.9, 0.1, 0.25, 0.75)).fit(sines())  # unordered, no median given
    assert model.loss == "pinball" and model.quantiles == (0.1, 0.25, 0.5, 0.75, 0.9)
    out = model.predict()
    assert list(out.columns) == ["unique_id", "ds", "q", "q-lo-80", "q-lo-50", "q-hi-50", "q-hi-80"]
    ordered = out[["q-lo-80", "q-lo-50", "q", "q-hi-50", "q-hi-80"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all(), "quantile columns never cross"


def test_mixing_mode_reads_the_series_as_channels_on_integer_steps():
    df = sines(lengths=(40, 40, 40), starts=(0, 0, 0), freq=None)
    model = forecaster(channel_mode="mixing").fit(df)
    assert model.task.model.num_channels == 3
    out = model.predict()
    assert list(out["ds"]) == list(range(40, 40 + H)) * 3
    with pytest.raises(ValueError, match=r"channel_mode='mixing' needs every series on the same timestamps.*'s1'"):
        forecaster(channel_mode="mixing").fit(sines(lengths=(40, 40, 40), starts=(0, 1, 0), freq=None))
    with pytest.raises(ValueError, match=r"forecasts the series .* together, as its channels; the frame lacks"):
        model.predict(df[df["unique_id"] != "s2"])


def test_missing_values_are_masked_and_gaps_need_freq():
    df = sines()
    df.loc[[5, 6, 50], "y"] = np.nan
    gappy = df.drop(index=[20, 21])  # two stamps missing from s0
    with pytest.raises(ValueError, match=r"series 's0' has irregular timestamps.*pass freq="):
        forecaster().fit(gappy)
    out = forecaster(freq="h").fit(gappy).predict()
    assert np.isfinite(out.iloc[:, 2]).all(), "NaN inputs are masked, not propagated"


def test_cross_validation_cutoffs_rows_and_truth(fitted):
    _, df = fitted
    model = forecaster(alias="m")
    cv = model.cross_validation(df, n_windows=3, step_size=2)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "m"]
    assert len(cv) == 3 * 3 * H
    for key, part in cv.groupby("unique_id"):
        stamps = df.loc[df["unique_id"] == key, "ds"].reset_index(drop=True)
        n = len(stamps)
        # last window ends at the series' last stamp; the windows start 2 steps apart
        expected = [stamps[n - H - 1 - 2 * (2 - w)] for w in range(3)]
        assert sorted(part["cutoff"].unique()) == expected
        for cutoff, window in part.groupby("cutoff"):
            assert list(window["ds"]) == list(pd.date_range(cutoff, periods=H + 1, freq="h")[1:])
    truth = cv.merge(df, on=["unique_id", "ds"], suffixes=("", "_true"))
    np.testing.assert_array_equal(truth["y"], truth["y_true"])
    # refit=False trains once, on each series up to its first cutoff
    assert model.ids == ["s0", "s1", "s2"]
    np.testing.assert_allclose(model.mean[0], df["y"][: 60 - H - 4].mean())
    refit = forecaster(alias="m", max_steps=2).cross_validation(df, n_windows=2, refit=True)
    assert len(refit) == 3 * 2 * H and refit.groupby("unique_id")["cutoff"].nunique().eq(2).all()


def test_validation_keeps_the_best_weights_and_stops_early():
    model = forecaster(lr=0.0, max_steps=50, val_size=H, val_check_steps=2, early_stopping=1).fit(sines())
    # with lr 0 the validation loss never improves: the second check stops training
    assert model.steps_trained == 4 and model.best_val_loss is not None and np.isfinite(model.best_val_loss)
    # statistics come from the training rows only (the last val_size stamps of each series are held out)
    df = sines()
    np.testing.assert_allclose(model.mean[0], df["y"][: 60 - H].mean())


def test_save_and_load_round_trip(tmp_path, fitted):
    model, df = fitted
    folder = model.save(tmp_path / "fc")
    assert sorted(p.name for p in folder.iterdir()) == ["context.safetensors", "forecaster.json", "model.safetensors"]
    settings = json.loads((folder / "forecaster.json").read_text())
    assert settings["ids"] == ["s0", "s1", "s2"] and settings["freq"] == "h" and len(settings["mean"]) == 3
    loaded = Forecaster.load(folder)
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    pd.testing.assert_frame_equal(loaded.predict(df.iloc[:50]), model.predict(df.iloc[:50]))
    integer = forecaster(quantiles=(0.1, 0.9)).fit(sines(freq=None))
    again = Forecaster.load(integer.save(tmp_path / "int"))
    pd.testing.assert_frame_equal(again.predict(), integer.predict())
    with pytest.raises(FileNotFoundError, match=r"forecaster\.json"):
        Forecaster.load(tmp_path / "nothing")


def test_bad_input_gives_one_clear_error(fitted):
    model, df = fitted
    with pytest.raises(RuntimeError, match="not fitted yet"):
        forecaster().predict()
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['y'\]"):
        forecaster().fit(df.rename(columns={"y": "value"}))
    dup = pd.concat([df, df.iloc[[3]]])
    with pytest.raises(ValueError, match=r"duplicate timestamp .* in series 's0'"):
        forecaster().fit(dup)
    empty = df.assign(y=np.where(df["unique_id"] == "s2", np.nan, df["y"]))
    with pytest.raises(ValueError, match=r"series 's2' has no observed 'y' \(all NaN\)"):
        forecaster().fit(empty)
    with pytest.raises(ValueError, match=r"series 's2' has 40 timestamps, the horizon h=40 needs at least 41"):
        forecaster(h=40).fit(df)
    with pytest.raises(ValueError, match="h=8 is longer than the trained horizon h=4"):
        model.predict(h=8)
    with pytest.raises(
        ValueError, match=r"series 's2' has 40 timestamps: n_windows=12 .* leaving 3 to train on, fewer than 5"
    ):
        forecaster().cross_validation(df, n_windows=12, step_size=3)
    with pytest.raises(ValueError, match="val_size=2 is shorter than h=4"):
        forecaster(val_size=2)
    with pytest.raises(ValueError, match=r"exogenous column\(s\) \['price', 'temp'\] are not in the frame"):
        forecaster(futr_exog_list=["price"], hist_exog_list=["temp"]).fit(df)
    static = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "region": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match=r"stat_exog_list is empty: .* stat_exog_list=\['region'\]"):
        forecaster().fit(df, static_df=static)
