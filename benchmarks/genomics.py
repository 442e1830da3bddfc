"""Genomics quality: fine-tuned DNA models against from-scratch training and k-mer / CNN baselines.

Three parts, each writing its rows to one CSV (``--out``) as it goes, so an interrupted run resumes where it
stopped (a row whose status is ``ok`` is skipped; ``--force`` recomputes):

1. **Fine-tuning** (``--tasks``): every family of ``--families`` fine-tuned from its pretrained weights and the
   same architecture from random initialisation, with the same budget (``--steps`` optimizer steps, AdamW
   ``--lr``, ``--batch-size``, ``--pooling``, Lightning on ``--device``), plus ``KmerBaseline`` (canonical
   6-mers + logistic / ridge regression) and ``CNNBaseline`` (one-hot CNN, early-stopped on the val split),
   for every seed of ``--seeds``. The learning rate warms up over the first 5% of the steps and decays by a
   cosine (``--schedule cosine``; ``constant`` keeps it flat). With ``--val-every N`` the model is validated
   every N steps, training stops after ``--patience`` validations without a lower val loss, and the test
   metrics are those of the checkpoint with the lowest val loss, the protocol the CNN gets; with
   ``--val-every 0`` they are those of the model after the last step. Classification reports accuracy and
   AUROC (macro one-vs-rest for more than two classes), regression Spearman's rho.
2. **Held-out perplexity**: bits per base of each pretrained model on the first ``--perplexity-bases`` bases of
   every test segment of the pretraining corpus (``dna-corpus``: yeast chr16, fly chr2R end, worm chrX end,
   human chr5 region, E. coli end), pooled over the scored bases, beside the parameter count and order-k
   Markov models counted on the corpus's train segments (``--markov-orders``).
3. **ARS1 zero-shot**: Spearman's rho between ``score_sequences_against(model, ARS1_WILDTYPE, variants)`` and
   the measured log enrichment, on the test split of the ARS1 variants, per pretrained family.

A family whose pretrained weights cannot be loaded becomes a row with status ``no pretrained weights``.

    python benchmarks/genomics.py                               # everything, CPU (hours)
    python benchmarks/genomics.py --quick                       # smoke run: 1 seed, a few steps, small subsets
    python benchmarks/genomics.py --tasks species --families hyenadna-tiny --seeds 0 --steps 200
    python benchmarks/genomics.py --report-only --out merged.csv  # the section from rows of earlier runs
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

# The sibling module, also when run with PYTHONSAFEPATH=1 (which keeps the script's folder off sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_table
from results import replace_section
from run_table import NoWeights, count, first_line, machine, selected

TASKS = ("oct4-mafk", "fly-promoters", "species", "ars1")
FAMILIES = ("hyenadna-tiny", "hybridna-small", "caduceus-small", "dna-xlstm-small")
KMER_K = 6
KMER_MODEL = f"{KMER_K}-mer"
CNN_MODEL = "cnn"
SECTION = "genomics"
NO_WEIGHTS = "no pretrained weights"
ROOT = Path(__file__).resolve().parent
#: Columns of the run CSV, in order; metrics a row does not have stay empty.
COLUMNS = (
    "key", "part", "task", "model", "init", "seed", "config", "status", "accuracy", "auroc", "spearman",
    "pearson", "bits_per_base", "bases", "n", "params", "seconds", "note",
)  # fmt: skip
#: The quick preset (``--quick``): seconds per run on a laptop CPU.
QUICK = {"seeds": [0], "steps": 4, "batch_size": 8, "max_train_samples": 64, "cnn_epochs": 2,
         "perplexity_bases": 2_000, "max_variants": 64, "markov_orders": [2]}  # fmt: skip


# Helpers ---------------------------------------------------------------------------------------------------


def task_spec(task: str) -> tuple[str, int]:
    """``(kind, num_classes)`` of a labelled task: ``("classification", C)`` or ``("regression", 0)``."""
    from zoo.domains.genomics import datasets

    spec = datasets.TASKS[task] if task in datasets.TASKS else datasets.get_task(task)  # get_task names the typo
    return spec.task, len(spec.classes)


def labelled_table(task: str, max_train_samples: int | None, seed: int) -> pd.DataFrame:
    """The rows the fine-tuning runs see: ``LabelledSequenceDataModule.frame`` (``sequence``, ``label`` as class
    index or float, ``split``), with the same seeded train subset, so baselines and models share their data."""
    from zoo.domains.genomics.labelled import LabelledSequenceDataModule

    data = LabelledSequenceDataModule(dataset=task, max_train_samples=max_train_samples, seed=seed)
    data.setup("fit")
    return data.frame


def load_pretrained(family: str, device: str = "cpu"):
    """``zoo.load(family, pretrained=True)``; any failure to get the weights raises ``NoWeights``."""
    import zoo

    try:
        return zoo.load(family, pretrained=True, device=device)
    except (ValueError, NotImplementedError, OSError, RuntimeError) as err:
        raise NoWeights(f"{family}: {first_line(err) or type(err).__name__}") from err


def classification_metrics(labels: np.ndarray, proba: np.ndarray) -> dict:
    """Accuracy and AUROC (binary: positive-class score; multiclass: macro one-vs-rest) from ``proba [N, C]``."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    labels = np.asarray(labels)
    accuracy = accuracy_score(labels, proba.argmax(axis=1))
    if len(np.unique(labels)) < 2:
        auroc = float("nan")  # undefined with one class present
    elif proba.shape[1] == 2:
        auroc = roc_auc_score(labels, proba[:, 1])
    else:
        auroc = roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=np.arange(proba.shape[1]))
    return {"accuracy": float(accuracy), "auroc": float(auroc)}


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict:
    """Spearman's and Pearson's correlation of predictions with targets."""
    from scipy.stats import pearsonr, spearmanr

    return {
        "spearman": float(spearmanr(predictions, targets).statistic),
        "pearson": float(pearsonr(predictions, targets).statistic),
    }


