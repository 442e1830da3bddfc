"""Protein quality: fine-tuned protein LMs against scratch and linear baselines, held-out perplexity, DMS zero-shot.

Three parts, each writing its rows to one CSV (``--out``) as it goes, so an interrupted run resumes where it
stopped (a row whose status is ``ok`` is skipped; ``--force`` recomputes):

1. **Fine-tuning** (``--tasks``): every family of ``--families`` fine-tuned from its pretrained weights and the
   same architecture from random initialisation, with the same budget (``--steps`` AdamW steps at ``--lr``,
   ``--batch-size``, ``--pooling``; Lightning on ``--device``), plus a linear baseline, for every seed of
   ``--seeds``. Sequence tasks (``localisation``, ``amp``, ``scope-fold``) read
   ``LabelledSequenceDataModule(dataset=task)`` into ``SequenceClassificationTask``; the baseline is
   ``KmerBaseline`` (1..k-mer composition + logistic regression, k in 1..3 chosen on the val split).
   ``secondary-structure-q3`` / ``-q8`` read ``ResidueLabelDataModule(labels="q3"|"q8")`` into
   ``TokenClassificationTask``; the baseline is ``WindowBaseline`` (one-hot ±7 residues + logistic regression on
   ``--baseline-residues`` sampled training residues). Test metrics (accuracy, balanced accuracy, macro F1, all
   from scikit-learn on the same predictions for models and baselines) are those of the model after the last
   step: no checkpoint selection, every model gets exactly the same budget.
2. **Held-out perplexity** (``--corpus``, default ``uniprot-20k``, split by similarity): each pretrained family
   on the first ``--perplexity-sequences`` test sequences (all by default) in the causal layout, without context
   and with the other members of the query's similarity cluster as context (``ProteinLMDataModule(context=
   "cluster", context_loss=False)``): only the query's residues and its ``[EOS]`` are scored, never the
   context. Reported as perplexity and bits per scored token, with parameters and pretraining compute (from
   ``--pretrain-compute``, a JSON file ``{family: {"tokens": ..., "seconds": ...}}``; blank without one).
3. **DMS zero-shot** (``--assays``): Spearman of ``zoo.domains.protein.dms.evaluate(model, assay, method=
   --dms-method, context=...)`` per assay, without context and with ``--homologs`` homologs from
   ``dms.load_homologs(assay)`` (``select_homologs``: the most similar to the wild type by shared 3-mers, the
   wild type itself excluded, ties broken by a seeded shuffle), on a seeded subset of ``--max-mutations``
   mutations (all by default); the BLOSUM62 floor (``dms.substitution_scores``) on the same mutations; published
   ESM-2 / PoET / ProtMamba numbers as separate, labelled rows (never used in our rows' computations).

A family whose pretrained weights cannot be loaded becomes a row with status ``no pretrained weights``.

    python benchmarks/protein.py                                  # everything, CPU (hours)
    python benchmarks/protein.py --quick                          # smoke run: 1 seed, a few steps, small subsets
    python benchmarks/protein.py --parts dms --families protmamba-small --max-mutations 2000
    python benchmarks/protein.py --report-only --out merged.csv   # the section from rows of earlier runs
"""

from __future__ import annotations

import argparse
import json
import logging
import math
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

#: Per-residue tasks: name -> labels of ``ResidueLabelDataModule``.
RESIDUE_TASKS = {"secondary-structure-q3": "q3", "secondary-structure-q8": "q8"}
SEQUENCE_TASKS = ("scope-fold", "localisation", "amp")
TASKS = (*RESIDUE_TASKS, *SEQUENCE_TASKS)
FAMILIES = ("protmamba-small", "prot-xlstm-small", "prot-transformer-small")
ASSAYS = ("ha-doud2016", "env-bf520-haddox2018", "spike-ba1-cell-entry")
#: Assays of viral proteins whose homologs ship with the data: the "context > no context" target.
CONTEXT_ASSAYS = ("ha-doud2016", "env-bf520-haddox2018")
PARTS = ("finetune", "perplexity", "dms")
KMER_MODEL = "kmer-lr"
WINDOW_MODEL = "onehot-window-lr"
BLOSUM_MODEL = "blosum62"
UNIGRAM_MODEL = "unigram"
KMER_KS = (1, 2, 3)
WINDOW = 7
#: k of the k-mer similarity that ranks homologs against the wild type (3-mers: homologs of viral proteins
#: at 60-90% identity still share many; 5-mers would drop the distant ones to zero).
HOMOLOG_K = 3
SECTION = "protein"
NO_WEIGHTS = "no pretrained weights"
ROOT = Path(__file__).resolve().parent
#: Columns of the run CSV, in order; metrics a row does not have stay empty.
COLUMNS = (
    "key", "part", "task", "model", "init", "context", "seed", "config", "status", "accuracy", "balanced_accuracy",
    "f1", "spearman", "nats", "bits", "perplexity", "tokens", "n", "params", "pretrain_tokens", "pretrain_seconds",
    "seconds", "note",
)  # fmt: skip
#: The quick preset (``--quick``): a smoke run of minutes on a laptop CPU.
QUICK = {"seeds": [0], "steps": 4, "batch_size": 4, "max_train_samples": 64, "max_chains": 200, "max_length": 256,
         "baseline_residues": 20_000, "perplexity_sequences": 16, "max_context_tokens": 1024, "max_mutations": 32,
         "homologs": 2}  # fmt: skip
