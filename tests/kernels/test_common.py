"""Implementation dispatch: explicit, device-driven, with clear errors."""

import pytest
import torch

from zoo.kernels.common import dispatch, lazy, resolve_impl

OPS = {"torch": lambda: "torch", "reference": lambda: "reference"}
WITH_TRITON = {**OPS, "triton": lambda: "triton"}


def test_auto_is_the_torch_path_on_cpu_even_when_a_kernel_exists():
    x = torch.zeros(2)
    assert resolve_impl("auto", OPS, x) == "torch"
    assert resolve_impl("auto", WITH_TRITON, x) == "torch"
    assert dispatch("reference", OPS, x)() == "reference"


def test_explicit_triton_needs_a_kernel():
    assert resolve_impl("triton", WITH_TRITON, torch.zeros(1)) == "triton"
    with pytest.raises(ValueError, match="impl='triton' is not available for this op"):
        resolve_impl("triton", OPS, torch.zeros(1))


def test_unknown_impl_lists_the_choices():
    with pytest.raises(ValueError, match="is not one of"):
        resolve_impl("cuda", OPS, torch.zeros(1))


def test_lazy_imports_on_first_call():
    join = lazy("os.path", "join")
    assert join("a", "b") == "a/b" and join.__name__ == "join"
