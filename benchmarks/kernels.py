"""Check and time every kernel op: our Triton kernel, our torch path and the peers that run on this machine.

For each op and length: the Triton output is first compared with the torch path (relative RMS error,
forward and every gradient), then forward and forward+backward are timed (median of many runs,
``triton.testing.do_bench`` on a GPU). Each row reports milliseconds, the ratio to the best peer
(> 1: ours is faster) and the achieved bandwidth against the device's measured copy bandwidth, using
the fewest bytes the op must move (inputs read once, outputs written once).

Peers, when importable: mamba_ssm (``selective_scan_fn``, ``mamba_chunk_scan_combined``), causal-conv1d
(``causal_conv1d_fn``), flash-linear-attention (causal conv, SSD as ``chunk_simple_gla``, fused RMSNorm),
mlstm_kernels (TFLA ``chunkwise--triton_xl_chunk``), FlashRNN (fused sLSTM); the long convolution's peer
is torch.fft, which is our torch path.

    python benchmarks/kernels.py                                   # GPU: T = 1K .. 256K, bf16 and fp32
    python benchmarks/kernels.py --device cpu --lengths 256 --dtypes float32 --repeats 3   # smoke run
    python benchmarks/kernels.py --write benchmarks/RESULTS.md

The machine, the ceilings and the table are printed; ``--write`` puts them in RESULTS.md between markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# The sibling module, also when run with PYTHONSAFEPATH=1 (which keeps the script's folder off sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import cpu_name, replace_section


@dataclasses.dataclass
class Case:
    """One op at one size: how to build inputs, call each implementation and count its bytes."""

    op: str
    length: int
    make_inputs: Callable[[], dict[str, torch.Tensor]]
    run: dict[str, Callable[[dict], torch.Tensor]]
    """implementation name -> function of the inputs returning the output to compare / backpropagate."""
    min_bytes: int
    """Fewest bytes of device memory traffic of one forward."""


def _randn(*shape, dtype, device, scale=1.0, grad=True):
    return (torch.randn(*shape, device=device, dtype=torch.float32) * scale).to(dtype).requires_grad_(grad)


def _kernel_impls(chunk: Callable, kwargs: Callable[[dict], dict], has_triton: bool) -> dict[str, Callable]:
    impls = {"seqzoo-torch": lambda a: chunk(**kwargs(a), impl="torch")[0]}
    if has_triton:
        impls["seqzoo-triton"] = lambda a: chunk(**kwargs(a), impl="triton")[0]
    return impls


def _require_gpu(device: str) -> None:
    """Skip a Triton / CUDA peer off the GPU: importable on CPU (mlstm_kernels comes with xlstm) is not runnable."""
    if device != "cuda":
        raise ImportError("this peer runs on CUDA only")


def _has_triton(ops_module, device: str) -> bool:
    # On CPU a Triton kernel only runs under its interpreter: a correctness tool, not something to time.
    return device == "cuda" and "triton" in getattr(ops_module, "_IMPLS", {})


def causal_conv1d_case(length: int, dtype, device, batch=4, channels=2048, width=4) -> Case:
    from zoo.kernels.causal_conv1d import causal_conv1d_chunk, ops

    def make():
        return {
            "x": _randn(batch, length, channels, dtype=dtype, device=device),
            "weight": _randn(channels, width, dtype=dtype, device=device, scale=0.5),
            "bias": _randn(channels, dtype=dtype, device=device),
        }

    run = _kernel_impls(
        causal_conv1d_chunk, lambda a: {"x": a["x"], "weight": a["weight"], "bias": a["bias"], "activation": "silu"},
        _has_triton(ops, device),
    )  # fmt: skip
    try:
        from causal_conv1d import causal_conv1d_fn

        run["causal-conv1d"] = lambda a: causal_conv1d_fn(
            a["x"].transpose(1, 2), a["weight"], a["bias"], activation="silu"
        ).transpose(1, 2)
    except ImportError:
        pass
    size = torch.tensor([], dtype=dtype).element_size()
    try:
        _require_gpu(device)
        from fla.modules.causal_conv1d import causal_conv1d as fla_causal_conv1d

        run["fla"] = lambda a: fla_causal_conv1d(a["x"], a["weight"], a["bias"], activation="silu")[0]
    except ImportError:
        pass
    return Case("causal_conv1d", length, make, run, 2 * batch * length * channels * size)


def selective_scan_case(length: int, dtype, device, batch=2, channels=1536, state=16) -> Case:
    from zoo.kernels.selective_scan import ops, selective_scan_chunk

    def make():
        return {
            "u": _randn(batch, length, channels, dtype=dtype, device=device),
            "delta": _randn(batch, length, channels, dtype=dtype, device=device, scale=0.5),
            "A": -torch.rand(channels, state, device=device).add(0.5).requires_grad_(),
            "Bm": _randn(batch, length, state, dtype=dtype, device=device),
            "Cm": _randn(batch, length, state, dtype=dtype, device=device),
            "D_skip": torch.randn(channels, device=device).requires_grad_(),
            "z": _randn(batch, length, channels, dtype=dtype, device=device),
        }

    def kwargs(a):
        return {**a, "delta_softplus": True}

    run = _kernel_impls(selective_scan_chunk, kwargs, _has_triton(ops, device))
    if device == "cpu":
        # The fused CPU scan (what impl="auto" runs on CPU), timed beside the chunked torch form it replaced.
        run["seqzoo-cpu"] = lambda a: selective_scan_chunk(**kwargs(a), impl="cpu")[0]
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        def mamba(a):
            bdl = {k: a[k].transpose(1, 2) for k in ("u", "delta", "z")}  # mamba_ssm: u: r(B D L)
            y = selective_scan_fn(
                bdl["u"], bdl["delta"], a["A"], a["Bm"].transpose(1, 2), a["Cm"].transpose(1, 2), a["D_skip"],
                z=bdl["z"], delta_softplus=True,
            )  # fmt: skip
            return y.transpose(1, 2)

        run["mamba_ssm"] = mamba
    except ImportError:
        pass
    size = torch.tensor([], dtype=dtype).element_size()
    return Case("selective_scan", length, make, run, (4 * channels + 2 * state) * batch * length * size)


def ssd_case(length: int, dtype, device, batch=2, heads=24, headdim=64, groups=1, state=128, chunk=64) -> Case:
    from zoo.kernels.ssd import ops, ssd_chunk

    def make():
        return {
            "x": _randn(batch, length, heads, headdim, dtype=dtype, device=device),
            "dt": torch.rand(batch, length, heads, device=device).mul(0.1).add(0.001).to(dtype).requires_grad_(),
            "A": -torch.rand(heads, device=device).add(0.5).requires_grad_(),
            "Bm": _randn(batch, length, groups, state, dtype=dtype, device=device),
            "Cm": _randn(batch, length, groups, state, dtype=dtype, device=device),
            "D_skip": torch.randn(heads, device=device).requires_grad_(),
        }

    run = _kernel_impls(ssd_chunk, lambda a: {**a, "chunk_size": chunk}, _has_triton(ops, device))
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        run["mamba_ssm"] = lambda a: mamba_chunk_scan_combined(
            a["x"], a["dt"], a["A"], a["Bm"], a["Cm"], chunk_size=chunk, D=a["D_skip"]
        )
    except ImportError:
        pass
    try:
        _require_gpu(device)
        from fla.ops.simple_gla import chunk_simple_gla

        def fla_ssd(a):
            # SSD is simple GLA with a per-head scalar decay: q = C, k = B, v = dt x, log decay g = dt A.
            rep = heads // groups
            q, k = (a[n].repeat_interleave(rep, dim=2) for n in ("Cm", "Bm"))
            y, _ = chunk_simple_gla(q, k, a["x"] * a["dt"].unsqueeze(-1), g=(a["dt"] * a["A"]).float(), scale=1.0)
            return y + a["x"] * a["D_skip"].unsqueeze(-1).to(a["x"].dtype)

        run["fla-simple-gla"] = fla_ssd
    except ImportError:
        pass
    size = torch.tensor([], dtype=dtype).element_size()
    per_token = 2 * heads * headdim + heads + 2 * groups * state
    return Case("ssd", length, make, run, per_token * batch * length * size)


def long_conv_case(length: int, dtype, device, batch=2, channels=768) -> Case:
    from zoo.kernels.long_conv import long_conv_chunk, ops

    def make():
        return {
            "u": _randn(batch, length, channels, dtype=dtype, device=device),
            "k": _randn(channels, length, dtype=torch.float32, device=device, scale=1 / math.sqrt(length)),
            "bias": torch.randn(channels, device=device).requires_grad_(),
        }

    run = _kernel_impls(long_conv_chunk, lambda a: a, _has_triton(ops, device))
    run["torch.fft"] = run.pop("seqzoo-torch")  # our torch path is torch.fft: the peer the issue names
    size = torch.tensor([], dtype=dtype).element_size()
    return Case("long_conv", length, make, run, 2 * batch * length * channels * size + channels * length * 4)


def mlstm_case(length: int, dtype, device, batch=2, heads=8, qk_dim=128, v_dim=256, chunk=64) -> Case:
    from zoo.kernels.mlstm import mlstm_chunk, ops

    def make():
        return {
            "q": _randn(batch, length, heads, qk_dim, dtype=dtype, device=device),
            "k": _randn(batch, length, heads, qk_dim, dtype=dtype, device=device),
            "v": _randn(batch, length, heads, v_dim, dtype=dtype, device=device),
            "igate": _randn(batch, length, heads, dtype=dtype, device=device),
            "fgate": _randn(batch, length, heads, dtype=dtype, device=device, scale=2.0),
        }

    run = _kernel_impls(mlstm_chunk, lambda a: {**a, "chunk_size": chunk}, _has_triton(ops, device))
    try:
        _require_gpu(device)
        from mlstm_kernels.torch import get_mlstm_kernel

        xl_chunk = get_mlstm_kernel("chunkwise--triton_xl_chunk")  # TFLA, NX-AI's fastest kernel

        def nx_ai(a):
            # mlstm_kernels is head-major: [B, H, T, K]; same math (query scaled by 1/sqrt(K), m0 = 0)
            q, k, v = (a[n].transpose(1, 2) for n in ("q", "k", "v"))
            i, f = (a[n].transpose(1, 2) for n in ("igate", "fgate"))
            return xl_chunk(q, k, v, i, f, chunk_size=128).transpose(1, 2)

        run["mlstm_kernels"] = nx_ai
    except ImportError:
        pass
    size = torch.tensor([], dtype=dtype).element_size()
    per_token = heads * (2 * qk_dim + 2 * v_dim + 2)
    return Case("mlstm", length, make, run, per_token * batch * length * size)


def slstm_case(length: int, dtype, device, batch=8, heads=4, head_dim=128) -> Case:
    from zoo.kernels.slstm import ops, slstm_chunk

    def make():
        return {
            "gates_x": _randn(batch, length, 4, heads, head_dim, dtype=dtype, device=device),
            "R": _randn(heads, head_dim, 4, head_dim, dtype=dtype, device=device, scale=head_dim**-0.5),
            "bias": _randn(4, heads, head_dim, dtype=dtype, device=device),
        }

    run = _kernel_impls(slstm_chunk, lambda a: a, _has_triton(ops, device))
    try:
        _require_gpu(device)
        from flashrnn import flashrnn

        def flash_rnn(a):
            # FlashRNN: gates [B,T,G,H,D], R [G,H,D_out,D_prev] (ours is [H,D_prev,G,D_out]), bias [G,H,D]
            backend_dtype = "float32" if dtype == torch.float32 else "bfloat16"
            h, _ = flashrnn(a["gates_x"], a["R"].permute(2, 0, 3, 1), a["bias"], function="slstm",
                            backend="cuda_fused", dtype=backend_dtype)  # fmt: skip
            return h[0]  # states first: [S, B, T, H, D] -> the hidden state

        run["flashrnn"] = flash_rnn
    except ImportError:
        pass
    size = torch.tensor([], dtype=dtype).element_size()
    return Case("slstm", length, make, run, batch * length * heads * head_dim * 5 * size)


def norm_case(length: int, dtype, device, batch=4, channels=2048) -> Case:
    from zoo.kernels.norm import ops, rms_norm

    def make():
        return {
            "x": _randn(batch, length, channels, dtype=dtype, device=device),
            "residual": _randn(batch, length, channels, dtype=torch.float32, device=device),
            "weight": _randn(channels, dtype=dtype, device=device),
        }

    run = _kernel_impls(rms_norm, lambda a: a, _has_triton(ops, device))
    try:
        _require_gpu(device)
        from fla.modules.norm.layernorm import rms_norm as fla_rms_norm

        run["fla"] = lambda a: fla_rms_norm(
            a["x"], a["weight"], None, residual=a["residual"], prenorm=True, residual_in_fp32=True
        )[0]
    except ImportError:
        pass
    size = torch.tensor([], dtype=dtype).element_size()
    # reads x and the fp32 residual, writes y and the fp32 residual
    return Case("rms_norm", length, make, run, batch * length * channels * (2 * size + 8))


CASES = {
    "causal_conv1d": causal_conv1d_case,
    "selective_scan": selective_scan_case,
    "ssd": ssd_case,
    "long_conv": long_conv_case,
    "mlstm": mlstm_case,
    "slstm": slstm_case,
    "rms_norm": norm_case,
}


def _time_ms(fn: Callable[[], object], device: str, repeats: int) -> float:
    if device == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=max(100, repeats * 10), return_mode="median"))
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def _rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _check(case: Case, impl: str) -> float:
    """Worst relative RMS error of ``impl`` vs the torch path over the output and every input gradient."""
    inputs = case.make_inputs()
    reference = "seqzoo-torch" if "seqzoo-torch" in case.run else "torch.fft"
    grad_out = None
    results = {}
    for name in (reference, impl):
        leaves = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in inputs.items()}
        out = case.run[name](leaves)
        if grad_out is None:
            grad_out = torch.randn_like(out)
        out.backward(grad_out)
        results[name] = [out] + [leaves[k].grad for k in sorted(leaves) if leaves[k].grad is not None]
    return max(_rel_rms(a, b) for a, b in zip(results[impl], results[reference]))


def _ceilings(device: str) -> dict[str, float]:
    """Measured copy bandwidth (GB/s, read + write) and bf16/fp32 matmul rate (TFLOP/s)."""
    n = 1 << 28 if device == "cuda" else 1 << 24
    src = torch.empty(n, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    ms = _time_ms(lambda: dst.copy_(src), device, 5)
    size = 8192 if device == "cuda" else 1024
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    mm_ms = _time_ms(lambda: a @ a, device, 5)
    return {"copy_GBps": 2 * n / ms / 1e6, "matmul_TFLOPs": 2 * size**3 / mm_ms / 1e9}


def _measure(fn: Callable[[dict], torch.Tensor], case: Case, mode: str, device: str, repeats: int) -> float | str:
    """Milliseconds of ``fn`` in ``mode``, or the reason it failed (out of memory, a peer's broken kernel...).

    A failure is reported in the table rather than ending the run: a GPU session has minutes, not retries.
    """
    try:
        inputs = case.make_inputs()
        if mode == "fwd":
            with torch.no_grad():
                return _time_ms(lambda: fn(inputs), device, repeats)
        grad = torch.randn_like(fn(inputs))
        return _time_ms(lambda: fn(inputs).backward(grad), device, repeats)
    except Exception as error:  # any failure becomes a row, see the docstring
        return f"{type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()


def run(args) -> tuple[list[dict], dict]:
    device = args.device
    ceilings = _ceilings(device)
    rows = []
    for op in args.ops:
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            for length in args.lengths:
                case = CASES[op](length, dtype, device)
                errors = {}
                for impl in case.run:
                    if impl.startswith(("seqzoo-triton", "seqzoo-cpu")):
                        try:
                            errors[impl] = _check(case, impl)
                        except Exception as error:  # reported in the table
                            errors[impl] = f"{type(error).__name__}"
                for mode in ("fwd", "fwd+bwd"):
                    timings = {impl: _measure(fn, case, mode, device, args.repeats) for impl, fn in case.run.items()}
                    peers = [v for k, v in timings.items() if not k.startswith("seqzoo") and isinstance(v, float)]
                    best_peer = min(peers) if peers else None
                    for impl, ms in timings.items():
                        ok = isinstance(ms, float)
                        rows.append(
                            {
                                "op": op, "T": length, "dtype": dtype_name, "mode": mode, "impl": impl,
                                "ms": ms if ok else None, "failed": None if ok else ms,
                                "vs best peer": (best_peer / ms) if ok and best_peer and impl.startswith("seqzoo")
                                else None,
                                "GB/s": case.min_bytes / ms / 1e6 if ok and mode == "fwd" else None,
                                "rel err vs torch": errors.get(impl),
                            }
                        )  # fmt: skip
                del case
    return rows, ceilings


def render(rows: list[dict], ceilings: dict, args) -> str:
    machine = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    lines = [
        "## Kernels (`benchmarks/kernels.py`)",
        "",
        f"Command: `python benchmarks/kernels.py {' '.join(sys.argv[1:])}`",
        "",
        f"Device: {machine}{'' if args.device == 'cuda' else f' ({torch.get_num_threads()} threads)'}; "
        f"torch {torch.__version__}; measured ceilings: copy {ceilings['copy_GBps']:.0f} GB/s, "
        f"matmul {ceilings['matmul_TFLOPs']:.2f} TFLOP/s. Ratio = best peer ms / ours (> 1: ours is faster); "
        "GB/s = fewest bytes the forward must move / time.",
        "",
        "| op | T | dtype | mode | impl | ms | vs best peer | GB/s (% of copy) | rel err vs torch |",
        "|---|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "" if r["vs best peer"] is None else f"{r['vs best peer']:.2f}x"
        bw = "" if r["GB/s"] is None else f"{r['GB/s']:.1f} ({100 * r['GB/s'] / ceilings['copy_GBps']:.0f}%)"
        err = r["rel err vs torch"]
        err = "" if err is None else (err if isinstance(err, str) else f"{err:.1e}")
        ms = f"{r['ms']:.3f}" if r["ms"] is not None else f"failed ({r['failed']})"
        cells = [r["op"], f"{r['T']:,}", r["dtype"], r["mode"], r["impl"], ms, ratio, bw, err]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ops", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1024, 4096, 16384, 65536, 262144])  # fmt: skip
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per measurement on CPU")
    parser.add_argument("--write", type=Path, default=None, help="results file to update (between markers)")
    parser.add_argument("--section", default="kernels",
                        help="section name --write replaces (e.g. kernels-cpu for a CPU run)")  # fmt: skip
    args = parser.parse_args()
    rows, ceilings = run(args)
    section = render(rows, ceilings, args)
    print(section)
    if args.write:
        replace_section(args.write, args.section, section)


if __name__ == "__main__":
    main()