#: Published zero-shot Spearman (higher is better), quoted as reference rows only; protocol in ``protocol``.
PUBLISHED_DMS = (
    ("ha-doud2016", "ESM-2 650M", 0.507, "ProteinGym, all mutations of the assay"),
    ("ha-doud2016", "PoET (homologs as context)", 0.545, "ProteinGym, all mutations of the assay"),
    ("env-bf520-haddox2018", "ESM-2 650M", 0.044, "ProteinGym, all mutations of the assay"),
    ("env-bf520-haddox2018", "PoET (homologs as context)", 0.489, "ProteinGym, all mutations of the assay"),
    ("ProteinGym average (217 assays)", "ESM-2 8M", 0.226, "ProteinGym substitution benchmark"),
    ("ProteinGym average (217 assays)", "ESM-2 35M", 0.321, "ProteinGym substitution benchmark"),
    ("ProteinGym average (217 assays)", "ESM-2 650M", 0.414, "ProteinGym substitution benchmark"),
    ("ProteinGym average (217 assays)", "ProtMamba (homologs / none)", "0.433 / 0.403", "ProtMamba's own notebook"),
)


# Helpers ---------------------------------------------------------------------------------------------------


def _weights(text: str) -> tuple[str, str]:
    """``FAMILY=SOURCE`` of ``--weights``."""
    family, sep, source = text.partition("=")
    if not sep or not family or not source:
        raise argparse.ArgumentTypeError(f"--weights takes FAMILY=SOURCE (e.g. x=local-dir:PATH), got {text!r}")
    return family, source


def load_pretrained(family: str, device: str = "cpu", weights: dict[str, str] | None = None):
    """``zoo.load(family, pretrained=True)``, or ``zoo.load(weights[family])`` when ``--weights`` names a source for
    it (e.g. ``local-dir:PATH`` of a ``zoo export``); any failure to get the weights raises ``NoWeights``."""
    import zoo

    try:
        if weights and family in weights:
            return zoo.load(weights[family], device=device)
        return zoo.load(family, pretrained=True, device=device)
    except (ValueError, NotImplementedError, OSError, RuntimeError) as err:
        raise NoWeights(f"{family}: {first_line(err) or type(err).__name__}") from err


def classification_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, balanced accuracy (mean recall over the classes present) and macro F1 of class predictions."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if len(labels) == 0:
        raise ValueError("no labelled test examples to score")
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, average="macro", labels=np.unique(labels))),
    }


def finetune_config(args) -> str:
    """The settings a fine-tuning row depends on (part of its key)."""
    return (f"steps={args.steps},bs={args.batch_size},lr={args.lr:g},n={args.max_train_samples or 'all'},"
            f"len={args.max_length},chains={args.max_chains or 'all'},pool={args.pooling}")  # fmt: skip


def baseline_config(args, task: str) -> str:
    """The settings a baseline row depends on."""
    if task in RESIDUE_TASKS:
        return f"window={WINDOW},residues={args.baseline_residues or 'all'},chains={args.max_chains or 'all'}"
    return f"k={'/'.join(map(str, KMER_KS))},n={args.max_train_samples or 'all'},len={args.max_length}"


def perplexity_config(args) -> str:
    """The settings a perplexity row depends on."""
    return (f"corpus={args.corpus},seqs={args.perplexity_sequences or 'all'},len={args.max_length},"
            f"ctx={args.max_context_tokens}{_weights_tag(args)}")  # fmt: skip


def _weights_tag(args) -> str:
    """Rows scored with ``--weights`` overrides are other runs than those of the published weights (one tag for
    any override, so runs of several invocations with different ``--weights`` render together)."""
    return ",weights=override" if args.weights else ""


def dms_config(args) -> str:
    """The settings a DMS row depends on."""
    return (f"method={args.dms_method or 'default'},mutations={args.max_mutations or 'all'},homologs={args.homologs}"
            f"{_weights_tag(args)}")  # fmt: skip


def make_row(part: str, task: str, model: str, init: str, context: str, seed: int | str, config: str,
             **values) -> dict:  # fmt: skip
    """A CSV row; ``key`` names the run, so a rerun with the same settings finds it."""
    row = dict.fromkeys(COLUMNS)
    row.update(part=part, task=task, model=model, init=init, context=context, seed=seed, config=config, status="ok")
    row["key"] = "|".join(str(row[c]) for c in ("part", "task", "model", "init", "context", "seed", "config"))
    row.update(values)
    return row


def _first_line(err: BaseException) -> str:
    return first_line(err)[:200] or type(err).__name__


# Fine-tuning -----------------------------------------------------------------------------------------------


