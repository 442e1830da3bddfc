"""Forecasting: our families, neuralforecast and statsforecast on the same long-horizon splits, in one run.

For every horizon of ``--horizons`` (96 192 336 720) on ``--data`` (a named dataset, ``etth1`` or
``household-power``, or the path of any wide CSV: a ``date`` column plus one column per series):

* **ours** (``--families``): the shipped recipe ``recipes/forecasting/<family>/etth1-<h>.yaml`` unchanged except
  the data (``--data`` replaces its dataset) and the seed, trained by ``ZooCLI`` (what ``zoo fit --config`` runs);
  the checkpoint with the lowest validation MSE forecasts every test window.
* **neuralforecast** PatchTST, DLinear, iTransformer (``--peers``): look-back 96, MSE loss, its default
  architecture, ``--peer-steps`` steps of ``--peer-windows`` windows with early stopping on the same validation
  rows (patience ``--peer-patience`` checks of every 50 steps), then ``cross_validation(step_size=1,
  refit=False)`` over the test rows.
* **statsforecast** SeasonalNaive and AutoETS (season ``--season``, 24 for hourly data), fitted on the train and
  validation rows and rolled over the test rows with ``cross_validation(step_size=1, refit=False)`` (the fitted
  model filters the new observations; no refit per window).
* **baseline** ``same-hour-7d``: the mean of the same hour on the previous 7 days (it reads 168 h of history,
  more than the models' 96).

Every model sees the same series, z-scored with the train rows' statistics (``LongHorizonSplits``), and is scored
with the same function (``evaluate_windows``: MSE and MAE over every test window at stride 1, every step and
every series, on the normalised scale). The peers' own ``y`` column is checked against our test targets, so a
protocol mismatch fails instead of producing a wrong row. Fit time is wall-clock seconds of training alone (the
peers' ``fit`` inside ``cross_validation`` is timed by a Lightning callback; the statistical models' time is
fit plus rolling forecast, labelled so), reported per model and as a ratio to neuralforecast PatchTST.

Rows go to a CSV (``--out``) as they are computed, so an interrupted run resumes (``--force`` recomputes); the
table goes to benchmarks/RESULTS.md (section ``forecasting-<data>``) with the published rows of
../shared/anchors.md beside it for ETTh1, labelled as published (never mixed into our rows).

The peers need their own environment (neuralforecast 3 pins pandas < 3)::

    python3 -m venv .venv-forecast && . .venv-forecast/bin/activate && pip install torch==2.13.0 \\
        && pip install -e ".[benchmark-forecasting]"
    python benchmarks/forecasting.py                                   # ETTh1, every horizon and model
    python benchmarks/forecasting.py --data household-power            # the second data set: only the data changes
    python benchmarks/forecasting.py --quick                           # smoke run: H=96, a few steps
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console

# The sibling modules, also when run with PYTHONSAFEPATH=1 (which keeps the script's folder off sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_table
from results import replace_section
from run_table import machine

from zoo.domains.forecasting.datasets import DATASETS, load_dataset
from zoo.domains.forecasting.protocol import LongHorizonSplits, evaluate_windows

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("RESULTS.md")
RUNS = Path(__file__).with_name("forecasting_runs.csv")
FAMILIES = ("attn-ts-small", "hyena-ts-small", "mamba2-ts-small", "xlstm-ts-small", "hybrid-ts-small")
NEURALFORECAST = ("PatchTST", "DLinear", "iTransformer")
STATSFORECAST = ("SeasonalNaive", "AutoETS")
BASELINES = ("same-hour-7d",)
HORIZONS = (96, 192, 336, 720)
LOOK_BACK = 96
#: Published look-back-96 ETTh1 rows (../shared/anchors.md): MSE and MAE per horizon, then the average.
PUBLISHED_ETTH1 = {
    "iTransformer (published)": {"mse": (0.386, 0.441, 0.487, 0.503, 0.454), "mae": (None,) * 4 + (0.447,)},
    "PatchTST (published)": {"mse": (0.414, 0.460, 0.501, 0.500, 0.469), "mae": (None,) * 4 + (0.454,)},
    "DLinear (published)": {"mse": (None,) * 4 + (0.456,), "mae": (None,) * 4 + (0.452,)},
    "TimesNet (published)": {"mse": (None,) * 4 + (0.458,), "mae": (None,) * 4 + (0.450,)},
    "S-Mamba (published)": {"mse": (None,) * 4 + (0.457,), "mae": (None,) * 4 + (0.452,)},
}
COLUMNS = ("key", "data", "model", "source", "horizon", "seed", "config", "status", "mse", "mae", "fit_seconds",
           "total_seconds", "steps", "windows", "params", "note")  # fmt: skip
NUMERIC = ("horizon", "mse", "mae", "fit_seconds", "total_seconds", "steps", "windows", "params")


# ------------------------------------------------------------------------------------------------------- data


def load_frame(data: str) -> tuple[pd.DataFrame, str]:
    """The wide frame of ``data`` (a named dataset or a CSV path) and its split rule."""
    if data in DATASETS:
        return load_dataset(data), DATASETS[data].split
    path = Path(data)
    if not path.is_file():
        raise SystemExit(f"--data {data!r}: neither a named dataset {sorted(DATASETS)} nor an existing CSV file")
    return pd.read_csv(path), "ratio"


def splits_for(frame: pd.DataFrame, rule: str, horizon: int) -> LongHorizonSplits:
    """The protocol's splits of ``frame`` at look-back 96 and ``horizon``."""
    return LongHorizonSplits(frame, seq_len=LOOK_BACK, pred_len=horizon, split=rule)