def finetune_config(args) -> str:
    """The settings a fine-tuning row depends on (part of its key)."""
    # The pooling is named only when it is not the default, so rows of earlier runs keep their keys.
    pooling = f",pool={args.pooling}" if args.pooling != "mean" else ""
    # Likewise the schedule and the validation protocol, whose earlier runs were constant and last-step.
    schedule = f",sched={args.schedule}" if args.schedule != "constant" else ""
    selection = f",val={args.val_every},patience={args.patience}" if args.val_every else ""
    return (f"steps={args.steps},bs={args.batch_size},lr={args.lr:g},n={args.max_train_samples or 'all'}"
            f"{pooling}{schedule}{selection}")  # fmt: skip


def baseline_config(args, model: str) -> str:
    """The settings a baseline row depends on."""
    extra = f",epochs={args.cnn_epochs}" if model == CNN_MODEL else ""
    return f"n={args.max_train_samples or 'all'}{extra}"


def perplexity_config(args) -> str:
    """The settings a perplexity row depends on."""
    return f"corpus={args.corpus},bases={args.perplexity_bases},chunk={args.chunk_size}"


def zero_shot_config(args) -> str:
    """The settings a zero-shot row depends on."""
    return f"split=test,variants={args.max_variants or 'all'}"


def make_row(part: str, task: str, model: str, init: str, seed: int | str, config: str, **values) -> dict:
    """A CSV row; ``key`` names the run, so a rerun with the same settings finds it."""
    row = dict.fromkeys(COLUMNS)
    row.update(part=part, task=task, model=model, init=init, seed=seed, config=config, status="ok")
    row["key"] = "|".join(str(row[c]) for c in ("part", "task", "model", "init", "seed", "config"))
    row.update(values)
    return row


# Runs ------------------------------------------------------------------------------------------------------


