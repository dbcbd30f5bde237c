"""Missing values at scoring: are rows (timestamps) with a gap flagged for the gap alone?

Four cases, each fitted on complete data with the defaults (``missing="skip"`` for tables) and scored
on new data in which values are blanked:
  correlated   synthetic rows where d = a + b and f = c - e (plus 1% noise), anomalies off f = c - e:
               d, then a, blanked in half of the rows;
  tables       ADBench's Classical sets (novelty protocol: fit on 70% of the normal rows, score the rest
               and every anomaly), half of the scored rows with 5% or 20% of their cells blanked;
  series       a 4-channel sine and a 3-channel AR(1) series (phi 0.95), fitted on 2,000 points; in the
               clean continuation one channel blanked for 10 points, in 5 runs evenly spaced;
  multivariate the ``train`` part of every ``--every``-th multivariate file (assumed clean): fit on its
               first 60%, the rest blanked as ``series`` does.
For each: the flagged fraction of clean rows with a gap and of those without (the issue-29 target is a
ratio of at most 1.5), and the ROC-AUC on anomalies with and without blanks (a drop of at most 0.02).

``--detector gaussian`` scores the tables with a reference instead of the VAE: one Gaussian (Ledoit-Wolf
covariance of the fitted rows), each row scored by the exact marginal density of its observed values.
It loses nothing to a gap beyond the information the blanked cells held, so its AUC drop is what
blanking costs any model that sees the table as one Gaussian would (its threshold: the 95th
percentile of its training scores).

ADBench: https://github.com/Minqi824/ADBench (``datasets/Classical/*.npz``), laid out as
``DATA/*.npz``; the multivariate series (``--multivariate-data``) as ``benchmarks/multivariate.py``
describes them; the other cases need no data.

    python benchmarks/missing.py                        # every case, seeds 0-2
    python benchmarks/missing.py --cases correlated --vae-params '{"epochs": 50}'
    python benchmarks/missing.py --cases tables --detector gaussian --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from data_sources import files_or_exit
from false_alarms import synthetic_series, train_part
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "adbench"
MAX_ROWS = 10_000
GAP_POINTS, GAP_RUNS = 10, 5


class GaussianMarginal:
    """The reference for tables: negative log density of a row's observed values under one Gaussian."""

    def fit(self, x: np.ndarray) -> GaussianMarginal:
        self.mean_, self.scale_ = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.covariance_ = LedoitWolf().fit((x - self.mean_) / self.scale_).covariance_
        self.anomaly_threshold_ = np.quantile(self.anomaly_score(x), 0.95)
        return self

    def anomaly_score(self, x: np.ndarray) -> np.ndarray:
        z, observed = (x - self.mean_) / self.scale_, ~np.isnan(x)
        scores = np.empty(len(x))
        for pattern in np.unique(observed, axis=0):
            rows = (observed == pattern).all(axis=1)
            covariance = self.covariance_[np.ix_(pattern, pattern)]
            log_det = np.linalg.slogdet(covariance)[1]
            part = z[np.ix_(rows, pattern)]
            distance = np.einsum("ij,ij->i", part @ np.linalg.inv(covariance), part)
            scores[rows] = 0.5 * (distance + log_det + pattern.sum() * np.log(2 * np.pi))
        return scores


