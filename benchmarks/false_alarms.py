"""False alarms: how much of clean new data the detectors flag (issue 31).

Every case fits on clean data and scores more clean data of the same kind, which the model did not
train on; the flagged fraction is what a user sees as false alarms. The Tukey fence of
``contamination="auto"`` promises roughly 1-3% on new data like the training data, and
``contamination=0.05`` about 5%.

Cases:
  tables        each ADBench set (``DATA/adbench/*.npz``, and with ``--embeddings`` also
                ``DATA/adbench_embeddings/*.npz``): fit on 70% of its normal rows (at most 10,000 rows
                in all), score the other 30%;
  synthetic     series of this script's own, fit on the first 3,000 points, scored on the next 3,000:
                a 3-channel series around an AR(1) common factor (phi 0.95, stationary), an hourly
                traffic series with daily and weekly cycles, a 5-minute sine with noise;
  check         the tables kept out of every choice (``check_tables.py``: scikit-learn's bundled
                sets, each class in turn the rare one), their normal rows fitted and scored as
                ``tables``' are; to check, not to choose on;
  small         the same tasks' normal rows, fitted on 10, 15, 20, 30 or 40 of them at random (groups
                ``small@10``, ...; other numbers with ``--fit-rows``) and scored on the rest: tables
                whose default fraction comes to fewer than 16 rows (under 78), which set the
                threshold on out-of-fold scores (10-47 rows since the nineteenth session, 48-77
                since the twentieth; before, tables of 20-77 rows held out 10-15 rows);
  tiny          each ADBench Classical set's normal rows, fitted on 10, 15 or 19 of them at random
                (groups ``tiny@10``, ...; other numbers with ``--fit-rows``) and scored on the rest:
                the dev sets' smallest tables.
                For ``small`` and ``tiny`` the summary's ``caught_mean`` is the mean share of each
                set's anomalies (up to 10,000) the same fit flags: a threshold set far out flags few
                clean rows and few anomalies alike;
  kinds         eight more kinds of clean series, fit and scored as ``synthetic``, drawn up (2026-12-07)
                after every setting was chosen, to check that false-alarm results carry to kinds of
                series no setting was chosen on; not to choose settings on (``check_series``);
  multivariate  the ``train`` part of every ``--every``-th file of ``DATA/multivariate`` (assumed
                normal): fit on its first 60%, score the rest;
  nab           each NAB series (``DATA/nab/*/*.parquet``) up to its first labelled point: fit on the
                first 60% of that stretch, score the rest (series whose stretch is shorter than 1,000
                points are left out).

``--methods`` adds, for the series cases, the window baselines of ``benchmarks/multivariate.py``
(``knn_window``, ``iforest_window``: PyOD on 32-step windows of the channels standardized by the fitted
part, the whole series scored in one pass) with ``event_f1.py``'s rule for them, flags above Tukey's fence
of the fitted timestamps' scores (the ``contamination`` quantile for a float): whether a case's flags come
from the detector or from a continuation unlike what was fitted.

ADBench: https://github.com/Minqi824/ADBench (``datasets/Classical``, ``datasets/CV_by_ResNet18``); the
multivariate series as ``../shared/data/README.md`` describes them (SMAP/MSL via TranAD, ASD, SKAB);
NAB: https://github.com/numenta/NAB (``data/``, labels from ``labels/combined_windows.json``), as parquet
files of ``timestamp``, ``value``, ``label``.

    python benchmarks/false_alarms.py                                # every case, the defaults
    python benchmarks/false_alarms.py --cases tables --contamination 0.05
    python benchmarks/false_alarms.py --cases synthetic --vae-params '{"window": 32}'
    python benchmarks/false_alarms.py --cases kinds --seeds 0,1,2 --methods vae,iforest_window,knn_window
    python benchmarks/false_alarms.py --cases check --seeds 0,1,2
    python benchmarks/false_alarms.py --cases small --seeds 0,1,2 --contamination 0.05
    python benchmarks/false_alarms.py --cases tiny --seeds 0,1,2
    python benchmarks/false_alarms.py --cases synthetic,multivariate,nab --every 6 --methods vae,knn_window
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import multivariate
import numpy as np
import pandas as pd
from check_tables import check_tables
from sklearn.model_selection import train_test_split

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.thresholds import offset_from

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MAX_ROWS = 10_000
SYNTHETIC_POINTS = 3000
SMALL_FIT_ROWS = (10, 15, 20, 30, 40)
TINY_FIT_ROWS = (10, 15, 19)
MIN_NAB_STRETCH = 1000


def _record(
    group: str,
    case: str,
    flagged: np.ndarray,
    n_fitted: int,
    method: str = "vae",
    caught: np.ndarray | None = None,
) -> dict:
    return {
        "group": group,
        "case": case,
        "method": method,
        "flagged": float(np.mean(flagged)),
        "caught": np.nan if caught is None else float(np.mean(caught)),
        "fitted_on": n_fitted,
    }


def tables(folder: Path, params: dict, seed: int, fit_rows: tuple[int, ...] = ()) -> list[dict]:
    """Held-out normal rows of each set in ``folder``; with ``fit_rows``, of each set fitted on each of
    those numbers of its normal rows (groups ``tiny@N``), and the share of its anomalies caught."""
    records = []
    for path in sorted(folder.glob("*.npz")):
        loaded = np.load(path)
        x, y = loaded["X"].astype(np.float64), loaded["y"].astype(int)
        if not fit_rows:
            records.append(_held_out_flags("tables", path.stem, x[y == 0], params, seed))
        records += [
            _held_out_flags(f"tiny@{n_rows}", path.stem, x[y == 0], params, seed, n_rows, x[y == 1])
            for n_rows in fit_rows
        ]
    return records


def checked_tables(params: dict, seed: int) -> list[dict]:
    """Held-out normal rows of each of ``check_tables``' tasks."""
    return [_held_out_flags("check", name, x[y == 0], params, seed) for name, x, y in check_tables(seed)]