def run_kmer(task: str, seed: int, args) -> dict:
    """``KmerBaseline`` fitted on the train rows, scored on the test rows."""
    from zoo.domains.genomics.baselines import KmerBaseline

    kind, _ = task_spec(task)
    table = labelled_table(task, args.max_train_samples, seed)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    start = time.perf_counter()
    model = KmerBaseline(k=KMER_K, task=kind, seed=seed).fit(train["sequence"].tolist(), train["label"].to_numpy())
    if kind == "classification":
        proba = _proba_in_class_order(model.predict_proba(test["sequence"].tolist()), model.classes_, task)
        metrics = classification_metrics(test["label"].to_numpy(), proba)
    else:
        metrics = regression_metrics(test["label"].to_numpy(), model.predict(test["sequence"].tolist()))
    return make_row("finetune", task, KMER_MODEL, "-", seed, baseline_config(args, KMER_MODEL), n=len(train),
                    seconds=time.perf_counter() - start, **metrics)  # fmt: skip


def run_cnn(task: str, seed: int, args) -> dict:
    """``CNNBaseline`` trained on the train rows with early stopping on the val rows, scored on the test rows."""
    from zoo.domains.genomics.baselines import CNNBaseline

    kind, num_classes = task_spec(task)
    table = labelled_table(task, args.max_train_samples, seed)
    train, val, test = (table[table["split"] == split] for split in ("train", "val", "test"))
    start = time.perf_counter()
    model = CNNBaseline(kind, num_classes or None, epochs=args.cnn_epochs, seed=seed)
    model.fit(train["sequence"].tolist(), train["label"].to_numpy(), val["sequence"].tolist(), val["label"].to_numpy())
    if kind == "classification":
        proba = _proba_in_class_order(model.predict_proba(test["sequence"].tolist()), model.classes_, task)
        metrics = classification_metrics(test["label"].to_numpy(), proba)
    else:
        metrics = regression_metrics(test["label"].to_numpy(), model.predict(test["sequence"].tolist()))
    params = sum(p.numel() for p in model.net.parameters())
    return make_row("finetune", task, CNN_MODEL, "scratch", seed, baseline_config(args, CNN_MODEL), n=len(train),
                    params=params, seconds=time.perf_counter() - start, **metrics)  # fmt: skip


def _proba_in_class_order(proba: np.ndarray, classes: np.ndarray, task: str) -> np.ndarray:
    """``[N, C]`` probabilities with column ``c`` = class index ``c`` (a class absent from a small train subset
    gets probability 0)."""
    _, num_classes = task_spec(task)
    out = np.zeros((len(proba), max(num_classes, int(np.max(classes)) + 1)))
    out[:, np.asarray(classes, dtype=int)] = proba
    return out


