"""Time-series benchmark: TimeSeriesVAEDetector beside Sub-PCA, KNN, IForest, PyOD's VAE and a rolling
z-score on NAB.

Every labelled series in ../shared/data/nab/**.parquet (columns timestamp, value, label): fit on the first
30%, score the whole series, report metrics on the remaining 70%. Series whose last 70% holds no labelled
anomaly are skipped (no metric is defined there). The window baselines see the same windows as the
detector (its ``window`` and ``stride``) and map window scores to timestamps by the same rule:
``sub_pca`` scores a window by its squared reconstruction error from the principal components that
explain 95% of the training windows' variance (TSB-AD's univariate leader, Sub-PCA, is PCA on
subsequences); ``knn_window`` is PyOD's KNN (distance to the 5th nearest training window);
``iforest`` is PyOD's IForest and ``pyod_vae`` PyOD's VAE. The rolling z-score scores x[t] against the
mean and standard deviation of the ``window`` points before it.

Then scoring speed: a univariate synthetic series of --speed-points timestamps, scored by a detector
fitted on its first 20,000 points, in timestamps per second (median of three runs).

    python benchmarks/timeseries.py                                 # every method, then speed
    python benchmarks/timeseries.py --methods vae --vae-params '{"window": 32}'   # tuning runs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from data_sources import files_or_exit
from sklearn.decomposition import PCA

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.metrics import timeseries_metrics
from vae_anomaly.windowing import WINDOW_RULES, Windows, auto_window, window_scores_to_points, window_starts

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"
TRAIN_SHARE = 0.3
SEED = 0
SUB_PCA_VARIANCE = 0.95
METRICS = ("vus_pr", "pr_auc", "roc_auc", "vus_roc", "best_f1", "point_adjusted_f1")


def load_series(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The series as a one-column DataFrame in row order, and its labels.

    Row order, not the timestamps, as TSB-AD does: some NAB files repeat an hour at a clock change,
    which the detector refuses in a DatetimeIndex.
    """
    frame = pd.read_parquet(path)
    return frame[["value"]].astype(np.float64), frame["label"].to_numpy().astype(int)