def residue_data(task: str, seed: int, args):
    """``ResidueLabelDataModule`` of a secondary-structure task, set up, with the split of seed 0.

    The module's ``seed`` also draws the similarity split (and the ``max_chains`` subset); every seed of the
    benchmark must score on one test set, so the table is read with seed 0 and ``seed`` is then set for the
    training order and crops only (``setup`` has run, so the split is not redrawn).
    """
    from zoo.domains.protein.residues import ResidueLabelDataModule

    data = ResidueLabelDataModule(labels=RESIDUE_TASKS[task], max_chains=args.max_chains, max_length=args.max_length,
                                  batch_size=args.batch_size, seed=0)  # fmt: skip
    data.setup("fit")
    data.seed = seed
    return data


def sequence_data(task: str, seed: int, args):
    """``LabelledSequenceDataModule`` of a named protein task, set up (the seed draws the train subset and order;
    named tasks bring their own split). Sequences past ``--max-length`` keep their first residues."""
    from zoo.domains.genomics.labelled import LabelledSequenceDataModule

    data = LabelledSequenceDataModule(dataset=task, alphabet="protein", batch_size=args.batch_size,
                                      max_train_samples=args.max_train_samples, max_length=args.max_length,
                                      truncate=True, seed=seed)  # fmt: skip
    data.setup("fit")
    return data


def num_classes(task: str) -> int:
    """Classes of a task, from its registry (no data is read)."""
    if task in RESIDUE_TASKS:
        from zoo.domains.protein.structure import CLASSES

        return len(CLASSES[RESIDUE_TASKS[task]])
    from zoo.domains.protein.datasets import get_task

    return len(get_task(task).classes)


