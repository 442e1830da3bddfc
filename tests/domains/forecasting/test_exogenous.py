"""Exogenous inputs: a known future signal and a static level are learned, historical / future / static columns
flow through fit, predict, cross-validation and save/load in both channel modes, every bad input gives one clear
error, and a model without exogenous inputs keeps the modules and state-dict keys of one built without them."""

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.forecasting.exogenous import ExogenousScaler, ExogenousWindows
from zoo.domains.forecasting.forecaster import Forecaster
from zoo.domains.forecasting.model import PatchForecaster
from zoo.domains.forecasting.task import ForecastingTask
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


def promo_frame(n_series=3, length=80, seed=0) -> pd.DataFrame:
    """``y = 3 promo + noise`` (promo random 0/1, known ahead), a historical ``temp`` and an unused column."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(n_series):
        promo = rng.integers(0, 2, length).astype(float)
        temp = rng.standard_normal(length)
        y = 3.0 * promo + 0.2 * rng.standard_normal(length) + k
        ds = pd.date_range("2024-01-01", periods=length, freq="h")
        parts.append(pd.DataFrame({"unique_id": f"s{k}", "ds": ds, "y": y, "promo": promo, "temp": temp,
                                   "note": "x"}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def static_frame(ids=("s0", "s1", "s2")) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": list(ids), "region": np.arange(len(ids), dtype=float), "size": 1.0})


def forecaster(**kwargs) -> Forecaster:
    settings = dict(h=H, model=TINY, input_size=L, max_steps=4, batch_size=16, patch_len=8, stride=4, dropout=0.0)
    settings.update(kwargs)
    return Forecaster(**settings)


def future(model: Forecaster, df: pd.DataFrame, h: int = H, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """``make_future_dataframe`` filled with the future exogenous values of ``df`` (the full frame)."""
    rows = model.make_future_dataframe(history, h=h)
    return rows.merge(df[["unique_id", "ds", "promo"]], on=["unique_id", "ds"], how="left")


def split(df: pd.DataFrame, cut: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ``cut`` rows of each series, and the rest."""
    position = df.groupby("unique_id").cumcount()
    return df[position < cut], df[position >= cut]


def test_a_known_future_signal_is_learned():
    df = promo_frame(n_series=4, length=96)
    settings = dict(max_steps=150, lr=2e-2, batch_size=32, seed=1)
    errors = {}
    for name, exog in (("with", ["promo"]), ("without", None)):
        cv = forecaster(futr_exog_list=exog, **settings).cross_validation(df, n_windows=6, step_size=H)
        errors[name] = float(((cv["y"] - cv["PatchForecaster"]) ** 2).mean())
    # without promo the best forecast is the level (error ~ 9/4 = 2.25); with it, close to the noise (0.04)
    assert errors["without"] > 1.0
    assert errors["with"] < min(0.2, 0.1 * errors["without"]), errors


def test_a_static_level_is_learned_where_the_look_back_is_missing():
    """Cold start: with no observed look-back, only the static feature tells each series' level."""
    generator = torch.Generator().manual_seed(0)
    level = torch.randn(128, 1, 1, generator=generator)  # [B, C, Fs]; the last 32 are held out
    x = torch.full((128, L, 1), float("nan"))
    y = 2.0 * level.expand(128, H, 1)
    train, test = slice(0, 96), slice(96, None)
    errors = {}
    for name, count in (("with", 1), ("without", 0)):
        torch.manual_seed(0)
        model = PatchForecaster(TINY, L, H, 1, patch_len=8, stride=4, dropout=0.0, static_exog=count)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        static = level if count else None
        for _ in range(150):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[train], static=static[train] if count else None), y[train])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            forecast = model.eval()(x[test], static=static[test] if count else None)
        errors[name] = float(torch.nn.functional.mse_loss(forecast, y[test]))
    assert errors["without"] > 2.0  # about the variance of 2 * level: nothing to learn it from
    assert errors["with"] < 0.05 * errors["without"], errors


