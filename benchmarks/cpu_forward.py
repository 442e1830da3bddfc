"""CPU forward time and peak memory: each seqzoo family against the peer a user would otherwise pick.

Every case is a 4-layer, d_model 256 language model over a DNA-sized vocabulary, batch 1, run in
inference mode in its own subprocess (so peak RSS belongs to that case alone), on the same number of
threads. Pairs: our Mamba vs transformers ``MambaModel``, our Mamba-2 vs transformers ``Mamba2Model``,
our mLSTM vs transformers ``xLSTMModel`` and NX-AI ``xlstm_large``, our sLSTM vs NX-AI ``xlstm``
sLSTM blocks (vanilla backend), our attention vs transformers ``LlamaModel`` (SDPA). Hyena has no
peer on PyPI (HyenaDNA's code is not packaged); its row is reported alone.

    python benchmarks/cpu_forward.py                      # T = 4096 and 16384, 1 thread
    python benchmarks/cpu_forward.py --lengths 4096 --threads 2 --write benchmarks/RESULTS.md

Needs the benchmark extra: ``pip install -e ".[benchmark]"``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

# The sibling module, also when run with PYTHONSAFEPATH=1 (which keeps the script's folder off sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import cpu_name, replace_section

VOCAB = 16
D_MODEL = 256
LAYERS = 4

#: our case -> the peer cases it is compared with
PAIRS: dict[str, tuple[str, ...]] = {
    "seqzoo-mamba": ("transformers-mamba",),
    "seqzoo-mamba2": ("transformers-mamba2",),
    "seqzoo-mlstm": ("transformers-xlstm", "xlstm-large"),
    "seqzoo-slstm": ("xlstm-slstm",),
    "seqzoo-attention": ("transformers-llama-sdpa",),
    "seqzoo-hyena": (),
}


def _ours(pattern: str, length: int, **backbone_kwargs):
    from zoo.backbone import BackboneConfig, MixerConfigs
    from zoo.layers.attention import AttentionConfig
    from zoo.layers.hyena import HyenaConfig
    from zoo.layers.mamba import MambaConfig
    from zoo.layers.mamba2 import Mamba2Config
    from zoo.layers.mlstm import MLSTMConfig
    from zoo.layers.slstm import SLSTMConfig
    from zoo.model import ModelConfig, SeqModel

    mixers = MixerConfigs(
        attention=AttentionConfig(num_heads=4),
        hyena=HyenaConfig(l_max=length),
        mamba=MambaConfig(d_state=16, expand=2),
        mamba2=Mamba2Config(d_state=128, headdim=64, ngroups=1, expand=2),
        mlstm=MLSTMConfig(num_heads=4),
        slstm=SLSTMConfig(num_heads=4),
    )
    backbone = BackboneConfig(d_model=D_MODEL, pattern=pattern * LAYERS, mixers=mixers, **backbone_kwargs)
    model = SeqModel(ModelConfig(backbone=backbone, vocab="dna", max_seq_len=length))
    return model, lambda ids: model(ids).logits


def build(case: str, length: int):
    """The model of ``case`` and a function running its forward pass on token ids ``[1, T]``."""
    from zoo.layers.mlp import MLPConfig

    if case == "seqzoo-mamba":
        return _ours("M", length)
    if case == "seqzoo-mamba2":
        return _ours("S", length)
    if case == "seqzoo-mlstm":  # FFN as transformers' xLSTM block: SwiGLU, factor 2.667, multiple of 64
        return _ours("m", length, mlp=MLPConfig(kind="swiglu", expand=2.667, multiple_of=64))
    if case == "seqzoo-slstm":  # FFN as NX-AI's sLSTM block: gated, factor 1.3, multiple of 64
        return _ours("s", length, mlp=MLPConfig(kind="swiglu", expand=1.3, multiple_of=64), norm="layernorm")
    if case == "seqzoo-attention":
        return _ours("A", length, mlp=MLPConfig(kind="swiglu", expand=2.75, multiple_of=64))
    if case == "seqzoo-hyena":  # HyenaDNA blocks: LayerNorm, GELU MLP x4 with biases
        return _ours("H", length, mlp=MLPConfig(kind="gelu_tanh", expand=4, bias=True), norm="layernorm")
    return _peer(case, length)


def _peer(case: str, length: int):
    import transformers

    if case == "transformers-mamba":
        cfg = transformers.MambaConfig(
            vocab_size=VOCAB,
            hidden_size=D_MODEL,
            num_hidden_layers=LAYERS,
            state_size=16,
            expand=2,
            use_cache=False,
        )
        model = transformers.MambaForCausalLM(cfg)
    elif case == "transformers-mamba2":
        cfg = transformers.Mamba2Config(
            vocab_size=VOCAB,
            hidden_size=D_MODEL,
            num_hidden_layers=LAYERS,
            num_heads=8,
            head_dim=64,
            state_size=128,
            n_groups=1,
            expand=2,
            chunk_size=256,
            use_cache=False,
        )
        model = transformers.Mamba2ForCausalLM(cfg)
    elif case == "transformers-xlstm":
        cfg = transformers.xLSTMConfig(
            vocab_size=VOCAB,
            hidden_size=D_MODEL,
            num_hidden_layers=LAYERS,
            num_heads=4,
            mode="inference",
            autocast_kernel_dtype="float32",
            use_cache=False,
            max_inference_chunksize=length,
        )
        model = transformers.xLSTMForCausalLM(cfg)
    elif case == "transformers-llama-sdpa":
        cfg = transformers.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=D_MODEL,
            intermediate_size=704,
            num_hidden_layers=LAYERS,
            num_attention_heads=4,
            max_position_embeddings=length,
            use_cache=False,
            attn_implementation="sdpa",
        )
        model = transformers.LlamaForCausalLM(cfg)
    elif case == "xlstm-large":
        from xlstm.xlstm_large.model import xLSTMLarge, xLSTMLargeConfig

        cfg = xLSTMLargeConfig(
            embedding_dim=D_MODEL,
            num_heads=4,
            num_blocks=LAYERS,
            vocab_size=VOCAB,
            chunkwise_kernel="chunkwise--native_autograd",
            sequence_kernel="native_sequence__native",
            step_kernel="native",
            mode="inference",
            autocast_kernel_dtype="float32",
        )
        model = xLSTMLarge(cfg)
        return model, lambda ids: model(ids)
    elif case == "xlstm-slstm":
        from xlstm import (
            FeedForwardConfig,
            sLSTMBlockConfig,
            sLSTMLayerConfig,
            xLSTMLMModel,
            xLSTMLMModelConfig,
        )

        block = sLSTMBlockConfig(
            slstm=sLSTMLayerConfig(backend="vanilla", num_heads=4, conv1d_kernel_size=4, dtype="float32"),
            feedforward=FeedForwardConfig(proj_factor=1.3, act_fn="gelu"),
        )
        cfg = xLSTMLMModelConfig(
            vocab_size=VOCAB,
            embedding_dim=D_MODEL,
            num_blocks=LAYERS,
            context_length=length,
            slstm_block=block,
            slstm_at="all",
        )
        model = xLSTMLMModel(cfg)
        return model, lambda ids: model(ids)
    else:
        raise ValueError(f"unknown case {case!r}; known: {sorted({*PAIRS, *sum(PAIRS.values(), ())})}")
    return model, lambda ids: model(ids).logits


def run_one(case: str, length: int, threads: int) -> dict:
    """Time one forward pass of ``case`` at ``length`` tokens (after a short warm-up); report peak RSS."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, forward = build(case, length)
    model.eval()
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    ids = torch.randint(7, 11, (1, length))
    with torch.inference_mode():
        forward(ids[:, :256])
        repeats = 3 if length <= 16384 else 1
        seconds = min(_timed(forward, ids) for _ in range(repeats))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"case": case, "length": length, "seconds": seconds, "peak_rss_mb": peak_mb, "params": params}