def long_frame(splits: LongHorizonSplits, missing: str = "keep") -> pd.DataFrame:
    """Train, val and test rows (normalised) as one long frame ``unique_id, ds, y`` for the peers; rows after the
    test split (ETT's unused last months) are left out, so each series ends where the test split ends.

    Missing values (NaN): ``keep`` them; ``mask``: neuralforecast's way, ``y`` 0 (the training mean) with
    ``available_mask`` 0, so its models skip them; ``interpolate``: linearly in time, for statsforecast, which takes
    no missing values (the filled values are never scored: every model is scored on observed targets only).
    """
    start = splits.borders["train"][0]
    end = splits.borders["test"][1]
    values = np.concatenate([splits.data["train"], splits.data["val"][LOOK_BACK:], splits.data["test"][LOOK_BACK:]])
    stamps = np.concatenate([splits.dates["train"], splits.dates["val"][LOOK_BACK:], splits.dates["test"][LOOK_BACK:]])
    assert len(values) == end - start, "the splits are contiguous"
    frame = pd.DataFrame({
        "unique_id": np.repeat(splits.channels, len(values)),
        "ds": np.tile(stamps, len(splits.channels)),
        "y": values.T.reshape(-1).astype(np.float64),
    })  # fmt: skip
    if missing == "mask":
        frame["available_mask"] = frame["y"].notna().astype(np.float64)
        frame["y"] = frame["y"].fillna(0.0)
    elif missing == "interpolate":
        frame["y"] = frame.groupby("unique_id")["y"].transform(lambda y: y.interpolate(limit_direction="both"))
    elif missing != "keep":
        raise ValueError(f"missing={missing!r}")
    return frame


def windows_array(cv: pd.DataFrame, column: str, splits: LongHorizonSplits, horizon: int) -> np.ndarray:
    """A peer's ``cross_validation`` frame -> forecasts ``[windows, horizon, channels]`` in our window order,
    after checking that its ``y`` equals our test targets (same windows, same rows, same scaling)."""
    targets = splits.windows("test").y  # [N, H, C]
    order = {name: i for i, name in enumerate(splits.channels)}
    cv = cv.assign(_channel=cv["unique_id"].map(order)).sort_values(["_channel", "cutoff", "ds"])
    n, h, c = targets.shape
    if len(cv) != n * h * c:
        raise RuntimeError(f"{column}: {len(cv)} forecast rows, expected {n} windows x {h} steps x {c} series")
    truth = cv["y"].to_numpy().reshape(c, n, h).transpose(1, 2, 0)
    observed = ~np.isnan(targets)  # a missing target may be filled on the peer's side; it is never scored
    if not np.allclose(truth[observed], targets[observed], atol=1e-5):
        raise RuntimeError(f"{column}: the peer's targets differ from the protocol's test windows")
    return cv[column].to_numpy().reshape(c, n, h).transpose(1, 2, 0)


# ------------------------------------------------------------------------------------------------------ ours


