"""End-to-end memory of a model's forward + backward as the sequence grows: is it linear in T?

Builds a registry entry with random weights (default ``hybridna-small``: Mamba-2 + attention), runs one
training step's forward and backward (next-token cross-entropy) on one sequence of each length, and reports
the peak memory and the time. Each length runs in its own subprocess, so one peak never includes another's
cache. On a GPU the peak is ``torch.cuda.max_memory_allocated``; on CPU it is the process's peak RSS.

Linearity: after the fixed cost (weights, optimizer-free), memory per token should be constant. The table
gives the increment per 1K tokens between consecutive lengths; a quadratic term (an ``L x L`` attention
matrix, an ``O(T^2)`` convolution) shows up as increments that double with T.

    python benchmarks/memory.py                                   # GPU: T = 8K, 16K, 32K, 64K, bf16 autocast
    python benchmarks/memory.py --device cpu --lengths 512,1024 --dtype float32    # smoke run
    python benchmarks/memory.py --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

# The sibling module, also when run with PYTHONSAFEPATH=1 (which keeps the script's folder off sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import cpu_name, replace_section, run_child


def measure(entry: str, length: int, device: str, dtype: str, batch: int) -> dict:
    """One forward + backward of ``entry`` at ``length`` tokens in this process: peak MB and seconds."""
    import zoo
    from zoo.model import VOCABULARIES

    torch.manual_seed(0)
    model = zoo.load(entry, pretrained=False, device=device)
    vocab = len(VOCABULARIES[model.config.vocab])  # the real tokens, not the padded embedding rows
    tokens = torch.randint(0, vocab, (batch, length + 1), device=device)
    autocast = torch.autocast(device_type=device, dtype=getattr(torch, dtype), enabled=dtype != "float32")

    def step() -> None:
        with autocast:
            logits = model(tokens[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()

    step()  # warm-up: kernels compiled, caches filled, gradients allocated
    model.zero_grad(set_to_none=False)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    params = sum(p.numel() for p in model.parameters())
    return {"T": length, "peak_MB": peak, "seconds": time.perf_counter() - start, "params": params}


def run(args) -> list[dict]:
    """Every length in its own subprocess (``--child``), in order."""
    rows = []
    for length in args.lengths:
        child = ["--child", "--entry", args.entry, "--device", args.device,
                 "--dtype", args.dtype, "--batch", str(args.batch), "--lengths", str(length)]  # fmt: skip
        rows.append(run_child(__file__, child, f"T={length}"))
    return rows


def render(rows: list[dict], args) -> str:
    """The markdown section: peak, time and the memory increment per 1K tokens between lengths."""
    machine = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    lines = [
        f"## Memory of forward + backward against T (`benchmarks/memory.py --entry {args.entry}`)",
        "",
        f"Device: {machine}; torch {torch.__version__}; batch {args.batch}; {args.dtype}"
        f"{' autocast' if args.dtype != 'float32' else ''}; {rows[0]['params'] / 1e6:.2f}M parameters. "
        "Peak = " + ("`torch.cuda.max_memory_allocated`" if args.device == "cuda" else "peak RSS") + ".",
        "",
        "| T | peak MB | MB per 1K tokens since previous T | seconds |",
        "|---:|---:|---:|---:|",
    ]
    previous = None
    for r in rows:
        slope = ""
        if previous is not None:
            slope = f"{(r['peak_MB'] - previous['peak_MB']) / ((r['T'] - previous['T']) / 1024):.1f}"
        lines.append(f"| {r['T']:,} | {r['peak_MB']:.0f} | {slope} | {r['seconds']:.3f} |")
        previous = r
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", default="hybridna-small")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")], default=[8192, 16384, 32768, 65536])
    parser.add_argument("--write", type=Path, default=None, help="results file to update (between markers)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.entry, args.lengths[0], args.device, args.dtype, args.batch)))
        return
    section = render(run(args), args)
    print(section)
    if args.write:
        replace_section(args.write, "memory", section)


if __name__ == "__main__":
    main()
