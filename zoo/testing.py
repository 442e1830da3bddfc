"""Numerical assertions shared by the test suite (fla-style: max-abs plus relative RMSE)."""

from __future__ import annotations

import torch


def relative_rmse(reference: torch.Tensor, actual: torch.Tensor) -> float:
    """RMS of ``actual - reference`` divided by the RMS of ``reference`` (NaN if anything is NaN)."""
    reference, actual = reference.detach().double(), actual.detach().double()
    err = (actual - reference).pow(2).mean().sqrt()
    base = reference.pow(2).mean().sqrt().clamp_min(1e-30)
    return float(err / base)


def assert_close(
    name: str, reference: torch.Tensor, actual: torch.Tensor, rtol: float, atol: float = 0.0
) -> None:
    """Fail unless ``actual`` matches ``reference`` within ``rtol`` relative RMSE (or ``atol`` max-abs).

    Fails on any NaN/Inf in either tensor, and on shape mismatch, so an unwritten (NaN-poisoned)
    output element cannot pass.
    """
    assert reference.shape == actual.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(reference.shape)}"
    assert torch.isfinite(reference).all(), f"{name}: reference has non-finite values"
    assert torch.isfinite(actual).all(), f"{name}: output has non-finite values"
    max_abs = (
        float((actual.detach().double() - reference.detach().double()).abs().max()) if actual.numel() else 0.0
    )
    rel = relative_rmse(reference, actual)
    assert rel <= rtol or max_abs <= atol, (
        f"{name}: relative RMSE {rel:.3e} > {rtol:.1e} (max abs diff {max_abs:.3e})"
    )