def predict_labels(module, loader, device: str, token_level: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(true, predicted)`` classes of every test example (token tasks: every labelled residue) of ``loader``."""
    import torch

    module.to(device).eval()
    truth, predicted = [], []
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            guess = module.predict_logits(batch).argmax(-1)  # [B] or [B, T]
            labels = batch["labels"]
            if token_level:
                keep = batch["attention_mask"] & (labels != -100)
                labels, guess = labels[keep], guess[keep]
            truth.append(labels.cpu().numpy())
            predicted.append(guess.cpu().numpy())
    return np.concatenate(truth), np.concatenate(predicted)


def run_finetune(task: str, family: str, pretrained: bool, seed: int, args) -> dict:
    """Fine-tune ``family`` (pretrained or from scratch) for ``args.steps`` steps; test metrics of the last model."""
    import lightning.pytorch as pl
    import torch

    from zoo.training.sequence_tasks import SequenceClassificationTask, TokenClassificationTask

    init = "pretrained" if pretrained else "scratch"
    row = partial(make_row, "finetune", task, family, init, "-", seed, finetune_config(args))
    token_level = task in RESIDUE_TASKS
    pl.seed_everything(seed, workers=True, verbose=False)
    optimizer = partial(torch.optim.AdamW, lr=args.lr, weight_decay=0.01)
    # The model first: missing weights end the run before any data is read.
    try:
        if token_level:
            module = TokenClassificationTask(num_classes=num_classes(task), entry=family, pretrained=pretrained,
                                             optimizer=optimizer)  # fmt: skip
        else:
            module = SequenceClassificationTask(num_classes=num_classes(task), entry=family, pretrained=pretrained,
                                                pooling=args.pooling, optimizer=optimizer)  # fmt: skip
    except (ValueError, NotImplementedError, OSError) as err:  # RecipeError is a ValueError
        if not pretrained:
            raise
        return row(status=NO_WEIGHTS, note=_first_line(err))
    data = residue_data(task, seed, args) if token_level else sequence_data(task, seed, args)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(
            accelerator=args.device, devices=1, max_steps=args.steps, max_epochs=-1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=tmp,
        )  # fmt: skip
        trainer.fit(module, datamodule=data)
    truth, predicted = predict_labels(module, data.test_dataloader(), args.device, token_level)
    params = sum(p.numel() for p in module.model.parameters())
    return row(params=params, n=len(truth), seconds=time.perf_counter() - start,
               **classification_metrics(truth, predicted))  # fmt: skip


def run_baseline(task: str, seed: int, args) -> dict:
    """The task's linear baseline fitted on the same train rows as the models, scored on the same test rows."""
    from zoo.domains.protein.baselines import WindowBaseline, select_k

    start = time.perf_counter()
    if task in RESIDUE_TASKS:
        from zoo.domains.protein.structure import dssp_to_labels

        data = residue_data(task, seed, args)
        frame = data.frame
        labels = [dssp_to_labels(d, data.labels, data.terminal_coil) for d in frame["dssp"]]
        pieces = {}
        for split in ("train", "test"):
            rows = np.flatnonzero(frame["split"].to_numpy() == split)
            pieces[split] = ([frame["sequence"].iloc[i] for i in rows], [labels[i] for i in rows])
        model = WindowBaseline(window=WINDOW, max_residues=args.baseline_residues, seed=seed).fit(*pieces["train"])
        truth, predicted = model.labelled_predictions(*pieces["test"])
        return make_row("finetune", task, WINDOW_MODEL, "-", "-", seed, baseline_config(args, task), n=len(truth),
                        params=model.model.coef_.size + model.model.intercept_.size,
                        seconds=time.perf_counter() - start, note=f"fitted on {model.n_fit:,} residues",
                        **classification_metrics(truth, predicted))  # fmt: skip
    data = sequence_data(task, seed, args)
    frame = data.frame.assign(sequence=data.frame["sequence"].str[: args.max_length])  # what the models read
    part = {split: frame[frame["split"] == split] for split in ("train", "val", "test")}
    train, val = ((part[s]["sequence"].tolist(), part[s]["label"].to_numpy()) for s in ("train", "val"))
    model, val_scores = select_k(train, val, ks=KMER_KS, seed=seed)
    test = part["test"]
    metrics = classification_metrics(test["label"].to_numpy(), model.predict(test["sequence"].tolist()))
    note = f"k={model.k} (val accuracy " + ", ".join(f"k{k} {v:.3f}" for k, v in val_scores.items()) + ")"
    head = model.pipeline.named_steps["head"]
    return make_row("finetune", task, KMER_MODEL, "-", "-", seed, baseline_config(args, task), n=len(test),
                    params=head.coef_.size + head.intercept_.size, seconds=time.perf_counter() - start, note=note,
                    **metrics)  # fmt: skip


# Perplexity ------------------------------------------------------------------------------------------------


def pretrain_compute(args, family: str) -> dict:
    """``{"pretrain_tokens", "pretrain_seconds"}`` of ``family`` from ``--pretrain-compute`` (empty without)."""
    if args.pretrain_compute is None:
        return {}
    table = json.loads(Path(args.pretrain_compute).read_text())
    entry = table.get(family, {})
    return {"pretrain_tokens": entry.get("tokens"), "pretrain_seconds": entry.get("seconds")}


def run_perplexity(family: str, context: str, args) -> dict:
    """Nats per scored token (query residues + ``[EOS]``) of the pretrained ``family`` on the corpus test split."""
    import torch
    import torch.nn.functional as F

    from zoo.domains.protein.data import ProteinLMDataModule

    row = partial(make_row, "perplexity", args.corpus, family, "pretrained", context, "-", perplexity_config(args))
    try:
        model = load_pretrained(family, args.device, args.weights)
    except NoWeights as err:
        return row(status=NO_WEIGHTS, note=str(err)[:200])
    params = sum(p.numel() for p in model.parameters())
    if not model.backbone.causal:
        return row(status="n/a: bidirectional (no next-token probability)", params=params)
    # context_loss=False: labels only on the query's residues and [EOS]; the homologs are read, never scored.
    data = ProteinLMDataModule(
        corpus=args.corpus, objective="causal", context=context, context_loss=False, max_length=args.max_length,
        max_context_tokens=args.max_context_tokens, max_test_sequences=args.perplexity_sequences,
        batch_size=args.batch_size, seed=0,
    )  # fmt: skip
    data.setup()
    dataset = data.dataset("test")
    with_context = sum(bool(dataset.homologs(int(r), None)) for r in dataset.rows) if context != "none" else 0
    start, nats, tokens = time.perf_counter(), 0.0, 0
    model.eval()
    with torch.inference_mode():
        for batch in data.test_dataloader():
            labels = batch["labels"].to(args.device)
            logits = model(batch["input_ids"].to(args.device)).logits.float()  # [B, T, V]
            losses = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="sum")
            nats, tokens = nats + float(losses), tokens + int((labels != -100).sum())
    mean = nats / tokens
    note = f"{with_context} of {len(dataset)} queries have homologs" if context != "none" else ""
    return row(nats=mean, bits=mean / math.log(2), perplexity=math.exp(mean), tokens=tokens, n=len(dataset),
               params=params, seconds=time.perf_counter() - start, note=note,
               **pretrain_compute(args, family))  # fmt: skip


def run_unigram(args) -> dict:
    """The composition floor: each token scored by its frequency among the train split's query tokens (residues
    and one ``[EOS]`` per sequence, add-one smoothed), on exactly the tokens the models' perplexity rows score."""
    from zoo.domains.protein.corpus import load_corpus
    from zoo.domains.protein.data import ProteinLMDataModule
    from zoo.domains.protein.layout import EOS_ID
    from zoo.domains.protein.tokenizer import ProteinTokenizer
    from zoo.vocab import PROTEIN_TOKENS

    row = partial(make_row, "perplexity", args.corpus, UNIGRAM_MODEL, "counts", "none", "-", perplexity_config(args))
    options = {"corpus": args.corpus, "objective": "causal", "context": "none", "context_loss": False,
               "max_length": args.max_length, "batch_size": args.batch_size, "seed": 0}  # fmt: skip
    data = ProteinLMDataModule(**options, max_test_sequences=args.perplexity_sequences)
    data.setup()
    corpus = load_corpus(args.corpus)
    tokenizer = ProteinTokenizer()
    counts = np.zeros(len(PROTEIN_TOKENS), dtype=np.int64)
    for index in corpus.indices("train"):
        counts += np.bincount(tokenizer.encode(corpus.sequences[index]), minlength=len(counts))
    counts[EOS_ID] += len(corpus.indices("train"))
    log_p = np.log((counts + 1) / (counts + 1).sum())
    nats, tokens = 0.0, 0
    for batch in data.test_dataloader():
        labels = batch["labels"][batch["labels"] != -100].numpy()
        nats, tokens = nats - float(log_p[labels].sum()), tokens + len(labels)
    mean = nats / tokens
    return row(nats=mean, bits=mean / math.log(2), perplexity=math.exp(mean), tokens=tokens,
               n=len(data.dataset("test")), params=int((counts > 0).sum()))  # fmt: skip