def small_tables(params: dict, seed: int, fit_rows: tuple[int, ...] = SMALL_FIT_ROWS) -> list[dict]:
    """Each of ``check_tables``' tasks fitted on ``fit_rows`` of its normal rows, the rest scored, and
    the share of its anomalies caught."""
    return [
        _held_out_flags(f"small@{n_rows}", name, x[y == 0], params, seed, n_rows, x[y == 1])
        for name, x, y in check_tables(seed)
        for n_rows in fit_rows
    ]


def _held_out_flags(
    group: str,
    case: str,
    normal: np.ndarray,
    params: dict,
    seed: int,
    train_size: float = 0.7,
    anomalies: np.ndarray | None = None,
) -> dict:
    """The flagged share of the ``normal`` rows (at most MAX_ROWS) left once the detector is fitted on
    ``train_size`` of them (a share, or a number of rows), drawn at random; with ``anomalies``, also
    the share of them (at most MAX_ROWS) that the same fit flags."""
    rng = np.random.default_rng(seed)
    if len(normal) > MAX_ROWS:
        normal = normal[rng.choice(len(normal), MAX_ROWS, replace=False)]
    fit_rows, held_out = train_test_split(normal, train_size=train_size, random_state=seed)
    detector = VAEAnomalyDetector(**{"random_state": seed, **params}).fit(fit_rows)
    caught = None
    if anomalies is not None:
        if len(anomalies) > MAX_ROWS:
            anomalies = anomalies[rng.choice(len(anomalies), MAX_ROWS, replace=False)]
        caught = detector.predict(anomalies) == -1
    return _record(group, case, detector.predict(held_out) == -1, len(fit_rows), caught=caught)


def synthetic_series(seed: int) -> dict[str, np.ndarray]:
    """Three clean series of 2 * SYNTHETIC_POINTS points."""
    rng = np.random.default_rng(seed)
    n = 2 * SYNTHETIC_POINTS
    factor = np.zeros(n)
    for t in range(1, n):
        factor[t] = 0.95 * factor[t - 1] + rng.normal(scale=0.3)
    sensors = factor[:, None] * np.array([1.0, 0.7, -0.5]) + 0.1 * rng.normal(size=(n, 3))
    hours = np.arange(n)
    traffic = (
        100
        + 40 * np.sin(2 * np.pi * hours / 24)
        + 15 * np.sin(2 * np.pi * hours / (24 * 7))
        + rng.normal(scale=5, size=n)
    )
    sine = np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(scale=0.05, size=n)
    return {"ar1 sensors": sensors, "hourly traffic": traffic[:, None], "5-minute sine": sine[:, None]}