def run_family(family: str, horizon: int, seed: int, data: str, splits: LongHorizonSplits,
               steps: int | None = None, keep: Path | None = None) -> dict:  # fmt: skip
    """Train ``family``'s shipped recipe for ``horizon`` and score the best-validation checkpoint; ``steps``
    shortens the recipe (smoke runs only); ``keep`` is a folder to copy that checkpoint into (for export)."""
    from zoo.training.cli import ZooCLI

    recipe = REPO / "recipes" / "forecasting" / family / f"etth1-{horizon}.yaml"
    if not recipe.is_file():
        raise FileNotFoundError(f"no recipe {recipe.relative_to(REPO)}")
    source = ["--data.init_args.dataset", data] if data in DATASETS else \
        ["--data.init_args.dataset", "null", "--data.init_args.path", data]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="zoo-forecast-bench-") as root:
        args = ["--config", str(recipe), *source, "--model.init_args.num_channels", str(splits.n_channels),
                "--seed_everything", str(seed), "--trainer.default_root_dir", root,
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                "--checkpoint.dirpath", root]  # fmt: skip
        if steps is not None:
            args += ["--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(steps),
                     "--model.init_args.scheduler.init_args.total_steps", str(steps),
                     "--model.init_args.scheduler.init_args.warmup_steps", str(max(1, steps // 5))]  # fmt: skip
        with contextlib.chdir(root):  # the recipe's CSV logs land in the temporary folder
            cli = ZooCLI(args=args, run=False)
            start = time.perf_counter()
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            fit_seconds = time.perf_counter() - start
        best = cli.trainer.checkpoint_callback.best_model_path
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        task = cli.model.cpu().eval()
        task.load_state_dict(state)
        test = cli.datamodule.splits.windows("test")
        with torch.inference_mode():
            pred = torch.cat([task(x) for x in torch.as_tensor(np.array(test.x)).split(256)]).numpy()
        total = time.perf_counter() - start
        params = sum(p.numel() for p in task.parameters())
        steps = cli.trainer.global_step
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(best, keep / f"{data_name(data)}-{family}-h{horizon}-seed{seed}.ckpt")
    if not np.array_equal(test.y, splits.windows("test").y, equal_nan=True):
        raise RuntimeError("the recipe's data module cut other test windows than the benchmark's splits")
    score = evaluate_windows(pred, splits.windows("test").y)
    note = f"recipe {recipe.relative_to(REPO)}; best of val/mse ({Path(best).stem})"
    return dict(mse=score["mse"], mae=score["mae"], fit_seconds=fit_seconds, total_seconds=total, steps=steps,
                windows=len(pred), params=params, note=note)  # fmt: skip


# ------------------------------------------------------------------------------------------------------ peers


def _fit_timer(records: list[tuple[float, int]]):
    """A Lightning callback appending ``(fit seconds, optimizer steps)`` of each fit to ``records``
    (neuralforecast runs fit and predict inside ``cross_validation``, and copies its callbacks: the list is
    shared by the copies)."""
    import lightning.pytorch as pl  # neuralforecast's Lightning, which is ours

    class FitTimer(pl.Callback):
        def on_fit_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_fit_end(self, trainer, module):
            records.append((time.perf_counter() - self.start, trainer.global_step))

    return FitTimer()


def run_neuralforecast(name: str, horizon: int, seed: int, splits: LongHorizonSplits, args) -> dict:
    """neuralforecast ``name`` on the protocol's rows (see the module docstring)."""
    try:
        import neuralforecast.models as models
        from neuralforecast import NeuralForecast
        from neuralforecast.losses.pytorch import MSE
    except ImportError as err:
        raise RuntimeError(f"neuralforecast is not installed ({err}): see this script's docstring") from None
    fits: list[tuple[float, int]] = []
    settings = dict(h=horizon, input_size=LOOK_BACK, loss=MSE(), valid_loss=MSE(), max_steps=args.peer_steps,
                    val_check_steps=50, early_stop_patience_steps=args.peer_patience, random_seed=seed,
                    accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                    logger=False, enable_checkpointing=False, callbacks=[_fit_timer(fits)])  # fmt: skip
    if name == "iTransformer":
        # a multivariate window holds every series: as many series-windows per step as the univariate models
        settings.update(n_series=splits.n_channels, windows_batch_size=max(1, args.peer_windows // splits.n_channels))
    else:
        settings.update(windows_batch_size=args.peer_windows)
    model = getattr(models, name)(**settings)
    frame = long_frame(splits, missing="mask")
    n_val = splits.borders["val"][1] - splits.borders["val"][0] - LOOK_BACK
    n_test = splits.borders["test"][1] - splits.borders["test"][0] - LOOK_BACK
    start = time.perf_counter()
    cv = NeuralForecast(models=[model], freq=splits.freq).cross_validation(
        df=frame, val_size=n_val, test_size=n_test, n_windows=None, step_size=1, refit=False)  # fmt: skip
    total = time.perf_counter() - start
    pred = windows_array(cv, name, splits, horizon)
    score = evaluate_windows(pred, splits.windows("test").y)
    params = sum(p.numel() for p in model.parameters())
    if len(fits) != 1:
        raise RuntimeError(f"{name}: expected one fit inside cross_validation, timed {len(fits)}")
    (fit_seconds, steps), = fits
    note = (f"neuralforecast defaults, input_size={LOOK_BACK}, MSE loss, max_steps={args.peer_steps}, "
            f"early stop {args.peer_patience}x50 steps")  # fmt: skip
    return dict(mse=score["mse"], mae=score["mae"], fit_seconds=fit_seconds, total_seconds=total, steps=steps,
                windows=len(pred), params=params, note=note)  # fmt: skip


def run_statsforecast(name: str, horizon: int, splits: LongHorizonSplits, args) -> dict:
    """statsforecast ``name`` fitted on train + val rows, rolled over the test rows without refit."""
    try:
        import statsforecast.models as models
        from statsforecast import StatsForecast
    except ImportError as err:
        raise RuntimeError(f"statsforecast is not installed ({err}): see this script's docstring") from None
    frame = long_frame(splits, missing="interpolate")
    model = getattr(models, name)(season_length=args.season)
    n = splits.windows("test").y.shape[0]
    start = time.perf_counter()
    cv = StatsForecast(models=[model], freq=splits.freq, n_jobs=1).cross_validation(
        df=frame, h=horizon, step_size=1, n_windows=n, refit=False)  # fmt: skip
    total = time.perf_counter() - start
    pred = windows_array(cv.reset_index() if "unique_id" not in cv.columns else cv, name, splits, horizon)
    score = evaluate_windows(pred, splits.windows("test").y)
    note = f"season_length={args.season}; fit on train+val, rolled over test without refit; time = fit + forecasts"
    if np.isnan(splits.data["train"]).any() or np.isnan(splits.data["test"]).any():
        note += "; missing values interpolated for it (never scored)"
    return dict(mse=score["mse"], mae=score["mae"], fit_seconds=total, total_seconds=total, steps=None,
                windows=len(pred), params=None, note=note)  # fmt: skip


def run_same_hour(horizon: int, splits: LongHorizonSplits, days: int = 7) -> dict:
    """Mean of the same hour on the previous ``days`` days, from the whole history before each window."""
    series = long_frame(splits)["y"].to_numpy().reshape(splits.n_channels, -1).T  # [T, C] normalised
    test_start = splits.borders["test"][0] + LOOK_BACK - splits.borders["train"][0]
    n = splits.windows("test").y.shape[0]
    steps = np.arange(horizon)
    pred = np.empty((n, horizon, splits.n_channels))
    for w in range(n):
        cutoff = test_start + w  # first forecast row
        # step s forecasts row cutoff + s; its same-hour rows k days back that lie before the cutoff
        lags = [(cutoff + steps) - 24 * k for k in range(1, days + 1 + horizon // 24)]
        rows = np.stack(lags)  # [K, H]
        past = rows < cutoff
        take = np.argsort(~past, axis=0, kind="stable")[:days]  # the latest `days` past rows of each step
        chosen = np.take_along_axis(rows, take, axis=0)  # [days, H]
        pred[w] = np.nanmean(series[chosen], axis=0)
    score = evaluate_windows(pred, splits.windows("test").y)
    return dict(mse=score["mse"], mae=score["mae"], fit_seconds=0.0, total_seconds=0.0, steps=None, windows=n,
                params=None, note=f"mean of the same hour on the {days} latest days before each window")  # fmt: skip


# ----------------------------------------------------------------------------------------------------- table


def make_row(data: str, model: str, source: str, horizon: int, seed: int | str, config: str, **values) -> dict:
    """A CSV row; ``key`` names the run, so a rerun with the same settings finds it."""
    row = dict.fromkeys(COLUMNS)
    row.update(data=data, model=model, source=source, horizon=horizon, seed=seed, config=config, status="ok")
    row["key"] = "|".join(str(row[c]) for c in ("data", "model", "horizon", "seed", "config"))
    row.update(values)
    return row


def data_name(data: str) -> str:
    """A short name of ``--data`` for rows and the section (a CSV path becomes its file stem)."""
    return data if data in DATASETS else Path(data).stem


def plan(args) -> run_table.Planned:
    """Every (model, horizon, seed) run of ``args``."""
    frame, rule = load_frame(args.data)
    name = data_name(args.data)
    planned: run_table.Planned = []
    for horizon in args.horizons:
        splits = partial(splits_for, frame, rule, horizon)
        for seed in args.seeds:
            for family in args.families:
                row = (name, family, "ours", horizon, seed, "recipe" if args.steps is None else f"steps={args.steps}")
                planned.append((row, _thunk(row, lambda f=family, s=seed, sp=splits, h=horizon:
                                            run_family(f, h, s, args.data, sp(), args.steps, args.keep))))  # fmt: skip
            for peer in args.peers:
                config = f"steps={args.peer_steps},windows={args.peer_windows},patience={args.peer_patience}"
                row = (name, peer, "neuralforecast", horizon, seed, config)
                planned.append((row, _thunk(row, lambda p=peer, s=seed, sp=splits, h=horizon:
                                            run_neuralforecast(p, h, s, sp(), args))))  # fmt: skip
        for stat in args.stats:
            row = (name, stat, "statsforecast", horizon, "-", f"season={args.season}")
            planned.append((row, _thunk(row, lambda m=stat, sp=splits, h=horizon:
                                        run_statsforecast(m, h, sp(), args))))  # fmt: skip
        if args.baselines:
            row = (name, "same-hour-7d", "baseline", horizon, "-", "days=7")
            planned.append((row, _thunk(row, lambda sp=splits, h=horizon: run_same_hour(h, sp()))))
    return planned


def _thunk(row_args: tuple, compute: Callable[[], dict]) -> Callable[[], dict]:
    return lambda: make_row(*row_args, **compute())


def _describe(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['key']}: {row['status']}"
    return f"{row['key']}: MSE {row['mse']:.4f} MAE {row['mae']:.4f}, fit {row['fit_seconds']:.0f} s"


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    return run_table.as_numeric(frame, NUMERIC)


def read_runs(path: Path) -> pd.DataFrame:
    """The run CSV with numeric columns numeric."""
    return _numeric(run_table.read_runs(path, COLUMNS, "benchmarks/forecasting.py", ("data", "model", "source")))


def report(frame: pd.DataFrame, args, command: str) -> str:
    """The RESULTS.md section: one row per model, MSE and MAE per horizon and averaged, fit time and its ratio
    to neuralforecast PatchTST (summed over horizons), then the published rows for ETTh1."""
    name = data_name(args.data)
    rows = frame[(frame["status"] == "ok") & (frame["data"] == name) & frame["horizon"].isin(args.horizons)]
    horizons = sorted(int(h) for h in args.horizons)
    per_model = rows.groupby(["source", "model", "horizon"], sort=False)[["mse", "mae", "fit_seconds"]]
    means, stds = per_model.mean(), per_model.std()
    patchtst = means.xs("PatchTST", level="model") if "PatchTST" in rows["model"].values else None
    source_of_patch = "neuralforecast"
    complete = lambda model: all((model[0], model[1], h) in means.index for h in horizons)  # noqa: E731
    patch_horizons = set() if patchtst is None else set(patchtst.index.get_level_values("horizon"))
    head = "| model | source | " + " | ".join(f"MSE {h}" for h in horizons) + " | MSE avg | " + \
        " | ".join(f"MAE {h}" for h in horizons) + " | MAE avg | fit s | fit / PatchTST |"  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    order = {"ours": 0, "neuralforecast": 1, "statsforecast": 2, "baseline": 3}
    models = sorted({(s, m) for s, m, _ in means.index}, key=lambda sm: (order.get(sm[0], 9), sm[1]))
    seeds = rows.groupby(["source", "model"])["seed"].nunique()
    for source, model in models:
        cells = []
        for metric in ("mse", "mae"):
            values = []
            for h in horizons:
                if (source, model, h) in means.index:
                    mean, std = means.loc[(source, model, h), metric], stds.loc[(source, model, h), metric]
                    values.append(mean)
                    cells.append(f"{mean:.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else ""))
                else:
                    cells.append("—")
            cells.append(f"**{np.mean(values):.3f}**" if complete((source, model)) else "—")
        ran = [h for h in horizons if (source, model, h) in means.index]
        fit = sum(means.loc[(source, model, h), "fit_seconds"] for h in ran)
        # the ratio over the horizons both ran (named when PatchTST did not run them all)
        common = [h for h in ran if h in patch_horizons]
        ratio = "—"
        if common:
            patch = sum(patchtst.loc[(source_of_patch, h), "fit_seconds"] for h in common)
            ours_fit = sum(means.loc[(source, model, h), "fit_seconds"] for h in common)
            only = "" if len(common) == len(horizons) else f" (H {'/'.join(map(str, common))})"
            ratio = f"{ours_fit / patch:.2f}x{only}"
        label = model + (f" ({seeds[(source, model)]} seeds)" if seeds[(source, model)] > 1 else "")
        lines.append(f"| {label} | {source} | " + " | ".join(cells) + f" | {fit:.0f} | {ratio} |")
    if name == "etth1":
        picked = [HORIZONS.index(h) for h in horizons if h in HORIZONS]
        for model, published in PUBLISHED_ETTH1.items():
            values = [published[m][i] for m in ("mse", "mae") for i in (*picked, len(HORIZONS))]
            cells = [("—" if v is None else f"{v:.3f}") for v in values]
            lines.append(f"| {model} | published, look-back 96 | " + " | ".join(cells) + " | — | — |")
    failed = frame[(frame["status"] != "ok") & (frame["data"] == name)]
    notes = [f"- {r.model} H={r.horizon:.0f}: {r.status}" for r in failed.itertuples()]
    return "\n".join([
        f"## Forecasting: {name}, look-back {LOOK_BACK}, stride-1 test windows (benchmarks/forecasting.py)",
        "",
        f"Machine: {machine()}, torch {torch.__version__} on CPU, {torch.get_num_threads()} threads. "
        f"Command: `{command}`.",
        "",
        "MSE/MAE on the z-scored scale (train statistics), mean over every test window, step and series; "
        "ours = the shipped recipe's best-validation checkpoint; ± is the std over seeds; — is a run not made. "
        "Fit time is training wall-clock summed over the horizons run (statsforecast: fit + rolling forecasts), "
        "and its ratio to neuralforecast PatchTST trained on the same machine, over the horizons both ran. "
        "Published rows are copied from the papers (via ../shared/anchors.md), not run here.",
        "",
        *lines,
        *(["", *notes] if notes else []),
    ])  # fmt: skip


SECTION = "forecasting-{data}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="etth1", help="etth1, household-power or a wide CSV path")
    parser.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--peers", nargs="*", default=list(NEURALFORECAST), choices=NEURALFORECAST)
    parser.add_argument("--stats", nargs="*", default=list(STATSFORECAST), choices=STATSFORECAST)
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--steps", type=int, default=None, help="shorten our recipes (smoke runs; default: as shipped)")
    parser.add_argument("--keep", type=Path, default=None, help="copy our best checkpoints into this folder")
    parser.add_argument("--peer-steps", type=int, default=1000, help="neuralforecast max_steps")
    parser.add_argument("--peer-windows", type=int, default=256, help="neuralforecast training windows per step")
    parser.add_argument("--peer-patience", type=int, default=5, help="neuralforecast early stopping (checks)")
    parser.add_argument("--season", type=int, default=24, help="statsforecast season length (24: hourly data)")
    parser.add_argument("--quick", action="store_true", help="H=96 only, 20 / 30 steps, no AutoETS")
    parser.add_argument("--out", type=Path, default=RUNS, help="run CSV (resumable)")
    parser.add_argument("--force", action="store_true", help="recompute runs already in --out")
    parser.add_argument("--report-only", action="store_true", help="render the section from --out, run nothing")
    parser.add_argument("--write", default=str(RESULTS), help="RESULTS.md to update, or 'none'")
    args = parser.parse_args(argv)
    if args.quick:
        args.horizons, args.steps, args.peer_steps, args.stats = [96], 20, 30, ["SeasonalNaive"]
    return args


def main(argv: list[str] | None = None) -> None:
    """Run, then print (and write) the section."""
    args = parse_args(argv)
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    console = Console()
    command = "python benchmarks/forecasting.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    frame = read_runs(args.out)
    if not args.report_only:
        frame = run_table.run_planned(frame, plan(args), make_row, args.out, args.force, _describe,
                                      "forecasting benchmark", console, tidy=_numeric)  # fmt: skip
    section = report(frame, args, command.strip())
    console.print(section, markup=False, highlight=False)
    if args.write != "none":
        replace_section(Path(args.write), SECTION.format(data=data_name(args.data)), section)


if __name__ == "__main__":
    main()
