"""benchmarks/genomics.py on tiny synthetic stand-ins: rows, the CSV resume / skip logic, missing weights as rows,
the mean ± std table, and the perplexity / zero-shot parts. No network; no number of a real model is asserted."""

import re
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import zoo
from zoo.domains.genomics import corpus, datasets, genomes

FAMILY = "hyenadna-tiny"
MOTIF = "GGATCC"


def _toy_table(kind: str, seed: int) -> pd.DataFrame:
    """60 bp rows: class 1 (or a higher value) holds MOTIF; 48 train, 16 val, 16 test."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, split in enumerate(["train"] * 48 + ["val"] * 16 + ["test"] * 16):
        seq = "".join(rng.choice(list("ACGT"), size=60))
        label = i % 2
        if label:
            seq = seq[:20] + MOTIF + seq[26:]
        rows.append({"sequence": seq, "label": label if kind == "classification" else label + rng.normal(0, 0.1),
                     "split": split})  # fmt: skip
    return pd.DataFrame(rows)


def _task(name: str, kind: str) -> datasets.LabelledTask:
    classes = ("plain", "motif") if kind == "classification" else ()
    return datasets.LabelledTask(name=name, task=kind, classes=classes, description="toy", source="test",
                                 license="CC0-1.0", citation="-")  # fmt: skip


@pytest.fixture
def bench(load_benchmark, monkeypatch):
    """The script with two toy tasks, and ``zoo.load(pretrained=True)`` failing as for unpublished weights."""
    tables = {"toy-cls": _toy_table("classification", 0), "toy-reg": _toy_table("regression", 1)}
    monkeypatch.setitem(datasets.TASKS, "toy-cls", _task("toy-cls", "classification"))
    monkeypatch.setitem(datasets.TASKS, "toy-reg", _task("toy-reg", "regression"))
    monkeypatch.setattr(datasets, "load_labelled", lambda name, cache_dir=None, mirror=None: tables[name].copy())
    load = zoo.load

    def load_without_weights(name, pretrained=True, **kwargs):
        if pretrained:
            raise ValueError(f"{name!r} has no published weights yet")
        return load(name, pretrained=False, **kwargs)

    monkeypatch.setattr(zoo, "load", load_without_weights)
    return load_benchmark("genomics")


def _args(bench, tmp_path, *extra):
    return bench.parse_args(["--tasks", "toy-cls,toy-reg", "--families", FAMILY, "--seeds", "0", "1", "--steps", "1",
                             "--batch-size", "8", "--cnn-epochs", "2", "--parts", "finetune",
                             "--out", str(tmp_path / "runs.csv"), *extra])  # fmt: skip


def _quiet() -> Console:
    return Console(quiet=True)


def test_finetune_rows_resume_and_render_mean_and_std(bench, tmp_path, monkeypatch):
    args = _args(bench, tmp_path)
    frame = bench.run(args, _quiet())
    # 2 tasks x 2 seeds x (pretrained, scratch, 6-mer, cnn)
    assert len(frame) == 16 and frame["key"].is_unique
    missing = frame[frame["init"] == "pretrained"]
    assert (missing["status"] == bench.NO_WEIGHTS).all() and missing["accuracy"].isna().all()
    ok = frame[frame["init"] != "pretrained"]
    assert (ok["status"] == "ok").all()
    cls, reg = ok[ok["task"] == "toy-cls"], ok[ok["task"] == "toy-reg"]
    assert cls["accuracy"].between(0, 1).all() and cls["auroc"].between(0, 1).all() and cls["spearman"].isna().all()
    assert reg["spearman"].between(-1, 1).all() and reg["accuracy"].isna().all()
    on_disk = pd.read_csv(args.out)
    assert sorted(on_disk["key"]) == sorted(frame["key"])

    # Resume: only runs that are not ``ok`` are redone (here the missing weights), nothing else is called.
    calls = []
    for name in ("run_finetune", "run_kmer", "run_cnn"):
        real = getattr(bench, name)
        monkeypatch.setattr(bench, name, lambda *a, _real=real, _name=name: calls.append((_name, a[:-1])) or _real(*a))
    assert len(bench.run(args, _quiet())) == 16
    retried = [("run_finetune", (task, FAMILY, True, seed)) for task in ("toy-cls", "toy-reg") for seed in (0, 1)]
    assert sorted(calls) == sorted(retried)
    # An interrupted run: a row lost from the CSV is the only one recomputed.
    lost = frame[(frame["model"] == bench.KMER_MODEL) & (frame["seed"].astype(str) == "1")].iloc[0]
    on_disk[on_disk["key"] != lost["key"]].to_csv(args.out, index=False)
    calls.clear()
    bench.run(args, _quiet())
    assert sorted(calls) == sorted([*retried, ("run_kmer", (lost["task"], 1))])

    # --force recomputes everything; a run that raises becomes an error row and the others go on.
    # (Fine-tuning is stood in for here: its real runs were checked above.)
    monkeypatch.setattr(bench, "run_cnn", lambda *a: (_ for _ in ()).throw(RuntimeError("out of memory")))
    redone = frame.set_index("key")

    def stand_in(task, family, pretrained, seed, args):
        calls.append("ft")
        init = "pretrained" if pretrained else "scratch"
        key = bench.make_row("finetune", task, family, init, seed, bench.finetune_config(args))["key"]
        return {**redone.loc[key].to_dict(), "key": key}

    monkeypatch.setattr(bench, "run_finetune", stand_in)
    calls.clear()
    forced = bench.run(_args(bench, tmp_path, "--force"), _quiet())
    errors = forced[forced["model"] == bench.CNN_MODEL]
    assert len(errors) == 4 and errors["status"].str.startswith("error: RuntimeError: out of memory").all()
    assert len([c for c in calls if c[0] == "run_kmer"]) == 4 and calls.count("ft") == 8

    # The table: mean ± sample std over the two seeds, computed here from the rows.
    text = bench.render(forced, args, "python benchmarks/genomics.py --quick")
    kmer = forced[(forced["task"] == "toy-cls") & (forced["model"] == bench.KMER_MODEL)]
    expected = f"{kmer['accuracy'].mean():.3f} ± {kmer['accuracy'].std(ddof=1):.3f}"
    line = next(x for x in text.splitlines() if x.startswith(f"| toy-cls | {bench.KMER_MODEL} |"))
    assert f"| 2 | {expected} |" in line and line.endswith("| ok |")
    assert f"| toy-cls | {FAMILY} | pretrained | 0 |" in text and bench.NO_WEIGHTS in text
    assert "error: RuntimeError: out of memory" in text
    assert "Command: `python benchmarks/genomics.py --quick`" in text and "Machine: " in text
    # Targets only for the classification task, and n/a where the pretrained model is missing.
    targets = [x for x in text.splitlines() if x.startswith("| toy-") and "n/a (" in x]
    assert len(targets) == 1 and targets[0].startswith("| toy-cls |")

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- genomics:start -->\nold\n<!-- genomics:end -->\n\nkept\n")
    bench.replace_section(results, bench.SECTION, text)
    assert "old" not in results.read_text() and "kept" in results.read_text()


def test_perplexity_and_zero_shot_parts(bench, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    ids = rng.choice([7, 8, 9, 10], size=6_000).astype(np.uint8)  # A C G T
    monkeypatch.setattr(genomes, "load_genome", lambda name, **kw: SimpleNamespace(chromosomes={"c1": ids}))
    segment = partial(corpus.Segment, "toy", "c1")
    toy = corpus.Corpus("toy-corpus", train=(segment(0, 4_000),), val=(segment(4_000, 5_000),), test=(segment(5_000),))
    monkeypatch.setitem(corpus.CORPORA, "toy-corpus", toy)
    wildtype = "".join(rng.choice(list("ACGT"), size=40))
    variants = pd.DataFrame({"sequence": [wildtype[:i] + "A" + wildtype[i + 1 :] for i in range(12)],
                             "log_enrichment": rng.normal(size=12), "n_mutations": 1, "split": "test"})  # fmt: skip
    monkeypatch.setattr(datasets, "load_ars1_variants", lambda: variants)
    monkeypatch.setattr(datasets, "ARS1_WILDTYPE", wildtype)
    args = bench.parse_args(["--families", FAMILY, "--parts", "perplexity,zero-shot", "--corpus", "toy-corpus",
                             "--perplexity-bases", "500", "--markov-orders", "0,2",
                             "--out", str(tmp_path / "r.csv")])  # fmt: skip

    frame = bench.run(args, _quiet())
    assert set(frame.loc[frame["model"] == FAMILY, "status"]) == {bench.NO_WEIGHTS}
    markov = frame[frame["model"].str.startswith("markov")].set_index("model")
    # Uniform random DNA: about 2 bits per base whatever the order; order k leaves its first k bases unscored.
    assert markov["bits_per_base"].between(1.8, 2.3).all()
    assert markov.loc["markov-0", "bases"] == 500 and markov.loc["markov-2", "bases"] == 498

    # With weights (a random model stands in): scored, and the zero-shot row holds a correlation.
    monkeypatch.setattr(bench, "load_pretrained", lambda family, device="cpu": zoo.load(family, pretrained=False))
    frame = bench.run(args, _quiet())
    model_rows = frame[frame["model"] == FAMILY].set_index("part")
    assert (model_rows["status"] == "ok").all()
    assert 0 < model_rows.loc["perplexity", "bits_per_base"] < 8 and model_rows.loc["perplexity", "bases"] == 499
    assert -1 <= model_rows.loc["zero-shot", "spearman"] <= 1 and model_rows.loc["zero-shot", "n"] == 12
    text = bench.render(frame, args, "python benchmarks/genomics.py")
    assert "### Held-out perplexity (toy-corpus test segments)" in text and "| markov-2 | " in text
    assert f"| {FAMILY} | " in text.split("### ARS1 zero-shot")[1]


def test_quick_preset_and_argument_checks(bench):
    args = bench.parse_args(["--quick"])
    assert args.seeds == [0] and args.steps == bench.QUICK["steps"] and args.write is None
    assert bench.parse_args(["--quick", "--steps", "7"]).steps == 7  # an explicit flag wins
    assert bench.parse_args([]).write == bench.ROOT / "RESULTS.md"
    with pytest.raises(SystemExit):
        bench.parse_args(["--parts", "finetune,speed"])


def test_report_only_renders_existing_rows_without_running(bench, tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    row = bench.make_row("finetune", "toy-cls", bench.KMER_MODEL, "-", 0, "n=all", status="ok", accuracy=0.75)
    bench.run_table.write_runs(pd.DataFrame([row]), out)
    monkeypatch.setattr(bench, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("nothing may run")))
    results = tmp_path / "RESULTS.md"
    bench.main(["--report-only", "--tasks", "toy-cls", "--families", FAMILY, "--seeds", "0", "--parts", "finetune",
                "--out", str(out), "--write", str(results)])  # fmt: skip
    text = results.read_text()
    assert "| toy-cls | 6-mer | - | 1 | 0.750" in text and "--report-only" in text


def test_finetune_tests_the_best_val_checkpoint_and_stops_early(bench, tmp_path, monkeypatch):
    import lightning.pytorch as pl

    tested_with = []
    real_test = pl.Trainer.test
    monkeypatch.setattr(pl.Trainer, "test", lambda self, *a, **k: tested_with.append(k.get("ckpt_path"))
                        or real_test(self, *a, **k))  # fmt: skip
    args = _args(bench, tmp_path, "--steps", "12", "--val-every", "2", "--patience", "1", "--lr", "0.05")
    row = bench.run_finetune("toy-cls", FAMILY, False, 0, args)
    assert row["status"] == "ok" and 0 <= row["accuracy"] <= 1 and tested_with == ["best"]
    best, stopped = map(int, re.fullmatch(r"best val loss at step (\d+), stopped at (\d+)", row["note"]).groups())
    # Validations at steps 2, 4, ...; one validation without a lower loss ends the run (or the step budget does).
    assert best % 2 == 0 and best <= stopped <= 12 and (stopped == best + 2 or stopped == 12)
    assert row["config"].endswith(",sched=cosine,val=2,patience=1")


def test_finetune_key_of_the_last_step_protocol_is_unchanged(bench, tmp_path):
    """Rows of runs without validation or schedule keep the keys earlier run tables hold."""
    args = _args(bench, tmp_path, "--val-every", "0", "--schedule", "constant")
    assert bench.finetune_config(args) == "steps=1,bs=8,lr=0.0005,n=all"
    text = bench.render(bench.read_runs(args.out), args, "cmd")
    assert "metrics of the model after the last step" in text and "(constant)" in text