def check_series(seed: int) -> dict[str, np.ndarray]:
    """Eight clean series of 2 * SYNTHETIC_POINTS points, of kinds a user brings: heavy-tailed noise
    (latency with Student-t noise, returns with GARCH(1, 1) volatility), low Poisson counts on a daily
    cycle, a slow mean-reverting process, a machine switching between two states after 20-80 steps
    (two channels), a sawtooth, five sensors on very different scales, and minute data with a daily
    cycle. Their seeds differ from ``synthetic_series``'."""
    rng = np.random.default_rng(100 + seed)
    n = 2 * SYNTHETIC_POINTS
    steps = np.arange(n)
    slow, returns, variance = np.zeros(n), np.zeros(n), 1.0
    for t in range(1, n):
        slow[t] = 0.995 * slow[t - 1] + rng.normal(scale=0.1)
        variance = 0.1 + 0.1 * returns[t - 1] ** 2 + 0.85 * variance
        returns[t] = np.sqrt(variance) * rng.normal()
    durations = rng.integers(20, 80, size=n // 20)
    state = (np.repeat(np.arange(len(durations)) % 2, durations)[:n]).astype(np.float64)
    machine = np.column_stack([10 * state, 2 * state]) + rng.normal(scale=[0.3, 0.1], size=(n, 2))
    cycle, other = np.sin(2 * np.pi * steps / 96), np.cos(2 * np.pi * steps / 96)
    noisy = 20 + 3 * cycle + rng.normal(scale=0.5, size=n)
    sensors = np.column_stack([1000 + 50 * cycle, 0.01 * cycle, noisy, rng.normal(size=n), 5 * other])
    series = {
        "t3 latency": 50 + 5 * rng.standard_t(3, size=n),
        "poisson counts": rng.poisson(3 + 2.5 * np.sin(2 * np.pi * steps / 1440)).astype(np.float64),
        "slow mean reversion": slow,
        "on-off machine": machine,
        "garch returns": returns,
        "sawtooth jobs": (steps % 60) / 60 + rng.normal(scale=0.02, size=n),
        "5 sensors, scales": sensors + rng.normal(scale=0.05, size=(n, 5)),
        "daily cycle, minutes": 10 + np.sin(2 * np.pi * steps / 1440) + rng.normal(scale=0.3, size=n),
    }
    return {name: values.reshape(n, -1) for name, values in series.items()}


def _series_flags(method: str, values: np.ndarray, split: int, params: dict, seed: int) -> np.ndarray:
    """Flags on ``values[split:]`` from ``method`` fitted on ``values[:split]``: the detector's
    ``predict``, or a window baseline's scores of the whole series above Tukey's fence of its
    training timestamps' scores (``event_f1.py``'s rule for the baselines)."""
    if method == "vae":
        detector = TimeSeriesVAEDetector(**{"random_state": seed, **params}).fit(values[:split])
        return detector.predict(values[split:]) == -1
    scores = multivariate.baseline(method)(values, split)
    return scores[split:] > -offset_from(-scores[:split], params["contamination"])


def synthetic(seed: int) -> list[tuple[str, str, np.ndarray, int]]:
    """The script's own clean series: fit on the first half, score the second."""
    return [("synthetic", name, values, SYNTHETIC_POINTS) for name, values in synthetic_series(seed).items()]


def kinds(seed: int) -> list[tuple[str, str, np.ndarray, int]]:
    """``check_series``: fit on the first half, score the second."""
    return [("kinds", name, values, SYNTHETIC_POINTS) for name, values in check_series(seed).items()]


def train_part(path: Path) -> np.ndarray:
    """The channels of a multivariate file's ``train`` rows (assumed clean), in row order."""
    frame = pd.read_parquet(path)
    train = frame[frame["split"] == "train"].drop(columns=["timestamp", "label", "split"])
    return train.to_numpy(dtype=np.float64)


def multivariate_cases(folder: Path, every: int) -> list[tuple[str, str, np.ndarray, int]]:
    """The train part of every ``every``-th multivariate file: fit on its first 60%, score the rest."""
    cases = []
    for path in sorted(folder.glob("*.parquet"))[::every]:
        values = train_part(path)
        cases.append(("multivariate", path.stem, values, int(0.6 * len(values))))
    return cases


def nab(folder: Path) -> list[tuple[str, str, np.ndarray, int]]:
    """Each NAB series up to its first labelled point: fit on the first 60%, score the rest."""
    cases = []
    for path in sorted(folder.glob("*/*.parquet")):
        frame = pd.read_parquet(path)
        labels = frame["label"].to_numpy()
        stretch = int(labels.argmax()) if labels.any() else len(labels)
        if stretch < MIN_NAB_STRETCH:
            continue
        values = frame["value"].to_numpy(dtype=np.float64)[:stretch, None]
        cases.append(("nab", path.stem, values, int(0.6 * stretch)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with adbench/, multivariate/, nab/"
    )
    parser.add_argument("--cases", default="tables,synthetic,multivariate,nab")
    parser.add_argument("--embeddings", action="store_true", help="also the ADBench embedding sets")
    parser.add_argument("--every", type=int, default=3, help="multivariate: every n-th file")
    parser.add_argument("--seeds", default="0")
    parser.add_argument(
        "--fit-rows",
        default="",
        help="tiny and small: the numbers of normal rows fitted on, comma-separated "
        f"(default {','.join(map(str, TINY_FIT_ROWS))} and {','.join(map(str, SMALL_FIT_ROWS))})",
    )
    parser.add_argument("--contamination", default="auto", help='"auto" or a float, for every detector')
    parser.add_argument("--vae-params", default="{}", help="JSON of more detector parameters")
    parser.add_argument(
        "--methods",
        default="vae",
        help="series cases: vae and/or the window baselines knn_window, iforest_window (tables: vae only)",
    )
    arguments = parser.parse_args()
    contamination = (
        arguments.contamination if arguments.contamination == "auto" else float(arguments.contamination)
    )
    params = {"contamination": contamination, **json.loads(arguments.vae_params)}
    table_params = {k: v for k, v in params.items() if k not in ("window", "stride", "aggregation")}
    cases = arguments.cases.split(",")
    fit_rows = tuple(map(int, arguments.fit_rows.split(","))) if arguments.fit_rows else ()
    methods = arguments.methods.split(",")
    needed = {"tables": "adbench", "tiny": "adbench", "multivariate": "multivariate", "nab": "nab"}
    missing = [
        arguments.data / needed[c] for c in cases if c in needed and not (arguments.data / needed[c]).is_dir()
    ]
    if missing:
        sys.exit(
            f"Data not found: {', '.join(map(str, missing))}; see the docstring for where it comes from."
        )
    warnings.simplefilter("ignore")  # irregular NAB timestamps; the flags are what is measured
    recorded = []
    if "multivariate" in cases:
        recorded += multivariate_cases(arguments.data / "multivariate", arguments.every)
    if "nab" in cases:
        recorded += nab(arguments.data / "nab")
    records = []
    for seed in map(int, arguments.seeds.split(",")):
        found = []
        if "tables" in cases and "vae" in methods:
            found += tables(arguments.data / "adbench", table_params, seed)
            if arguments.embeddings:
                found += tables(arguments.data / "adbench_embeddings", table_params, seed)
        if "tiny" in cases and "vae" in methods:
            found += tables(arguments.data / "adbench", table_params, seed, fit_rows or TINY_FIT_ROWS)
        if "check" in cases and "vae" in methods:
            found += checked_tables(table_params, seed)
        if "small" in cases and "vae" in methods:
            found += small_tables(table_params, seed, fit_rows or SMALL_FIT_ROWS)
        series = (synthetic(seed) if "synthetic" in cases else []) + (kinds(seed) if "kinds" in cases else [])
        series += recorded
        found += [
            _record(group, case, _series_flags(method, values, split, params, seed), split, method)
            for group, case, values, split in series
            for method in methods
        ]
        records += [{**record, "seed": seed} for record in found]
    frame = pd.DataFrame(records)
    means = frame.groupby(["group", "case", "method"], sort=False)[["flagged", "caught"]].mean()
    per_case = means["flagged"].unstack("method")
    pd.set_option("display.width", 200)
    print(per_case[methods].round(4).to_string())
    # Issue 31's targets: at most 3% with "auto"; between 2.5% and 10% with 0.05 (half to twice a float).
    low, high = (0.0, 0.03) if contamination == "auto" else (contamination / 2, 2 * contamination)
    groups = per_case.stack().dropna().rename("flagged").groupby(level=["method", "group"], sort=False)
    summary = groups.agg(["size", "median", "max"]).set_axis(["cases", "median", "worst"], axis=1)
    summary[f"over_{high:g}"] = groups.apply(lambda flagged: int((flagged > high).sum()))
    if low > 0:
        summary[f"under_{low:g}"] = groups.apply(lambda flagged: int((flagged < low).sum()))
    # The counterweight of a threshold set far out: the share of the anomalies it flags (tiny, small).
    summary["caught_mean"] = means["caught"].groupby(level=["method", "group"], sort=False).mean()
    print(f"\ncontamination={contamination}, params {params}")
    print(summary.round(4).reset_index().to_string(index=False))


if __name__ == "__main__":
    main()
