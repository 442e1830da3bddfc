"""Metrics against values worked out by hand, masking of missing targets, and the CRPS approximation."""

import numpy as np
import pytest
from scipy.stats import norm

from zoo.domains.forecasting.metrics import crps, mae, mase, mse, pinball_loss, scaled_crps, seasonal_naive_scale


def test_mse_mae_by_hand():
    assert mse([1.0, 2, 3], [1.0, 2, 5]) == pytest.approx(4 / 3)
    assert mae([1.0, 2, 3], [1.0, 2, 5]) == pytest.approx(2 / 3)
    # any shape: the mean over every entry
    true, pred = np.zeros((2, 3, 2)), np.zeros((2, 3, 2))
    pred[1, 2, 1] = 3.0
    assert mse(true, pred) == pytest.approx(9 / 12) and mae(true, pred) == pytest.approx(3 / 12)


def test_nan_targets_are_masked_not_filled():
    true = np.array([1.0, np.nan, 3.0])
    pred = np.array([2.0, 100.0, 3.0])
    assert mae(true, pred) == pytest.approx(0.5) and mse(true, pred) == pytest.approx(0.5)
    assert mae(true, pred, mask=np.array([False, True, True])) == pytest.approx(0.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"forecast is NaN at 1 observed"):
        mae([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ValueError, match=r"no observed target"):
        mse([np.nan, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"does not match the target shape"):
        mse([1.0, 2.0], [1.0, 2.0, 3.0])


def test_mase_by_hand():
    train = np.array([1.0, 3, 2, 4])
    assert seasonal_naive_scale(train, 1) == pytest.approx(5 / 3)  # |2| + |1| + |2| over 3
    # forecast MAE (1 + 2) / 2 = 1.5
    assert mase([5.0, 6], [4.0, 8], train, season=1) == pytest.approx(1.5 / (5 / 3))
    assert mase([5.0, 6], [4.0, 8], train, season=2) == pytest.approx(1.5)  # |2 - 1|, |4 - 3|


def test_mase_scales_each_series_by_its_own_training_part():
    train = np.array([[0.0, 0.0], [1.0, 10.0], [0.0, 0.0]])  # scales 1 and 10
    true = np.zeros((2, 2))
    pred = np.array([[1.0, 10.0], [1.0, 10.0]])
    assert mase(true, pred, train) == pytest.approx(1.0)


def test_mase_undefined_scale_is_an_error():
    with pytest.raises(ValueError, match=r"seasonal naive scale is 0.0 .*MASE is undefined"):
        mase([1.0], [1.0], [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match=r"scale of series 1 is 0.0"):
        mase(np.zeros((1, 2)), np.zeros((1, 2)), np.array([[0.0, 5.0], [1.0, 5.0]]))
    with pytest.raises(ValueError, match=r"more than season=4"):
        mase([1.0], [1.0], [1.0, 2.0], season=4)


def test_pinball_crps_by_hand():
    true = np.array([1.0, 3.0])
    quantiles = (0.1, 0.9)
    pred = np.array([[0.0, 2.0], [2.5, 3.5]])
    # q=0.1: 0.1 * (1 - 0) and 0.1 * (3 - 2.5); q=0.9: 0.1 * (2 - 1) and 0.1 * (3.5 - 3)
    assert pinball_loss(true, pred, quantiles) == pytest.approx(0.075)
    assert crps(true, pred, quantiles) == pytest.approx(0.15)
    assert scaled_crps(true, pred, quantiles) == pytest.approx(0.15 / 2.0)
    # an over-forecast at a high level costs less than at a low level
    assert pinball_loss([0.0], [[1.0]], (0.9,)) == pytest.approx(0.1)
    assert pinball_loss([0.0], [[1.0]], (0.1,)) == pytest.approx(0.9)


def test_crps_from_many_quantiles_approaches_the_gaussian_closed_form():
    levels = np.arange(1, 100) / 100
    y = np.array([0.0, 1.0])
    pred = np.tile(norm.ppf(levels), (2, 1))  # N(0, 1) forecasts
    z = y
    exact = np.mean(z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert crps(y, pred, levels) == pytest.approx(exact, rel=0.02)


def test_quantile_metrics_mask_and_validate_levels():
    true = np.array([1.0, np.nan])
    pred = np.array([[0.0, 2.0], [50.0, 60.0]])
    assert crps(true, pred, (0.1, 0.9)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"3 quantile levels given for forecasts with 2"):
        crps(true, pred, (0.1, 0.5, 0.9))
    with pytest.raises(ValueError, match=r"lie in \(0, 1\)"):
        crps(true, pred, (0.0, 0.9))