def _window_rows(
    values: np.ndarray, window: int, stride: int, mean: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    starts = window_starts(len(values), window, stride)
    return Windows(((values - mean) / scale).reshape(-1, 1), window, starts)[:], starts


def _baseline_scores(
    name: str, series: pd.DataFrame, n_train: int, detector: TimeSeriesVAEDetector
) -> np.ndarray:
    """Anomaly scores of a window baseline (fitted on the training windows) or of the rolling z-score."""
    values = series["value"].to_numpy()
    window = auto_window(1) if detector.window == "auto" else detector.window
    if name == "rolling_zscore":
        past = pd.Series(values).shift(1).rolling(window, min_periods=2)
        scale = past.std().to_numpy()
        z = np.abs(values - past.mean().to_numpy()) / np.where(scale > 0, scale, np.nan)
        return np.nan_to_num(z, nan=0.0, posinf=np.nanmax(z[np.isfinite(z)]))
    mean, scale = values[:n_train].mean(), values[:n_train].std() or 1.0
    train_rows, _ = _window_rows(values[:n_train], window, detector.stride, mean, scale)
    rows, starts = _window_rows(values, window, detector.stride, mean, scale)
    if name == "sub_pca":
        pca = PCA(n_components=SUB_PCA_VARIANCE, svd_solver="full").fit(train_rows)
        scores = np.square(rows - pca.inverse_transform(pca.transform(rows))).sum(axis=1)
        return window_scores_to_points(scores, starts, window, len(values), detector.aggregation)
    if name == "iforest":
        from pyod.models.iforest import IForest

        model = IForest(random_state=SEED)
    elif name == "knn_window":
        from pyod.models.knn import KNN

        model = KNN()
    else:
        from pyod.models.vae import VAE

        model = VAE(random_state=SEED, verbose=0)
    model.fit(train_rows)
    scores = model.decision_function(rows)
    return window_scores_to_points(scores, starts, window, len(values), detector.aggregation)


def run_series(
    series: pd.DataFrame, labels: np.ndarray, methods: list[str], vae_params: dict
) -> dict[str, dict[str, float]]:
    """Metrics and seconds of every method on one series; the VAE reports each window rule from one fit."""
    n_train = int(TRAIN_SHARE * len(series))
    detector = TimeSeriesVAEDetector(**{"random_state": SEED, **vae_params})
    results: dict[str, dict[str, float]] = {}
    for name in methods:
        start = time.perf_counter()
        if name == "vae":
            detector.fit(series.iloc[:n_train])
            fit_seconds = time.perf_counter() - start
            default_rule = detector.aggregation
            for rule in WINDOW_RULES:
                start = time.perf_counter()
                scores = detector.set_params(aggregation=rule).anomaly_score(series)
                label = "vae" if rule == default_rule else f"vae[{rule}]"
                results[label] = {
                    **timeseries_metrics(labels[n_train:], scores[n_train:]),
                    "fit_s": fit_seconds,
                    "score_s": time.perf_counter() - start,
                }
            detector.set_params(aggregation=default_rule)
            continue
        scores = _baseline_scores(name, series, n_train, detector)
        results[name] = {**timeseries_metrics(labels[n_train:], scores[n_train:]), "fit_s": 0.0}
        results[name]["score_s"] = time.perf_counter() - start  # fit and score together
    return results


def scoring_speed(n_points: int, vae_params: dict) -> dict[str, float]:
    """Timestamps per second scored on a long univariate series (fit on its first 20,000 points)."""
    rng = np.random.default_rng(SEED)
    t = np.arange(n_points)
    values = (
        np.sin(2 * np.pi * t / 288) + 0.3 * np.sin(2 * np.pi * t / 2016) + 0.1 * rng.normal(size=n_points)
    )
    detector = TimeSeriesVAEDetector(**{"random_state": SEED, **vae_params}).fit(values[:20_000])
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        detector.score_samples(values)
        timings.append(time.perf_counter() - start)
    seconds = float(np.median(timings))
    return {"points": n_points, "seconds": seconds, "points_per_s": n_points / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--methods", default="vae,sub_pca,knn_window,iforest,pyod_vae,rolling_zscore")
    parser.add_argument(
        "--vae-params",
        default="{}",
        help="JSON of TimeSeriesVAEDetector parameters; random_state replaces the seed 0",
    )
    parser.add_argument("--speed-points", type=int, default=2_000_000, help="0 skips the speed run")
    parser.add_argument("--csv", type=Path, help="also write the per-series results here")
    args = parser.parse_args()
    vae_params = json.loads(args.vae_params)
    methods = args.methods.split(",")

    paths = files_or_exit(args.data, "**/*.parquet", "nab")
    rows = []
    for path in paths:
        series, labels = load_series(path)
        if labels[int(TRAIN_SHARE * len(series)) :].sum() == 0:
            print(f"skipped {path.stem}: no labelled anomaly in its last 70%")
            continue
        for method, result in run_series(series, labels, methods, vae_params).items():
            rows.append({"series": path.stem, "method": method, **result})
        print(
            f"{path.stem}: "
            + ", ".join(f"{r['method']} {r['vus_pr']:.3f}" for r in rows if r["series"] == path.stem)
        )
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    summary = (
        table.groupby("method")[[*METRICS, "fit_s", "score_s"]].mean().sort_values("vus_pr", ascending=False)
    )
    print(
        f"\nMean over {table['series'].nunique()} NAB series (fit on the first 30%, metrics on the last 70%):"
    )
    print(summary.to_markdown(floatfmt=".4f"))
    if args.speed_points:
        speed = scoring_speed(args.speed_points, vae_params)
        print(
            f"\nScoring speed, univariate: {speed['points']:,} timestamps in {speed['seconds']:.3f} s = "
            f"{speed['points_per_s']:,.0f} timestamps/s"
        )


if __name__ == "__main__":
    main()