# DMS -------------------------------------------------------------------------------------------------------


def select_homologs(wildtype: str, homologs: list[str], n: int, seed: int = 0, k: int = HOMOLOG_K) -> list[str]:
    """The ``n`` homologs sharing the largest fraction of ``k``-mers with ``wildtype`` (``similarity.
    shared_fraction``), most similar first; sequences identical to the wild type are left out (the assay's own
    strain would hand the model the answer's sequence), ties are broken by a shuffle seeded by ``seed``."""
    from zoo.domains.protein.similarity import kmer_matrix, shared_fraction

    if n < 0:
        raise ValueError(f"the number of homologs must be >= 0, got {n}")
    candidates = list(dict.fromkeys(h for h in homologs if h != wildtype))  # distinct, in source order
    if n == 0 or not candidates:
        return []
    order = np.random.default_rng(seed).permutation(len(candidates))
    candidates = [candidates[i] for i in order]
    matrix = kmer_matrix([wildtype, *candidates], k)
    pairs = np.stack([np.zeros(len(candidates), dtype=np.int64), np.arange(1, len(candidates) + 1)], axis=1)
    shared = shared_fraction(matrix, pairs)
    best = np.argsort(-shared, kind="stable")[:n]
    return [candidates[i] for i in best]


def _assay_subset(assay, args):
    """The assay with a seeded subset of ``--max-mutations`` mutations (the same for every row)."""
    import dataclasses

    table = assay.mutations
    if args.max_mutations is not None and args.max_mutations < len(table):
        rows = np.sort(np.random.default_rng(0).choice(len(table), size=args.max_mutations, replace=False))
        table = table.iloc[rows].reset_index(drop=True)
    return dataclasses.replace(assay, mutations=table)


def run_dms(assay_name: str, family: str, context: str, args) -> dict:
    """Spearman of the pretrained ``family``'s zero-shot scores on ``assay_name``, with or without homologs."""
    from zoo.domains.protein import dms

    row = partial(make_row, "dms", assay_name, family, "pretrained", context, "-", dms_config(args))
    if context == "homologs" and dms.ASSAYS[assay_name].homologs is None:
        return row(status="n/a: no homologs ship with this assay")
    try:
        model = load_pretrained(family, args.device, args.weights)
    except NoWeights as err:
        return row(status=NO_WEIGHTS, note=str(err)[:200])
    assay = _assay_subset(dms.load_assay(assay_name), args)
    homologs = None
    if context == "homologs":
        homologs = select_homologs(assay.wildtype, dms.load_homologs(assay_name), args.homologs)
    start = time.perf_counter()
    result = dms.evaluate(model, assay, method=args.dms_method, context=homologs, batch_size=args.dms_batch_size)
    note = f"{len(homologs)} homologs, {sum(map(len, homologs)):,} residues" if homologs else ""
    return row(spearman=result["spearman"], n=result["n"], params=sum(p.numel() for p in model.parameters()),
               seconds=time.perf_counter() - start, note=note)  # fmt: skip


def run_blosum(assay_name: str, args) -> dict:
    """The BLOSUM62 floor on the same mutations as the model rows."""
    from scipy.stats import spearmanr

    from zoo.domains.protein import dms

    assay = _assay_subset(dms.load_assay(assay_name), args)
    rho = spearmanr(dms.substitution_scores(assay), assay.mutations["score"].to_numpy()).statistic
    return make_row("dms", assay_name, BLOSUM_MODEL, "-", "none", "-", dms_config(args), spearman=float(rho),
                    n=len(assay.mutations))  # fmt: skip


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
                        add(("finetune", task, family, init, "-", seed, finetune_config(args)),
                            partial(run_finetune, task, family, pretrained, seed, args))  # fmt: skip
                baseline = WINDOW_MODEL if task in RESIDUE_TASKS else KMER_MODEL
                add(("finetune", task, baseline, "-", "-", seed, baseline_config(args, task)),
                    partial(run_baseline, task, seed, args))  # fmt: skip
    if "perplexity" in args.parts:
        add(("perplexity", args.corpus, UNIGRAM_MODEL, "counts", "none", "-", perplexity_config(args)),
            partial(run_unigram, args))  # fmt: skip
        for family in args.families:
            for context in ("none", "cluster"):
                add(("perplexity", args.corpus, family, "pretrained", context, "-", perplexity_config(args)),
                    partial(run_perplexity, family, context, args))  # fmt: skip
    if "dms" in args.parts:
        for assay in args.assays:
            for family in args.families:
                for context in ("none", "homologs"):
                    add(("dms", assay, family, "pretrained", context, "-", dms_config(args)),
                        partial(run_dms, assay, family, context, args))  # fmt: skip
            add(("dms", assay, BLOSUM_MODEL, "-", "none", "-", dms_config(args)), partial(run_blosum, assay, args))
    return runs