def run_finetune(task: str, family: str, pretrained: bool, seed: int, args) -> dict:
    """Fine-tune ``family`` (pretrained or from scratch) for at most ``args.steps`` steps; test metrics of the
    checkpoint with the lowest val loss (``args.val_every`` > 0) or of the model after the last step."""
    import lightning.pytorch as pl
    import torch

    from zoo.domains.genomics.labelled import LabelledSequenceDataModule
    from zoo.training.schedules import WarmupCosineLR
    from zoo.training.sequence_tasks import SequenceClassificationTask, SequenceRegressionTask

    kind, num_classes = task_spec(task)
    init = "pretrained" if pretrained else "scratch"
    row = partial(make_row, "finetune", task, family, init, seed, finetune_config(args))
    pl.seed_everything(seed, workers=True, verbose=False)
    optimizer = partial(torch.optim.AdamW, lr=args.lr, weight_decay=0.01)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = partial(WarmupCosineLR, warmup_steps=max(1, args.steps // 20), total_steps=args.steps)
    common = dict(entry=family, pretrained=pretrained, pooling=args.pooling, optimizer=optimizer, scheduler=scheduler)
    try:
        if kind == "classification":
            module = SequenceClassificationTask(num_classes=num_classes, **common)
        else:
            module = SequenceRegressionTask(**common)
    except (ValueError, NotImplementedError, OSError) as err:  # RecipeError is a ValueError
        if not pretrained:
            raise
        return row(status=NO_WEIGHTS, note=str(err).splitlines()[0][:200])
    data = LabelledSequenceDataModule(dataset=task, batch_size=args.batch_size,
                                      max_train_samples=args.max_train_samples, seed=seed)  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        callbacks, validation = [], dict(limit_val_batches=0, enable_checkpointing=False)
        if args.val_every:
            best = pl.callbacks.ModelCheckpoint(dirpath=tmp, monitor="val/loss", mode="min", save_top_k=1)
            stop = pl.callbacks.EarlyStopping(monitor="val/loss", mode="min", patience=args.patience)
            callbacks = [best, stop]
            validation = dict(val_check_interval=min(args.val_every, args.steps), check_val_every_n_epoch=None)
        trainer = pl.Trainer(
            accelerator=args.device, devices=1, max_steps=args.steps, max_epochs=-1, logger=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp,
            callbacks=callbacks, **validation,
        )  # fmt: skip
        trainer.fit(module, datamodule=data)
        note = ""
        if args.val_every:
            best_step = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["global_step"]
            note = f"best val loss at step {best_step}, stopped at {trainer.global_step}"
        (metrics,) = trainer.test(module, datamodule=data, verbose=False, ckpt_path="best" if args.val_every else None)
    values = {name: float(metrics[f"test/{name}"]) for name in ("accuracy", "auroc", "spearman", "pearson")
              if f"test/{name}" in metrics}  # fmt: skip
    params = sum(p.numel() for p in module.model.parameters())
    return row(params=params, seconds=time.perf_counter() - start, note=note, **values)


def _test_pieces(corpus: str, bases: int) -> list[tuple[str, np.ndarray]]:
    """``(segment key, ids)`` of the first ``bases`` bases of each test segment of ``corpus``."""
    from zoo.domains.genomics.corpus import CORPORA
    from zoo.domains.genomics.genomes import load_genome

    pieces = []
    for segment in CORPORA[corpus].test:
        ids = load_genome(segment.genome).chromosomes[segment.chrom]
        end = len(ids) if segment.end is None else segment.end
        pieces.append((segment.key, np.asarray(ids[segment.start : min(segment.start + bases, end)])))
    return pieces


def run_perplexity(family: str, args) -> dict:
    """Bits per base of the pretrained ``family`` on the corpus test pieces (pooled over the scored bases).

    Models with attention layers cannot stream (their KV cache grows); they are scored in independent chunks
    of ``--chunk-size`` bases with 1,024 bases of left context each. Bidirectional models give no next-base
    probability: their row says so.
    """
    from zoo.domains.genomics.inference import check_streamable, score_sequence
    from zoo.domains.genomics.tokenizer import DNATokenizer

    row = partial(make_row, "perplexity", args.corpus, family, "pretrained", "-", perplexity_config(args))
    try:
        model = load_pretrained(family, args.device)
    except NoWeights as err:
        return row(status=NO_WEIGHTS, note=str(err)[:200])
    params = sum(p.numel() for p in model.parameters())
    if not model.backbone.causal or model.config.rc_equivariant:
        return row(status="n/a: bidirectional (no next-base probability)", params=params)
    try:
        check_streamable(model)
        options = {}
    except ValueError:
        options = {"independent_chunks": True, "overlap": 1024}
    tokenizer, total, scored = DNATokenizer(), 0.0, 0
    start = time.perf_counter()
    for _, ids in _test_pieces(args.corpus, args.perplexity_bases):
        bits = -score_sequence(model, tokenizer.decode(ids), chunk_size=args.chunk_size, unit="bits", **options)
        bits = bits[1:]  # the first base is scored against a BOS never seen in training
        total, scored = total + float(np.nansum(bits, dtype=np.float64)), scored + int(np.isfinite(bits).sum())
    note = "independent chunks" if options else ""
    return row(bits_per_base=total / scored, bases=scored, params=params, seconds=time.perf_counter() - start,
               note=note)  # fmt: skip


def run_markov(order: int, args) -> dict:
    """``MarkovBaseline(order)`` counted on the corpus train segments, scored on the same test pieces."""
    from zoo.domains.genomics.baselines import MarkovBaseline
    from zoo.domains.genomics.corpus import CORPORA
    from zoo.domains.genomics.genomes import load_genome

    start = time.perf_counter()
    train = []
    for segment in CORPORA[args.corpus].train:
        train.append(load_genome(segment.genome).chromosomes[segment.chrom][segment.start : segment.end])
    model = MarkovBaseline(order).fit(train)
    total, scored = 0.0, 0
    for _, ids in _test_pieces(args.corpus, args.perplexity_bases):
        bits = model.per_base_bits(ids)
        total, scored = total + float(np.nansum(bits)), scored + int(np.isfinite(bits).sum())
    return make_row("perplexity", args.corpus, f"markov-{order}", "counts", "-", perplexity_config(args),
                    bits_per_base=total / scored, bases=scored, params=4 ** (order + 1),
                    seconds=time.perf_counter() - start)  # fmt: skip


def run_zero_shot(family: str, args) -> dict:
    """Spearman of the pretrained ``family``'s score of each ARS1 test variant against wild type vs log enrichment."""
    from scipy.stats import spearmanr

    from zoo.domains.genomics import datasets, variants

    row = partial(make_row, "zero-shot", "ars1", family, "pretrained", "-", zero_shot_config(args))
    try:
        model = load_pretrained(family, args.device)
    except NoWeights as err:
        return row(status=NO_WEIGHTS, note=str(err)[:200])
    frame = datasets.load_ars1_variants()
    frame = frame[frame["split"] == "test"]
    if args.max_variants is not None and len(frame) > args.max_variants:
        frame = frame.sample(n=args.max_variants, random_state=0)
    start = time.perf_counter()
    scores = variants.score_sequences_against(model, datasets.ARS1_WILDTYPE, frame["sequence"].tolist())
    if isinstance(scores, pd.DataFrame):
        scores = scores["score"]
    rho = spearmanr(np.asarray(scores, dtype=np.float64), frame["log_enrichment"].to_numpy()).statistic
    return row(spearman=float(rho), n=len(frame), params=sum(p.numel() for p in model.parameters()),
               seconds=time.perf_counter() - start)  # fmt: skip


# Plan, resume, render --------------------------------------------------------------------------------------


def plan(args) -> list[tuple[tuple, Callable[[], dict]]]:
    """Every run the arguments ask for: ``(make_row arguments, thunk)``; the thunk returns that row, filled."""
    runs = []

    def add(row_args: tuple, thunk: Callable[[], dict]) -> None:
        runs.append((row_args, thunk))

    if "finetune" in args.parts:
        for task in args.tasks:
            for seed in args.seeds:
                for family in args.families:
                    for pretrained in (True, False):
                        init = "pretrained" if pretrained else "scratch"
                        add(("finetune", task, family, init, seed, finetune_config(args)),
                            partial(run_finetune, task, family, pretrained, seed, args))  # fmt: skip
                add(("finetune", task, KMER_MODEL, "-", seed, baseline_config(args, KMER_MODEL)),
                    partial(run_kmer, task, seed, args))  # fmt: skip
                add(("finetune", task, CNN_MODEL, "scratch", seed, baseline_config(args, CNN_MODEL)),
                    partial(run_cnn, task, seed, args))  # fmt: skip
    if "perplexity" in args.parts:
        for family in args.families:
            add(("perplexity", args.corpus, family, "pretrained", "-", perplexity_config(args)),
                partial(run_perplexity, family, args))  # fmt: skip
        for order in args.markov_orders:
            add(("perplexity", args.corpus, f"markov-{order}", "counts", "-", perplexity_config(args)),
                partial(run_markov, order, args))  # fmt: skip
    if "zero-shot" in args.parts:
        for family in args.families:
            add(("zero-shot", "ars1", family, "pretrained", "-", zero_shot_config(args)),
                partial(run_zero_shot, family, args))  # fmt: skip
    return runs


def read_runs(path: Path) -> pd.DataFrame:
    """The run CSV (empty with the right columns if absent)."""
    return run_table.read_runs(path, COLUMNS, "benchmarks/genomics.py")


def run(args, console: Console | None = None) -> pd.DataFrame:
    """Run every planned run not already ``ok`` in ``args.out`` (all with ``args.force``), saving after each;
    the whole table (old and new rows) comes back (see ``run_table.run_planned``)."""
    return run_table.run_planned(read_runs(args.out), plan(args), make_row, args.out, args.force, _describe,
                                 "genomics benchmark", console or Console())  # fmt: skip


def _describe(row: dict) -> str:
    values = [f"{m}={row[m]:.3f}" for m in ("accuracy", "auroc", "spearman", "bits_per_base")
              if row.get(m) is not None and np.isfinite(row[m])]  # fmt: skip
    return f"{row['key']}: {row['status']} {' '.join(values)}"


def summarise(frame: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Mean, sample std and count over seeds of ``metrics`` per (task, model, init), ``ok`` rows only."""
    ok = frame[frame["status"] == "ok"]
    grouped = ok.groupby(["task", "model", "init"], sort=False)[list(metrics)]
    return grouped.agg(["mean", "std", "count"])


def mean_std(mean: float, std: float, count: int) -> str:
    """``0.812 ± 0.010`` (sample std over seeds), ``0.812`` for a single seed, empty when missing."""
    if count == 0 or not np.isfinite(mean):
        return ""
    return f"{mean:.3f}" if count < 2 else f"{mean:.3f} ± {std:.3f}"


def render(frame: pd.DataFrame, args, command: str) -> str:
    """The markdown section of RESULTS.md from the run table, restricted to the runs ``args`` asks for."""
    import torch

    lines = [
        "## Genomics: fine-tuning vs scratch vs baselines, perplexity, ARS1 zero-shot (`benchmarks/genomics.py`)",
        "",
        f"Machine: {machine()}, torch {torch.__version__}; device {args.device}; run {time.strftime('%Y-%m-%d')}.",
        "",
        f"Command: `{command}`",
        "",
    ]
    if "finetune" in args.parts:
        lines += _render_finetune(frame, args)
    if "perplexity" in args.parts:
        lines += _render_perplexity(frame, args)
    if "zero-shot" in args.parts:
        lines += _render_zero_shot(frame, args)
    return "\n".join(lines).rstrip()


def _render_finetune(frame: pd.DataFrame, args) -> list[str]:
    configs = {finetune_config(args), baseline_config(args, KMER_MODEL), baseline_config(args, CNN_MODEL)}
    runs = selected(frame, "finetune", configs)
    runs = runs[runs["task"].isin(args.tasks) & runs["seed"].astype(str).isin([str(s) for s in args.seeds])]
    lines = [
        "### Fine-tuning and baselines (test split)",
        "",
        f"Same budget for pretrained and scratch: at most {args.steps} AdamW steps, lr {args.lr:g} "
        f"({_schedule_words(args)}), batch {args.batch_size}, {args.pooling} pooling; {_selection_words(args)}. "
        "Train rows: "
        f"{args.max_train_samples or 'all'} (a seeded subset). {KMER_MODEL}: canonical {KMER_K}-mer frequencies + "
        f"logistic / ridge regression; cnn: one-hot CNN ({args.cnn_epochs} epochs at most, early stopping on val "
        f"loss). Mean ± sample std over seeds {', '.join(map(str, args.seeds))} (n = seeds that ran).",
        "",
        "| task | model | init | n | accuracy | AUROC | Spearman | status |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    metrics = ("accuracy", "auroc", "spearman")
    stats = summarise(runs, metrics) if len(runs) else None
    for task in args.tasks:
        for model, init in _method_order(args):
            mine = runs[(runs["task"] == task) & (runs["model"] == model) & (runs["init"] == init)]
            if not len(mine):
                continue
            count = int((mine["status"] == "ok").sum())
            cells = []
            for metric in metrics:
                if stats is not None and (task, model, init) in stats.index:
                    s = stats.loc[(task, model, init), metric]
                    cells.append(mean_std(s["mean"], s["std"], int(s["count"])))
                else:
                    cells.append("")
            status = "ok" if count == len(mine) else "; ".join(sorted(set(mine["status"]) - {"ok"}))
            lines.append(f"| {task} | {model} | {init} | {count} | " + " | ".join(cells) + f" | {status} |")
    lines += ["", *render_targets(runs, args), ""]
    return lines


def _schedule_words(args) -> str:
    return "5% linear warm-up, cosine decay to 10%" if args.schedule == "cosine" else "constant"


def _selection_words(args) -> str:
    if not args.val_every:
        return "metrics of the model after the last step"
    return (
        f"validated every {args.val_every} steps, stopped after {args.patience} validations without a lower "
        "val loss, metrics of the checkpoint with the lowest val loss (the step is in the run CSV's note)"
    )


def _method_order(args) -> list[tuple[str, str]]:
    methods = [(family, init) for family in args.families for init in ("pretrained", "scratch")]
    return [*methods, (KMER_MODEL, "-"), (CNN_MODEL, "scratch")]


def render_targets(runs: pd.DataFrame, args) -> list[str]:
    """Targets on each classification task (mean accuracy over seeds): pretrained beats scratch and 6-mers."""
    lines = [
        "Targets (classification tasks, mean test accuracy over seeds): pretrained beats scratch; pretrained "
        f"beats the {KMER_MODEL} baseline.",
        "",
        f"| task | family | pretrained > scratch | pretrained > {KMER_MODEL} |",
        "|---|---|---|---|",
    ]
    ok = runs[runs["status"] == "ok"]
    mean = ok.groupby(["task", "model", "init"])["accuracy"].mean()
    for task in args.tasks:
        if task_spec(task)[0] != "classification":
            continue
        for family in args.families:
            pretrained = mean.get((task, family, "pretrained"))
            verdicts = []
            for other in ((task, family, "scratch"), (task, KMER_MODEL, "-")):
                if pretrained is None or not np.isfinite(pretrained):
                    verdicts.append(f"n/a ({NO_WEIGHTS} or not run)")
                elif other not in mean.index:
                    verdicts.append("n/a (not run)")
                else:
                    verdicts.append(f"{'yes' if pretrained > mean[other] else 'no'} "
                                    f"({pretrained:.3f} vs {mean[other]:.3f})")  # fmt: skip
            lines.append(f"| {task} | {family} | {verdicts[0]} | {verdicts[1]} |")
    return lines


def _render_perplexity(frame: pd.DataFrame, args) -> list[str]:
    runs = selected(frame, "perplexity", {perplexity_config(args)})
    lines = [
        f"### Held-out perplexity ({args.corpus} test segments)",
        "",
        f"Bits per base on the first {args.perplexity_bases:,} bases of each test segment, pooled over the scored "
        "bases (the first base of each piece, scored against an untrained BOS, is left out); Markov rows are "
        "order-k models counted on the corpus train segments (their first k bases per piece are unscored). "
        "`params` of a Markov model = its 4^(k+1) counts.",
        "",
        "| model | params | bits/base | bases scored | status |",
        "|---|---:|---:|---:|---|",
    ]
    for model in [*args.families, *(f"markov-{k}" for k in args.markov_orders)]:
        for _, r in runs[runs["model"] == model].iterrows():
            params = "" if pd.isna(r["params"]) else count(float(r["params"]))
            bpb = "" if pd.isna(r["bits_per_base"]) else f"{float(r['bits_per_base']):.3f}"
            bases = "" if pd.isna(r["bases"]) else f"{int(r['bases']):,}"
            note = r["note"] if r["status"] == "ok" and isinstance(r["note"], str) and r["note"] else ""
            status = r["status"] + (f" ({note})" if note else "")
            lines.append(f"| {model} | {params} | {bpb} | {bases} | {status} |")
    return [*lines, ""]


def _render_zero_shot(frame: pd.DataFrame, args) -> list[str]:
    runs = selected(frame, "zero-shot", {zero_shot_config(args)})
    lines = [
        "### ARS1 zero-shot (test split)",
        "",
        "Spearman's rho between `score_sequences_against(model, ARS1_WILDTYPE, variants)` and the measured log "
        f"enrichment; {args.max_variants or 'all'} test variants.",
        "",
        "| model | Spearman | variants | status |",
        "|---|---:|---:|---|",
    ]
    for family in args.families:
        for _, r in runs[runs["model"] == family].iterrows():
            rho = "" if pd.isna(r["spearman"]) else f"{float(r['spearman']):.3f}"
            n = "" if pd.isna(r["n"]) else f"{int(r['n']):,}"
            lines.append(f"| {family} | {rho} | {n} | {r['status']} |")
    return [*lines, ""]


# Command line ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments, with ``--quick`` applied to the sizes not given explicitly."""
    words = partial(str.split, sep=",")
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=words, default=list(TASKS), help="comma-separated labelled tasks")
    parser.add_argument("--families", type=words, default=list(FAMILIES), help="comma-separated zoo entries")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per fine-tuning run (at most)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                        help="learning rate over the fine-tuning steps: warm-up + cosine decay, or flat")  # fmt: skip
    parser.add_argument("--val-every", type=int, default=250,
                        help="validate every N steps, early-stop and test the best val-loss checkpoint (0: test "
                             "the model after the last step)")  # fmt: skip
    parser.add_argument("--patience", type=int, default=3, help="validations without a lower val loss before stopping")
    parser.add_argument("--pooling", choices=("mean", "max", "last", "cls"), default="mean",
                        help="how the fine-tuning head pools the hidden states")  # fmt: skip
    parser.add_argument("--max-train-samples", type=int, default=None, help="seeded subset of the train rows")
    parser.add_argument("--cnn-epochs", type=int, default=20)
    parser.add_argument("--parts", type=words, default=["finetune", "perplexity", "zero-shot"])
    parser.add_argument("--corpus", default="dna-corpus")
    parser.add_argument("--perplexity-bases", type=int, default=200_000, help="bases scored per test segment")
    parser.add_argument("--chunk-size", type=int, default=8192, help="chunk of score_sequence")
    parser.add_argument("--markov-orders", type=ints, default=[2, 5, 8])
    parser.add_argument("--max-variants", type=int, default=None, help="ARS1 test variants scored (default all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (QUICK sizes, unless given explicitly)")
    parser.add_argument("--force", action="store_true", help="recompute runs already in --out")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: render the section from the rows already in --out (e.g. several runs' CSVs "
                             "concatenated); planned runs without a row are shown as missing")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "genomics_runs.csv", help="run table (CSV)")
    parser.add_argument("--write", type=Path, default=None,
                        help="results file to update (default benchmarks/RESULTS.md; none with --quick; "
                             "'--write none' writes no file: runs only fill --out)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):  # an explicit flag wins over the preset
                setattr(args, name, value)
    elif args.write is None:
        args.write = ROOT / "RESULTS.md"
    if args.write is not None and str(args.write).lower() == "none":
        args.write = None
    unknown = sorted(set(args.parts) - {"finetune", "perplexity", "zero-shot"})
    if unknown:
        parser.error(f"unknown --parts {unknown}; choose from finetune, perplexity, zero-shot")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run, then print (and write) the section."""
    args = parse_args(argv)
    # Lightning announces the accelerator and seed on every Trainer; one line per run is enough.
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console()
    frame = read_runs(args.out) if args.report_only else run(args, console)
    command = shlex.join(["python", "benchmarks/genomics.py", *(sys.argv[1:] if argv is None else argv)])
    section = render(frame, args, command)
    console.print(section, markup=False, highlight=False, soft_wrap=True)
    if args.write:
        replace_section(args.write, SECTION, section)


if __name__ == "__main__":
    main()