def test_static_rows_reach_the_forecasts_and_new_series_need_them():
    df = promo_frame()
    model = forecaster(stat_exog_list=["region", "size"], seed=3).fit(df, static_df=static_frame())
    base = model.predict()
    moved = static_frame().assign(region=[0.0, 1.0, 9.0])
    changed = model.predict(static_df=moved)
    assert np.allclose(changed["PatchForecaster"][:8], base["PatchForecaster"][:8])  # s0, s1 untouched
    assert not np.allclose(changed["PatchForecaster"][8:], base["PatchForecaster"][8:])
    assert model.scalers["static"].mean.tolist() == [1.0, 1.0] and model.scalers["static"].std[1] == 1.0
    new = df[df["unique_id"] == "s0"].assign(unique_id="new")
    with pytest.raises(ValueError, match=r"needs static_df with a row for series 'new'"):
        model.predict(new)
    out = model.predict(new, static_df=static_frame(["new"]))
    assert out["unique_id"].tolist() == ["new"] * H


@pytest.mark.parametrize("mode", ["independent", "mixing"])
def test_exogenous_flow_through_fit_predict_cv_and_save_load(tmp_path, mode):
    df = promo_frame()
    model = forecaster(futr_exog_list=["promo"], hist_exog_list=["temp"], stat_exog_list=["region"],
                       channel_mode=mode, quantiles=(0.1, 0.9))  # fmt: skip
    history, _ = split(df, 70)
    model.fit(history, static_df=static_frame())
    keys = model.task.model.state_dict()
    assert keys["futr_exog_proj.weight"].shape == (H * 3, H) and keys["static_exog_proj.weight"].shape == (16, 1)
    assert model.task.model.embedding.proj.in_features == (4 if mode == "independent" else 4 * L // 8) * 8
    futr_df = future(model, df)
    out = model.predict(futr_df=futr_df)
    assert out["ds"].tolist()[:H] == list(pd.date_range("2024-01-03 22:00", periods=H, freq="h"))
    assert list(out.columns) == ["unique_id", "ds", "PatchForecaster", "PatchForecaster-lo-80", "PatchForecaster-hi-80"]
    # the historical column is read: other look-back values give other forecasts
    hot = history.assign(temp=history["temp"] + 3.0)
    assert not np.allclose(model.predict(hot, futr_df=futr_df)["PatchForecaster"], out["PatchForecaster"])
    # and so is the future one: at 0 the forecasts move
    assert not np.allclose(model.predict(futr_df=futr_df.assign(promo=0.0))["PatchForecaster"], out["PatchForecaster"])
    # shorter horizons take only their own future rows
    assert len(model.predict(futr_df=future(model, df, h=2), h=2)) == 3 * 2

    loaded = Forecaster.load(model.save(tmp_path / mode))
    pd.testing.assert_frame_equal(loaded.predict(futr_df=futr_df), out)
    pd.testing.assert_frame_equal(loaded.predict(hot, futr_df=futr_df), model.predict(hot, futr_df=futr_df))
    assert loaded.scalers["hist"].to_json() == model.scalers["hist"].to_json()

    cv = model.cross_validation(df, static_df=static_frame(), n_windows=2, step_size=3)
    assert len(cv) == 3 * 2 * H and cv["cutoff"].nunique() == 2 and cv["y"].notna().all()
    # cross-validation forecasts from the frame's own future rows: the last window equals predict() on its history
    head, _ = split(df, 80 - H)
    last = cv[cv["cutoff"] == cv["cutoff"].max()].drop(columns=["cutoff", "y"]).reset_index(drop=True)
    again = model.predict(head, futr_df=future(model, df, history=head))
    pd.testing.assert_frame_equal(last, again, check_dtype=False)


def test_exogenous_scaling_uses_training_rows_and_fills_only_masked_rows():
    df = promo_frame()
    model = forecaster(futr_exog_list=["promo"], hist_exog_list=["temp"], val_size=H).fit(df)
    train = df[df.groupby("unique_id").cumcount() < 80 - H]
    np.testing.assert_allclose(model.scalers["hist"].mean, [train["temp"].mean()])
    np.testing.assert_allclose(model.scalers["futr"].std, [train["promo"].std(ddof=0)])
    # a gap (absent stamps, freq given) is masked: its NaN target and NaN exogenous values are allowed
    gappy = df.drop(index=[10, 11])
    fitted = forecaster(futr_exog_list=["promo"], freq="h").fit(gappy)
    assert np.isfinite(fitted.predict(futr_df=future(fitted, promo_frame(length=80 + H)))["PatchForecaster"]).all()
    scaler = ExogenousScaler(["a"]).fit([np.array([[1.0], [np.nan], [3.0]])])
    np.testing.assert_allclose(scaler.transform(np.array([[1.0], [np.nan]])), [[-1.0], [0.0]])


def test_every_bad_exogenous_input_gives_one_clear_error():
    df = promo_frame()
    model = forecaster(futr_exog_list=["promo"], stat_exog_list=["region"]).fit(df, static_df=static_frame())
    futr_df = future(model, promo_frame(length=80 + H))
    with pytest.raises(ValueError, match=r"predict needs futr_df with unique_id, ds and \['promo'\] at the next h=4"):
        model.predict()
    with pytest.raises(ValueError, match=r"futr_df lacks 1 row\(s\) .* series 's1' at 2024-01-04 .*get_missing_fut"):
        model.predict(futr_df=futr_df.drop(index=5))
    assert model.get_missing_future(futr_df.drop(index=5)).values.tolist() == [futr_df.iloc[5, :2].tolist()]
    with pytest.raises(ValueError, match=r"futr_df lacks 4 row\(s\) .* series 's2'"):
        model.predict(futr_df=futr_df[futr_df["unique_id"] != "s2"])
    extra = pd.concat([futr_df, futr_df.iloc[:1].assign(unique_id="s9")])
    with pytest.raises(ValueError, match=r"futr_df has extra 1 row\(s\) .* series 's9'"):
        model.predict(futr_df=extra)
    late = futr_df.assign(ds=futr_df["ds"] + pd.Timedelta("1h"))
    with pytest.raises(ValueError, match=r"futr_df lacks 3 row\(s\)"):
        model.predict(futr_df=late)
    with pytest.raises(ValueError, match=r"'promo' is NaN in series 's0' at 2024-01-04 08:00"):
        model.predict(futr_df=futr_df.assign(promo=np.where(futr_df.index == 0, np.nan, futr_df["promo"])))
    with pytest.raises(ValueError, match=r"futr_df lacks column\(s\) \['promo'\]"):
        model.predict(futr_df=futr_df.drop(columns="promo"))
    with pytest.raises(ValueError, match=r"static_df has no row for series 's2'"):
        forecaster(stat_exog_list=["region"]).fit(df, static_df=static_frame(["s0", "s1"]))
    with pytest.raises(ValueError, match=r"static_df lacks the static column\(s\) \['zone'\]"):
        forecaster(stat_exog_list=["zone"]).fit(df, static_df=static_frame())
    with pytest.raises(ValueError, match=r"stat_exog_list=\['region'\] needs static_df with a row for each series"):
        forecaster(stat_exog_list=["region"]).fit(df)
    with pytest.raises(ValueError, match=r"exogenous column\(s\) \['price'\] are not in the frame"):
        forecaster(hist_exog_list=["price"]).fit(df)
    with pytest.raises(ValueError, match=r"exogenous column 'temp' is NaN in series 's0'"):
        forecaster(hist_exog_list=["temp"]).fit(df.assign(temp=np.where(df.index == 3, np.nan, df["temp"])))
    with pytest.raises(ValueError, match=r"'promo' is named more than once"):
        forecaster(futr_exog_list=["promo"], hist_exog_list=["promo"])
    with pytest.raises(ValueError, match=r"pass futr_exog_list / hist_exog_list / stat_exog_list instead"):
        forecaster(hist_exog=2)
    with pytest.raises(ValueError, match=r"futr_df given but this Forecaster has no futr_exog_list"):
        forecaster(max_steps=1).fit(df).predict(futr_df=futr_df)


def test_the_model_checks_exogenous_shapes_and_values():
    model = PatchForecaster(TINY, L, H, 2, patch_len=8, stride=4, hist_exog=1, futr_exog=2, static_exog=1)
    x, hist, static = torch.randn(3, L, 2), torch.randn(3, L, 2, 1), torch.ones(3, 2, 1)
    futr = torch.randn(3, L + H, 2, 2)
    assert model(x, hist, futr, static).shape == (3, H, 2)
    with pytest.raises(ValueError, match=r"built with futr_exog=2: pass futr \[B, L \+ H, C, Ff\] = \[3, 20, 2, 2\]"):
        model(x, hist, None, static)
    with pytest.raises(ValueError, match=r"futr must have shape \[B, L \+ H, C, Ff\] = \[3, 20, 2, 2\], got \[3, 16"):
        model(x, hist, futr[:, :L], static)
    with pytest.raises(ValueError, match=r"hist has 1 NaN or infinite values"):
        model(x, torch.where(hist == hist[0, 0, 0, 0], float("nan"), hist), futr, static)
    plain = PatchForecaster(TINY, L, H, 2, patch_len=8, stride=4)
    with pytest.raises(ValueError, match=r"static given but this model was built with static_exog=0"):
        plain(x, static=static)
    assert plain(x, torch.zeros(3, L, 2, 0)).shape == (3, H, 2)  # an empty placeholder is no input


@pytest.mark.parametrize("mode", ["independent", "mixing"])
def test_a_future_effect_does_not_scale_with_the_look_back_spread(mode):
    """The horizon's exogenous effect is added after RevIN: a flat and a volatile look-back get the same effect."""
    torch.manual_seed(0)
    model = PatchForecaster(TINY, L, H, 2, patch_len=8, stride=4, channel_mode=mode, futr_exog=1).eval()
    with torch.no_grad():
        model.futr_exog_proj.weight.copy_(torch.eye(H))  # the effect at step t is the exogenous value at step t
    x = torch.randn(2, L, 2) * torch.tensor([0.01, 10.0])  # a flat channel and a volatile one
    futr = torch.zeros(2, L + H, 2, 1)
    promo = futr.clone()
    promo[:, L:] = 3.0
    effect = model(x, futr=promo) - model(x, futr=futr)
    torch.testing.assert_close(effect, torch.full((2, H, 2), 3.0))


@pytest.mark.parametrize("mode", ["independent", "mixing"])
def test_without_exogenous_the_model_is_the_one_built_without_them(mode):
    settings = dict(patch_len=8, stride=4, channel_mode=mode, head="quantile")
    torch.manual_seed(0)
    plain = PatchForecaster(TINY, L, H, 2, **settings)
    torch.manual_seed(0)
    zeros = PatchForecaster(TINY, L, H, 2, hist_exog=0, futr_exog=0, static_exog=0, **settings)
    assert not [key for key in plain.state_dict() if "exog" in key]
    assert list(zeros.state_dict()) == list(plain.state_dict())
    assert all(torch.equal(value, zeros.state_dict()[key]) for key, value in plain.state_dict().items())
    torch.manual_seed(0)
    full = PatchForecaster(TINY, L, H, 2, hist_exog=1, futr_exog=1, static_exog=1, **settings)
    added = [key for key in full.state_dict() if key not in plain.state_dict()]
    assert added == ["static_exog_proj.weight", "static_exog_proj.bias", "futr_exog_proj.weight", "futr_exog_proj.bias"]
    # the new modules come last: every earlier parameter drew the same random numbers
    assert torch.equal(full.state_dict()["backbone.backbone.layers.0.norm.weight"],
                       plain.state_dict()["backbone.backbone.layers.0.norm.weight"])  # fmt: skip


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_task_trains_on_dict_and_tuple_batches():
    task = ForecastingTask(config=TINY, seq_len=L, pred_len=H, num_channels=1, patch_len=8, stride=4, futr_exog=1,
                           static_exog=1)  # fmt: skip
    values = np.random.default_rng(0).standard_normal((40, 1))
    windows = ExogenousWindows(values, np.zeros((40, 1, 0)), np.ones((40, 1, 1)), np.ones((1, 1)), L, H)
    item = windows[0]
    assert item["futr"].shape == (L + H, 1, 1) and item["hist"].shape == (L, 1, 0) and len(windows) == 40 - L - H + 1
    batch = torch.utils.data.default_collate([windows[i] for i in range(4)])
    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.requires_grad
    as_tuple = (batch["x"], batch["y"], batch["hist"], batch["futr"], batch["static"])
    task.eval()
    assert torch.equal(task.predict_step(as_tuple, 0), task.predict_step(batch, 0))
    with pytest.raises(ValueError, match=r"built with futr_exog=1: pass futr"):
        task.training_step((batch["x"], batch["y"]), 0)
    with pytest.raises(ValueError, match=r"batch dict has keys x, y and optionally"):
        task.training_step({**batch, "extra": batch["x"]}, 0)