def read_runs(path: Path) -> pd.DataFrame:
    """The run CSV (empty with the right columns if absent)."""
    return run_table.read_runs(path, COLUMNS, "benchmarks/protein.py", text_columns=("context",))


def run(args, console: Console | None = None) -> pd.DataFrame:
    """Run every planned run not already ``ok`` in ``args.out`` (all with ``args.force``), saving after each;
    the whole table (old and new rows) comes back (see ``run_table.run_planned``)."""
    return run_table.run_planned(read_runs(args.out), plan(args), make_row, args.out, args.force, _describe,
                                 "protein benchmark", console or Console(), tidy=_numeric)  # fmt: skip


#: Columns of numbers (rows without a value hold NaN, so the columns stay numeric).
NUMERIC = ("accuracy", "balanced_accuracy", "f1", "spearman", "nats", "bits", "perplexity", "tokens", "n", "params",
           "pretrain_tokens", "pretrain_seconds", "seconds")  # fmt: skip


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    return run_table.as_numeric(frame, NUMERIC)


def _describe(row: dict) -> str:
    values = [f"{m}={row[m]:.3f}" for m in ("accuracy", "spearman", "bits")
              if row.get(m) is not None and np.isfinite(row[m])]  # fmt: skip
    return f"{row['key']}: {row['status']} {' '.join(values)}"


