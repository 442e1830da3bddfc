"""Sequence parallelism over 2 gloo CPU processes == one process: outputs, input and parameter gradients.

One spawn runs every case (process start-up dominates the time); each case is then checked by its own
test. Both ranks build the same model and input from the same seed, run the whole sequence on their own
as the reference, then run their half through ``zoo.distributed`` and compare their slice. ``T = 46``
gives odd local lengths (23), and ``chunk_size=16`` puts the kernels' chunk boundaries away from the
rank boundary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.backbone import Backbone, BackboneConfig, MixerConfigs
from zoo.distributed import (
    all_reduce_gradients,
    gather_sequence,
    sequence_parallel_forward,
    sequence_parallel_model_forward,
    split_sequence,
)
from zoo.layers.attention import AttentionConfig
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mamba import MambaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlp import MLPConfig
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.model import ModelConfig, SeqModel
from zoo.testing import assert_close

pytestmark = pytest.mark.dist

WORLD = 2
B, T = 2, 46


def _config(pattern: str, d_model: int = 32, mlp: MLPConfig | None = None, **mixers) -> BackboneConfig:
    defaults = MixerConfigs(
        attention=AttentionConfig(num_heads=4, num_kv_heads=2),
        hyena=HyenaConfig(l_max=T, filter_order=16),
        mamba=MambaConfig(d_state=8, chunk_size=16),
        mamba2=Mamba2Config(d_state=16, headdim=16, chunk_size=16),
        mlstm=MLSTMConfig(num_heads=4, chunk_size=16),
        slstm=SLSTMConfig(num_heads=4, recurrent_weight_init="standard"),
    )
    return BackboneConfig(d_model=d_model, pattern=pattern, mixers=replace(defaults, **mixers), mlp=mlp)


#: case -> backbone config (a SeqModel over DNA tokens for names starting with "model")
CASES: dict[str, BackboneConfig] = {
    "mamba": _config("M"),
    "mamba2": _config("S"),
    "mlstm": _config("m"),
    "slstm": _config("s"),
    "hyena": _config("H"),
    # order 3 (two long convolutions, four all-to-alls), 33 channels split 17 + 16 over the ranks
    "hyena-order3-odd-width": _config("H", d_model=33, hyena=HyenaConfig(order=3, l_max=64, filter_order=16)),
    "attention-gqa": _config("A"),
    # 3 query heads split 2 + 1, one kv head repeated, partial rotary
    "attention-uneven-heads": _config(
        "A", attention=AttentionConfig(num_heads=3, num_kv_heads=1, head_dim=8, rotary_dim=4)
    ),
    "attention-bidirectional": _config("A", attention=AttentionConfig(num_heads=4, causal=False)),
    "hybrid": _config("SAmHMs", mlp=MLPConfig(expand=2, multiple_of=16)),
    "model-hybrid": _config("SAmH", mlp=MLPConfig(kind="gelu", expand=2, multiple_of=16)),
    # slices shorter than the short convolutions' windows (2 positions vs 3 and 4 before them)
    "short-slices": _config("MsH", hyena=HyenaConfig(l_max=4, short_filter_order=5, filter_order=16)),
}
#: sequence length of the cases that do not use ``T``
LENGTHS = {"short-slices": 4}
#: cases that also run without autograd (inference) and with a frozen first layer and an input that
#: wants no gradient (the received state's gradient must still be sent back)
NO_GRAD_CASES = ("hybrid",)
FROZEN_CASES = ("hybrid",)


def _build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    config, length = CASES[name], LENGTHS.get(name, T)
    if name.startswith("model"):
        module = SeqModel(ModelConfig(backbone=config, vocab="dna"))
        inputs = torch.randint(0, 5, (B, length))
    else:
        module = Backbone(config)
        inputs = torch.randn(B, length, config.d_model)
    with torch.no_grad():
        # zero-initialised weights (gate projections, norm scales) would leave some paths untested
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module, inputs


def _forward(module: torch.nn.Module, inputs: torch.Tensor, parallel: bool) -> torch.Tensor:
    if isinstance(module, SeqModel):
        return sequence_parallel_model_forward(module, inputs).logits if parallel else module(inputs).logits
    return sequence_parallel_forward(module, inputs) if parallel else module(inputs)[0]


def _check(name: str, module: torch.nn.Module, inputs: torch.Tensor, frozen: bool = False) -> None:
    """Whole sequence on this rank vs. its slice through the process group; raises AssertionError."""
    if frozen:
        for p in module.layers[0].parameters():
            p.requires_grad_(False)
    with_input_grad = inputs.is_floating_point() and not frozen
    x = inputs.clone().requires_grad_(with_input_grad)
    ref = _forward(module, x, parallel=False)
    cotangent = torch.randn_like(ref)
    (ref * cotangent).sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)

    x_local = split_sequence(inputs).clone().requires_grad_(with_input_grad)
    out = _forward(module, x_local, parallel=True)
    (out * split_sequence(cotangent)).sum().backward()
    all_reduce_gradients(module)

    gathered = gather_sequence(out.detach())  # before any assert: a failing rank must not skip a collective
    assert_close(f"{name} output", split_sequence(ref), out, rtol=1e-5)
    assert_close(f"{name} output gathered", ref, gathered, rtol=1e-5)
    if with_input_grad:
        assert_close(f"{name} input grad", split_sequence(x.grad), x_local.grad, rtol=1e-5)
    grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    assert grads.keys() == ref_grads.keys(), f"{name}: gradients of {sorted(grads.keys() ^ ref_grads.keys())}"
    for n, g in ref_grads.items():
        assert_close(f"{name} grad {n}", g, grads[n], rtol=1e-4, atol=1e-7)


def _check_no_grad(name: str, module: torch.nn.Module, inputs: torch.Tensor) -> None:
    with torch.no_grad():
        ref = _forward(module, inputs, parallel=False)
        out = _forward(module, split_sequence(inputs), parallel=True)
    assert_close(f"{name} no_grad output", split_sequence(ref), out, rtol=1e-5)


def _check_errors(rank: int) -> None:
    with pytest.raises(ValueError, match="cannot be split evenly"):
        split_sequence(torch.zeros(1, T + 1))
    module, inputs = _build("mamba")
    # rank 1 holds one position fewer: every rank must raise, none may hang
    local = split_sequence(inputs)[:, : T // WORLD - rank]
    with pytest.raises(ValueError, match="T / W positions"):
        sequence_parallel_forward(module, local)
    short = Backbone(_config("H", hyena=HyenaConfig(l_max=T - 2, filter_order=16)))
    with pytest.raises(ValueError, match="l_max"):
        sequence_parallel_forward(short, split_sequence(inputs))


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    results: dict[str, str | None] = {}  # key -> failure, None when it passed

    def run(key: str, fn, *args) -> None:
        try:
            fn(*args)
            results[key] = None
        except (AssertionError, pytest.fail.Exception):
            # only failed comparisons are caught: they come after all communication, so the ranks stay in step
            results[key] = traceback.format_exc(limit=2)

    for name in CASES:
        run(name, _check, name, *_build(name))
        if name in NO_GRAD_CASES:
            run(f"{name}/no_grad", _check_no_grad, name, *_build(name))
        if name in FROZEN_CASES:
            run(f"{name}/frozen", _check, name, *_build(name), True)
    run("errors", _check_errors, rank)
    dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def _spawn(out_dir: str) -> None:
    mp.spawn(_worker, args=(str(Path(out_dir, "init")), out_dir), nprocs=WORLD, join=True)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, list[str | None]]:
    """Run every case once on 2 processes; ``{case: [rank 0 failure, rank 1 failure]}`` (None: passed)."""
    out = tmp_path_factory.mktemp("sequence_parallel")
    # This file runs as a script, which spawns the ranks: spawned processes find their function by
    # module name, and pytest's importlib mode gives this module a name they cannot import.
    done = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    per_rank = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return {key: [r[key] for r in per_rank] for key in per_rank[0]}


KEYS = [
    *CASES,
    *(f"{n}/no_grad" for n in NO_GRAD_CASES),
    *(f"{n}/frozen" for n in FROZEN_CASES),
    "errors",
]


@pytest.mark.parametrize("key", KEYS)
def test_sequence_parallel_matches_one_process(results, key):
    errors = [f"rank {rank}: {error}" for rank, error in enumerate(results[key]) if error]
    assert not errors, "\n".join(errors)


def test_bidirectional_and_rc_equivariant_are_refused():
    # refused before any communication, so no process group is needed
    bidirectional = Backbone(replace(_config("M"), bidirectional=True))
    with pytest.raises(NotImplementedError, match="bidirectional"):
        sequence_parallel_forward(bidirectional, torch.zeros(1, 4, 32))
    model = SeqModel(ModelConfig(backbone=_config("M"), vocab="dna", rc_equivariant=True))
    with pytest.raises(NotImplementedError, match="reverse-complement"):
        sequence_parallel_model_forward(model, torch.zeros(1, 4, dtype=torch.long))


if __name__ == "__main__":
    _spawn(sys.argv[1])