def _blank(x: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with ``fraction`` of the cells (at least one) blanked in a random half of the rows."""
    blanked, gapped = x.copy(), rng.random(len(x)) < 0.5
    for row in np.flatnonzero(gapped):
        n_cells = max(1, round(fraction * x.shape[1]))
        blanked[row, rng.choice(x.shape[1], n_cells, replace=False)] = np.nan
    return blanked, gapped


def _record(name: str, flagged: np.ndarray, gapped: np.ndarray, auc: float, auc_blanked: float) -> dict:
    with_gap, complete = flagged[gapped].mean(), flagged[~gapped].mean()
    return {
        "case": name,
        "flagged_with_gap": with_gap,
        "flagged_complete": complete,
        "ratio": with_gap / max(complete, 1e-3),
        "roc_auc": auc,
        "roc_auc_blanked": auc_blanked,
        "auc_drop": auc - auc_blanked,
    }


def correlated(seed: int, params: dict) -> list[dict]:
    """Blank d, then a, where d = a + b: the encoder sees the column mean in the gap."""
    rng = np.random.default_rng(seed)

    def rows(n: int) -> np.ndarray:
        a, b, c, e = rng.normal(size=(4, n))
        return np.column_stack([a, b, a + b + 0.01 * rng.normal(size=n), c, e, c - e])

    train, clean = rows(3000), rows(2000)
    anomalies = rows(100)
    # f off c - e: only a correlation is broken, and one that blanking a or d leaves observed.
    anomalies[:, 5] += rng.choice([-3.0, 3.0], 100)
    detector = VAEAnomalyDetector(**{"missing": "skip", "random_state": seed, **params}).fit(train)
    x, y = np.vstack([clean, anomalies]), np.r_[np.zeros(2000), np.ones(100)]
    auc = roc_auc_score(y, detector.anomaly_score(x))
    records = []
    for column, label in ((2, "d"), (0, "a")):
        gapped = rng.random(len(x)) < 0.5
        blanked = x.copy()
        blanked[gapped, column] = np.nan
        scores = detector.anomaly_score(blanked)
        flagged = scores[:2000] > detector.anomaly_threshold_
        records.append(
            _record(f"correlated, {label} blanked", flagged, gapped[:2000], auc, roc_auc_score(y, scores))
        )
    return records


def tables(seed: int, params: dict, data: Path, half: str, reference: bool = False) -> list[dict]:
    """ADBench's sets in the novelty protocol, half of the scored rows with 5% or 20% of cells blanked."""
    files = sorted(data.glob("*.npz"))
    if not files:
        sys.exit(f"No .npz files in {data}: lay out ADBench's Classical sets there (see the docstring).")
    files = files[0::2] if half == "even" else files[1::2] if half == "odd" else files
    records = []
    for path in files:
        loaded = np.load(path)
        x, y = loaded["X"].astype(np.float64), loaded["y"].astype(int)
        if len(x) > MAX_ROWS:
            x, _, y, _ = train_test_split(x, y, train_size=MAX_ROWS, stratify=y, random_state=seed)
        normal = np.flatnonzero(y == 0)
        fit_rows, held_out = train_test_split(normal, train_size=0.7, random_state=seed)
        scored = np.r_[held_out, np.flatnonzero(y == 1)]
        detector = (
            GaussianMarginal()
            if reference
            else VAEAnomalyDetector(**{"missing": "skip", "random_state": seed, **params})
        ).fit(x[fit_rows])
        auc = roc_auc_score(y[scored], detector.anomaly_score(x[scored]))
        rng = np.random.default_rng(seed)
        for fraction in (0.05, 0.2):
            blanked, gapped = _blank(x[scored], fraction, rng)
            scores = detector.anomaly_score(blanked)
            clean = y[scored] == 0
            flagged = scores[clean] > detector.anomaly_threshold_
            auc_blanked = roc_auc_score(y[scored], scores)
            records.append(_record(f"{path.stem}, {fraction:.0%}", flagged, gapped[clean], auc, auc_blanked))
    return records


def _series_gaps(name: str, values: np.ndarray, split: int, params: dict, seed: int) -> dict:
    """Fit on ``values[:split]``; in the rest, blank one random channel for 10 points in each of 5
    evenly spaced runs, and compare the flagged share of those timestamps with the complete ones' and
    with their own without the blanks (``gap_points_unblanked``)."""
    rng = np.random.default_rng(seed)
    detector = TimeSeriesVAEDetector(**{"random_state": seed, **params}).fit(values[:split])
    blanked = values[split:].copy()
    gapped = np.zeros(len(blanked), dtype=bool)
    for start in np.linspace(0, len(blanked) - GAP_POINTS, GAP_RUNS + 2).astype(int)[1:-1]:
        gapped[start : start + GAP_POINTS] = True
        blanked[start : start + GAP_POINTS, rng.integers(values.shape[1])] = np.nan
    flagged = detector.predict(blanked) == -1
    # The gaps' timestamps in the series as it was: flagged there, a gap point is not flagged for the gap.
    unblanked = (detector.predict(values[split:]) == -1)[gapped].mean()
    return {**_record(name, flagged, gapped, np.nan, np.nan), "gap_points_unblanked": unblanked}


def series(seed: int, params: dict) -> list[dict]:
    """A 4-channel sine (the issue's case) and a 3-channel AR(1) series, each with 10-point gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(4000)[:, None]
    sine = np.sin(2 * np.pi * t / 50 + np.arange(4) * np.pi / 4) + 0.02 * rng.normal(size=(4000, 4))
    sensors = synthetic_series(seed)["ar1 sensors"][:4000]  # false_alarms.py's clean AR(1) case
    return [
        _series_gaps("series, 4-channel sine", sine, 2000, params, seed),
        _series_gaps("series, AR(1) sensors", sensors, 2000, params, seed),
    ]


def multivariate(seed: int, params: dict, folder: Path, every: int) -> list[dict]:
    """The train part of every ``every``-th multivariate file (clean): fit on its first 60%, score the
    rest with 10-point gaps as ``series`` does."""
    records = []
    for path in files_or_exit(folder, "*.parquet", "multivariate")[::every]:
        values = train_part(path)
        records.append(
            _series_gaps(f"multivariate, {path.stem}", values, int(0.6 * len(values)), params, seed)
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of ADBench .npz files")
    parser.add_argument(
        "--multivariate-data",
        type=Path,
        default=DEFAULT_DATA.parent / "multivariate",
        help="folder of the multivariate series' parquet files",
    )
    parser.add_argument("--every", type=int, default=6, help="every n-th multivariate file")
    parser.add_argument("--cases", default="correlated,tables,series", help="and/or multivariate")
    parser.add_argument("--half", choices=["even", "odd", "all"], default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--vae-params", default="{}", help="JSON of detector parameters")
    parser.add_argument("--detector", choices=["vae", "gaussian"], default="vae", help="see above")
    arguments = parser.parse_args()
    params = json.loads(arguments.vae_params)
    cases = arguments.cases.split(",")
    records = []
    for seed in map(int, arguments.seeds.split(",")):
        if "correlated" in cases:
            records += [{**r, "seed": seed} for r in correlated(seed, params)]
        if "tables" in cases:
            records += [
                {**r, "seed": seed}
                for r in tables(
                    seed, params, arguments.data, arguments.half, arguments.detector == "gaussian"
                )
            ]
        if "series" in cases:
            records += [{**r, "seed": seed} for r in series(seed, params)]
        if "multivariate" in cases:
            records += [
                {**r, "seed": seed}
                for r in multivariate(seed, params, arguments.multivariate_data, arguments.every)
            ]
    frame = pd.DataFrame(records)
    table = frame.groupby("case", sort=False).mean(numeric_only=True).drop(columns="seed")
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
    tabular = frame[frame["case"].str.contains("%")]
    if len(tabular):
        worst = tabular.groupby("case")[["ratio", "auc_drop"]].mean().max()
        print(
            f"\ntables: mean ratio {tabular['ratio'].mean():.2f}, worst set ratio {worst['ratio']:.2f}, "
            f"mean AUC drop {tabular['auc_drop'].mean():.4f}, worst set drop {worst['auc_drop']:.4f}"
        )


if __name__ == "__main__":
    main()