def mean_std(values: pd.Series) -> str:
    """``0.812 ± 0.010`` (sample std over seeds), ``0.812`` for a single value, empty when none."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if len(values) == 0:
        return ""
    return f"{values.mean():.3f}" if len(values) < 2 else f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _status(rows: pd.DataFrame) -> str:
    bad = sorted(set(rows["status"]) - {"ok"})
    return "ok" if not bad else "; ".join(bad)


def render(frame: pd.DataFrame, args, command: str) -> str:
    """The markdown section of RESULTS.md from the run table, restricted to the runs ``args`` asks for."""
    import torch

    lines = [
        "## Protein: fine-tuning vs scratch vs linear baselines, held-out perplexity, DMS zero-shot "
        "(`benchmarks/protein.py`)",
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
    if "dms" in args.parts:
        lines += _render_dms(frame, args)
    lines += render_targets(frame, args)
    return "\n".join(lines).rstrip()


def _finetune_runs(frame: pd.DataFrame, args) -> pd.DataFrame:
    configs = {finetune_config(args), *(baseline_config(args, t) for t in args.tasks)}
    runs = selected(frame, "finetune", configs)
    return runs[runs["task"].isin(args.tasks) & runs["seed"].astype(str).isin([str(s) for s in args.seeds])]


def _render_finetune(frame: pd.DataFrame, args) -> list[str]:
    runs = _finetune_runs(frame, args)
    lines = [
        "### Fine-tuning and baselines (test split)",
        "",
        f"Same budget for pretrained and scratch: {args.steps} AdamW steps, lr {args.lr:g}, batch {args.batch_size}, "
        f"{args.pooling} pooling (sequence tasks), crops of {args.max_length} residues; metrics of the model after "
        f"the last step. Train rows: {args.max_train_samples or 'all'} (sequence tasks, a seeded subset); secondary "
        f"structure chains: {args.max_chains or 'all'}. {KMER_MODEL}: composition of 1..k-mers + logistic "
        f"regression, k in {'/'.join(map(str, KMER_KS))} chosen on the val split (status column); {WINDOW_MODEL}: "
        f"one-hot residues ±{WINDOW} + logistic regression on {args.baseline_residues or 'all'} sampled training "
        f"residues. Accuracy per residue for secondary structure; balanced accuracy = mean recall over classes. "
        f"Mean ± sample std over seeds {', '.join(map(str, args.seeds))} (n = seeds that ran). Published "
        "reference (other data, not comparable row by row): TAPE Q3 0.73-0.75 (pretrained LSTM / Transformer, "
        "CB513); TAPE remote homology top-1 0.21-0.26 (1,195 folds; scope-fold here has 339).",
        "",
        "| task | model | init | n | accuracy | balanced acc. | macro F1 | status |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for task in args.tasks:
        for model, init in _method_order(args, task):
            mine = runs[(runs["task"] == task) & (runs["model"] == model) & (runs["init"] == init)]
            if not len(mine):
                continue
            ok = mine[mine["status"] == "ok"]
            cells = [mean_std(ok[m]) for m in ("accuracy", "balanced_accuracy", "f1")]
            status = _status(mine)
            notes = ok["note"].dropna().astype(str)
            if model == KMER_MODEL and len(notes):
                status += f" ({'; '.join(sorted(set(n.split(' (')[0] for n in notes)))})"
            lines.append(f"| {task} | {model} | {init} | {len(ok)} | " + " | ".join(cells) + f" | {status} |")
    return [*lines, ""]


def _method_order(args, task: str) -> list[tuple[str, str]]:
    methods = [(family, init) for family in args.families for init in ("pretrained", "scratch")]
    return [*methods, (WINDOW_MODEL if task in RESIDUE_TASKS else KMER_MODEL, "-")]


def _cell(value, fmt: str = "{:.3f}") -> str:
    return "" if value is None or pd.isna(value) else fmt.format(float(value))


def _render_perplexity(frame: pd.DataFrame, args) -> list[str]:
    runs = selected(frame, "perplexity", {perplexity_config(args)})
    lines = [
        f"### Held-out perplexity ({args.corpus} test split, held out by similarity)",
        "",
        f"Causal layout, the first {args.perplexity_sequences or 'all'} test sequences (crops of {args.max_length} "
        f"tokens); `cluster`: the other members of the query's similarity cluster (same split) as context, up to "
        f"{args.max_context_tokens:,} tokens. Only the query's residues and its [EOS] are scored, never the context "
        "(bits and perplexity per scored token). Pretraining compute from `--pretrain-compute` (blank: not given).",
        "",
        "| model | params | context | perplexity | bits/token | tokens scored | pretraining tokens | "
        "pretraining time | status |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for family in [*args.families, UNIGRAM_MODEL]:
        for _, r in runs[runs["model"] == family].iterrows():
            params = "" if pd.isna(r["params"]) else count(float(r["params"]))
            ptokens = "" if pd.isna(r["pretrain_tokens"]) else count(float(r["pretrain_tokens"]))
            ptime = "" if pd.isna(r["pretrain_seconds"]) else f"{float(r['pretrain_seconds']) / 3600:.1f} h"
            note = r["note"] if r["status"] == "ok" and isinstance(r["note"], str) and r["note"] else ""
            status = r["status"] + (f" ({note})" if note else "")
            cells = [_cell(r["perplexity"], "{:.2f}"), _cell(r["bits"]), _cell(r["tokens"], "{:,.0f}"), ptokens, ptime]
            lines.append(f"| {family} | {params} | {r['context']} | " + " | ".join(cells) + f" | {status} |")
    return [*lines, ""]


def _render_dms(frame: pd.DataFrame, args) -> list[str]:
    runs = selected(frame, "dms", {dms_config(args)})
    lines = [
        "### DMS zero-shot (Spearman, higher is better)",
        "",
        f"`dms.evaluate(model, assay, method={args.dms_method or 'default (llr for causal models)'})` on "
        f"{args.max_mutations or 'all'} mutations per assay (a seeded subset, the same for every row); "
        f"`homologs`: {args.homologs} homologs from `dms.load_homologs` as context, the most similar to the wild "
        f"type by shared {HOMOLOG_K}-mers (the wild type itself excluded). {BLOSUM_MODEL}: BLOSUM62 score of each "
        "substitution, the floor.",
        "",
        "| assay | model | context | Spearman | mutations | status |",
        "|---|---|---|---:|---:|---|",
    ]
    for assay in args.assays:
        mine = runs[runs["task"] == assay]
        for model in [*args.families, BLOSUM_MODEL]:
            for _, r in mine[mine["model"] == model].iterrows():
                note = r["note"] if r["status"] == "ok" and isinstance(r["note"], str) and r["note"] else ""
                status = r["status"] + (f" ({note})" if note else "")
                lines.append(f"| {assay} | {model} | {r['context']} | {_cell(r['spearman'])} | "
                             f"{_cell(r['n'], '{:,.0f}')} | {status} |")  # fmt: skip
    lines += [
        "",
        "Published (not computed here; all mutations of each assay, their own protocols; never mixed into the rows "
        "above):",
        "",
        "| assay | model | Spearman | protocol |",
        "|---|---|---:|---|",
    ]
    for assay, model, rho, protocol in PUBLISHED_DMS:
        if assay in args.assays or assay.startswith("ProteinGym"):
            lines.append(f"| {assay} | {model} (published) | {rho if isinstance(rho, str) else f'{rho:.3f}'} | "
                         f"{protocol} |")  # fmt: skip
    return [*lines, ""]


def render_targets(frame: pd.DataFrame, args) -> list[str]:
    """Targets: pretrained beats scratch and the linear baseline (mean test accuracy over seeds, per task);
    homologs as context beat no context on the viral assays (Spearman)."""
    lines = [
        "### Targets",
        "",
        "Fine-tuning: mean test accuracy over seeds. DMS: Spearman with homologs vs without, on the viral assays "
        "whose homologs ship with the data.",
        "",
        "| part | task | family | target | met |",
        "|---|---|---|---|---|",
    ]
    if "finetune" in args.parts:
        runs = _finetune_runs(frame, args)
        mean = runs[runs["status"] == "ok"].groupby(["task", "model", "init"])["accuracy"].mean()
        for task in args.tasks:
            baseline = WINDOW_MODEL if task in RESIDUE_TASKS else KMER_MODEL
            for family in args.families:
                mine = mean.get((task, family, "pretrained"))
                for label, other in (("pretrained > scratch", (task, family, "scratch")),
                                     (f"pretrained > {baseline}", (task, baseline, "-"))):  # fmt: skip
                    lines.append(f"| finetune | {task} | {family} | {label} | {_verdict(mine, mean.get(other))} |")
    if "dms" in args.parts:
        runs = selected(frame, "dms", {dms_config(args)})
        ok = runs[runs["status"] == "ok"].set_index(["task", "model", "context"])["spearman"]
        for assay in [a for a in args.assays if a in CONTEXT_ASSAYS]:
            for family in args.families:
                verdict = _verdict(ok.get((assay, family, "homologs")), ok.get((assay, family, "none")))
                lines.append(f"| dms | {assay} | {family} | homologs > no context | {verdict} |")
    return [*lines, ""]


def _verdict(mine, other) -> str:
    if mine is None or pd.isna(mine):
        return f"n/a ({NO_WEIGHTS} or not run)"
    if other is None or pd.isna(other):
        return "n/a (comparison not run)"
    return f"{'yes' if mine > other else 'no'} ({mine:.3f} vs {other:.3f})"


# Command line ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments, with ``--quick`` applied to the sizes not given explicitly."""
    words = partial(str.split, sep=",")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=words, default=list(TASKS), help="comma-separated tasks")
    parser.add_argument("--families", type=words, default=list(FAMILIES), help="comma-separated zoo entries")
    parser.add_argument("--assays", type=words, default=list(ASSAYS), help="comma-separated DMS assays")
    parser.add_argument("--parts", type=words, default=list(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per fine-tuning run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--pooling", choices=("mean", "max", "last", "cls"), default="mean",
                        help="how the sequence head pools the hidden states")  # fmt: skip
    parser.add_argument("--max-train-samples", type=int, default=None, help="seeded subset of the train rows")
    parser.add_argument("--max-chains", type=int, default=None,
                        help="secondary structure: a seeded subset of this many chains (split within it)")  # fmt: skip
    parser.add_argument("--max-length", type=int, default=1024, help="residues per crop / longest sequence read")
    parser.add_argument("--baseline-residues", type=int, default=1_000_000,
                        help="training residues the one-hot window baseline fits on (a seeded sample)")  # fmt: skip
    parser.add_argument("--corpus", default="uniprot-20k", help="pretraining corpus whose test split is scored")
    parser.add_argument("--perplexity-sequences", type=int, default=None, help="test sequences scored (all)")
    parser.add_argument("--max-context-tokens", type=int, default=8192, help="homolog tokens before a query")
    parser.add_argument("--weights", type=_weights, nargs="+", default=[],
                        help="FAMILY=SOURCE: evaluate these weights for FAMILY instead of its published ones, e.g. "
                             "prot-xlstm-small=local-dir:runs/prot-xlstm-small (a zoo export)")  # fmt: skip
    parser.add_argument("--pretrain-compute", type=Path, default=None,
                        help='JSON {family: {"tokens": N, "seconds": S}} of the pretraining runs')  # fmt: skip
    parser.add_argument("--dms-method", choices=("llr", "wt-marginal", "masked-marginal"), default=None,
                        help="zero-shot score (default: the model's, llr for causal models)")  # fmt: skip
    parser.add_argument("--max-mutations", type=int, default=None, help="seeded subset of each assay (all)")
    parser.add_argument("--homologs", type=int, default=8, help="homologs given as DMS context")
    parser.add_argument("--dms-batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (QUICK sizes, unless given explicitly)")
    parser.add_argument("--force", action="store_true", help="recompute runs already in --out")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: render the section from the rows already in --out")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "protein_runs.csv", help="run table (CSV)")
    parser.add_argument("--write", type=Path, default=None,
                        help="results file to update (default benchmarks/RESULTS.md; none with --quick; "
                             "'--write none' writes no file: runs only fill --out)")  # fmt: skip
    args = parser.parse_args(argv)
    args.weights = dict(args.weights)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):  # an explicit flag wins over the preset
                setattr(args, name, value)
    elif args.write is None:
        args.write = ROOT / "RESULTS.md"
    if args.write is not None and str(args.write).lower() == "none":
        args.write = None
    for option, given, known in (("--parts", args.parts, PARTS), ("--tasks", args.tasks, TASKS),
                                 ("--assays", args.assays, ASSAYS)):  # fmt: skip
        unknown = sorted(set(given) - set(known))
        if unknown:
            parser.error(f"unknown {option} {unknown}; choose from {', '.join(known)}")
    for name in ("steps", "batch_size", "max_length", "homologs", "dms_batch_size"):
        if getattr(args, name) < (0 if name == "homologs" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run, then print (and write) the section."""
    args = parse_args(argv)
    # Lightning announces the accelerator and seed on every Trainer; one line per run is enough.
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console()
    frame = read_runs(args.out) if args.report_only else run(args, console)
    command = shlex.join(["python", "benchmarks/protein.py", *(sys.argv[1:] if argv is None else argv)])
    section = render(frame, args, command)
    console.print(section, markup=False, highlight=False, soft_wrap=True)
    if args.write:
        replace_section(args.write, SECTION, section)


if __name__ == "__main__":
    main()
