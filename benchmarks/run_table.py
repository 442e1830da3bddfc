"""The resumable run table of the quality benchmarks (genomics.py, protein.py).

Each benchmark plans runs as ``(row_args, thunk)``: ``row_args`` name the run (they make its CSV ``key``), the
thunk computes its row. ``run_planned`` runs those whose key has no ``ok`` row yet, saves the table after every
run, and turns an exception into an ``error: ...`` row (retried next time), so a long benchmark survives a crash,
a broken family or an interrupted session.
"""

from __future__ import annotations

import platform
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from results import cpu_name
from rich.console import Console
from rich.progress import Progress

Planned = list[tuple[tuple, Callable[[], dict]]]


class NoWeights(RuntimeError):
    """The family's pretrained weights cannot be loaded (not published yet, or not reachable)."""


def machine() -> str:
    """One line naming the CPU and Python."""
    return f"{cpu_name()}, Python {platform.python_version()}"


def count(n: float) -> str:
    """``640``, ``0.94M`` or ``1.20B``: a count of parameters or tokens."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{int(n):,}"


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (empty if it has none)."""
    text = str(err)
    return text.splitlines()[0] if text else ""


def selected(frame: pd.DataFrame, part: str, configs: set[str]) -> pd.DataFrame:
    """The rows of ``part`` run with one of ``configs`` (rows of other settings stay in the CSV, unrendered)."""
    return frame[(frame["part"] == part) & frame["config"].isin(configs)]


def as_numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with its ``columns`` (those it has) numeric; a cell that is not a number becomes NaN."""
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in columns if c in frame.columns})


def read_runs(path: Path, columns: Sequence[str], script: str, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The run CSV (empty with ``columns`` if absent); ``key``, ``config``, ``seed``, ``note`` and
    ``text_columns`` are read as text. A CSV lacking ``key``, ``status`` or a text column is refused, naming
    ``script`` whose table it is not."""
    if not path.exists():
        return pd.DataFrame(columns=list(columns))
    frame = pd.read_csv(path, dtype=dict.fromkeys(("seed", "key", "config", "note", *text_columns), str))
    missing = [c for c in ("key", "status", *text_columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a run table of {script} (missing columns {missing}); "
                         "pass another --out or delete it")  # fmt: skip
    return frame


def write_runs(frame: pd.DataFrame, path: Path) -> None:
    """Write the run CSV atomically (a crash mid-write keeps the previous file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def run_planned(
    frame: pd.DataFrame,
    planned: Planned,
    make_row: Callable[..., dict],
    out: Path,
    force: bool,
    describe: Callable[[dict], str],
    title: str,
    console: Console,
    tidy: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame,
) -> pd.DataFrame:
    """Run every planned run not already ``ok`` in ``frame`` (all with ``force``), writing ``out`` after each.

    Returns the whole table (old and new rows). A run that raises becomes a row with status ``error: ...``
    (retried next time) and the traceback is printed, so one broken family does not lose the others. ``tidy``
    is applied to the table after each row (e.g. to keep number columns numeric).
    """
    done = set(frame.loc[frame["status"] == "ok", "key"])
    todo = [(row_args, thunk) for row_args, thunk in planned if force or make_row(*row_args)["key"] not in done]
    console.log(f"{len(todo)} runs to do, {len(planned) - len(todo)} already in {out}")
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(title, total=len(todo))
        for row_args, thunk in todo:
            progress.update(bar, description=make_row(*row_args)["key"])
            try:
                row = thunk()
            except Exception as err:  # recorded and shown; the other runs go on
                console.print(traceback.format_exc(), markup=False, highlight=False)
                row = make_row(*row_args, status=f"error: {type(err).__name__}: {first_line(err)[:150]}")
            # Seeds are text in the CSV ("-" for runs without one); a new row's int seed is written the same way.
            new = pd.DataFrame([row]).astype({"seed": str})
            frame = tidy(pd.concat([frame[frame["key"] != row["key"]], new], ignore_index=True))
            write_runs(frame, out)
            console.log(describe(row))
            progress.advance(bar)
    return frame
