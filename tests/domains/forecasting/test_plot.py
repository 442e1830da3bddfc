"""Forecast plots: a valid PNG of the expected pixel size, and clear errors for unusable columns."""

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from zoo.domains.forecasting.plot import plot_forecasts


def frames(ids=("a", "b"), history=48, horizon=12):
    past = pd.date_range("2024-01-01", periods=history, freq="h")
    future = pd.date_range(past[-1] + pd.Timedelta(hours=1), periods=horizon, freq="h")
    history_df = pd.concat(
        [pd.DataFrame({"unique_id": u, "ds": past, "y": np.sin(np.arange(history) / 4) + k}) for k, u in enumerate(ids)]
    )
    point = np.sin(np.arange(history, history + horizon) / 4)
    bands = {"model": 0.0, "model-lo": -0.5, "model-hi": 0.5, "model-lo2": -0.2, "model-hi2": 0.2}
    forecast_df = pd.concat(
        [
            pd.DataFrame({"unique_id": u, "ds": future} | {name: point + k + shift for name, shift in bands.items()})
            for k, u in enumerate(ids)
        ]
    )
    return history_df, forecast_df


def test_png_is_written_with_the_expected_size(tmp_path):
    history_df, forecast_df = frames()
    quantiles = {0.1: "model-lo", 0.9: "model-hi", 0.3: "model-lo2", 0.7: "model-hi2"}
    path = plot_forecasts(history_df, forecast_df, tmp_path / "out" / "f.png", quantiles=quantiles,
                          width=6, height_per_series=2, dpi=50)  # fmt: skip
    assert path == tmp_path / "out" / "f.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    assert pixels.shape[:2] == (2 * 2 * 50, 6 * 50)  # two panels of 2 inches, 6 inches wide
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_one_chosen_series_and_an_explicit_point_column(tmp_path):
    history_df, forecast_df = frames(ids=("a", "b", "c"))
    path = plot_forecasts(history_df, forecast_df, tmp_path / "b.png", unique_ids=["b"], point_col="model",
                          actual_df=history_df, dpi=40)  # fmt: skip
    assert image.imread(path).shape[:2] == (int(2.5 * 40), 10 * 40)


def test_bad_columns_and_series(tmp_path):
    history_df, forecast_df = frames()
    with pytest.raises(ValueError, match=r"cannot tell the point forecast among \['model', 'model-lo'"):
        plot_forecasts(history_df, forecast_df, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"quantile 0.1 has no partner 0.9"):
        plot_forecasts(history_df, forecast_df, tmp_path / "x.png", quantiles={0.1: "model-lo"}, point_col="model")
    with pytest.raises(ValueError, match=r"forecast_df lacks column 'q90'"):
        plot_forecasts(history_df, forecast_df, tmp_path / "x.png", quantiles={0.9: "q90"}, point_col="model")
    with pytest.raises(ValueError, match=r"series 'z' has no forecast"):
        plot_forecasts(history_df, forecast_df, tmp_path / "x.png", unique_ids=["z"], point_col="model")
    assert not (tmp_path / "x.png").exists()