def _timed(forward, ids) -> float:
    start = time.perf_counter()
    out = forward(ids)
    assert torch.isfinite(out.float()).all()
    return time.perf_counter() - start


def _subprocess(case: str, length: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--one", case, "--lengths", str(length), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"case": case, "length": length, "error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    """One line naming the machine, Python and torch versions."""
    return f"{cpu_name()}, Python {platform.python_version()}, torch {torch.__version__}"


def table(results: list[dict], lengths: list[int], threads: int) -> str:
    """A markdown table: seconds, peak RSS and the ratio peer time / our time for each pair."""
    by = {(r["case"], r["length"]): r for r in results}
    lines = [
        f"Forward pass, {LAYERS} layers, d_model {D_MODEL}, batch 1, {threads} thread(s), inference mode. "
        "Speed-up = peer seconds / seqzoo seconds (> 1: seqzoo is faster).",
        "",
        "| case | params | "
        + " | ".join(f"T={t:,} s | T={t:,} peak RSS MB | speed-up at {t:,}" for t in lengths)
        + " |",
        "|---|---:|" + "---:|---:|---:|" * len(lengths),
    ]
    for ours, peers in PAIRS.items():
        for case in (ours, *peers):
            cells = []
            params = "-"
            for t in lengths:
                r = by.get((case, t), {})
                if "seconds" not in r:
                    cells += [r.get("error", "not run")[:60], "", ""]
                    continue
                params = f"{r['params'] / 1e6:.2f}M"
                base = by.get((ours, t), {})
                ratio = f"{r['seconds'] / base['seconds']:.2f}x" if case != ours and "seconds" in base else ""
                cells += [f"{r['seconds']:.2f}", f"{r['peak_rss_mb']:.0f}", ratio]
            lines.append(f"| {case} | {params} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="4096,16384", help="comma-separated sequence lengths")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default="", help="comma-separated subset of cases (default: all)")
    parser.add_argument("--write", type=Path, help="update this RESULTS.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = [int(t) for t in args.lengths.split(",")]
    if args.one:
        print(json.dumps(run_one(args.one, lengths[0], args.threads)))
        return
    cases = [c for ours, peers in PAIRS.items() for c in (ours, *peers)]
    if args.cases:
        cases = [c for c in cases if c in args.cases.split(",")]
    results = []
    for case in cases:
        for t in lengths:
            r = _subprocess(case, t, args.threads)
            print(json.dumps(r), flush=True)
            results.append(r)
    body = (
        f"## CPU forward (`benchmarks/cpu_forward.py --lengths {args.lengths} --threads {args.threads}`)\n\n"
    )
    body += f"Machine: {machine()}; run {time.strftime('%Y-%m-%d')}.\n\n" + table(
        results, lengths, args.threads
    )
    print(body)
    if args.write:
        replace_section(args.write, "cpu_forward", body)


if __name__ == "__main__":
    main()
