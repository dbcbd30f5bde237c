"""Multivariate time-series benchmark: TimeSeriesVAEDetector beside PCA, KNN and IsolationForest.

Every series in ../shared/data/multivariate/*.parquet (columns timestamp, the channels, label, split):
each method is fitted on the rows of split "train" (the first rows, assumed normal), scores the whole
series in one pass (so the first test windows have context) and is measured on the "test" rows. Series
whose test rows hold no anomaly are skipped. Groups (SMAP, ASD, SKAB, from the file names) weigh the
same in the overall means, and each group is split into two fixed halves by name order (even and odd
positions) so that settings chosen on one half can be reported on the other.

Baselines see the channels standardized with the training mean and standard deviation:
  pca_point      PyOD PCA on single timestamps;
  pca_window     PyOD PCA on flattened 32-step windows (stride 1);
  knn_window     PyOD KNN on the same windows;
  iforest_window PyOD IForest on the same windows;
  iforest_point  PyOD IForest on single timestamps.
Window scores become timestamp scores by the VAE's default rule, the maximum over covering windows.
The PCA baselines leave out the channels that are constant in the training rows (SMAP's unused command
flags): PyOD's PCA divides by their zero eigenvalues and scores NaN (where no channel varies in
training, PCA scores every timestamp alike).

    python benchmarks/multivariate.py                      # every method, every series
    python benchmarks/multivariate.py --methods vae --half even --vae-params '{"window": 32}'
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from data_sources import files_or_exit

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.metrics import timeseries_metrics
from vae_anomaly.windowing import Windows, auto_window, window_scores_to_points, window_starts

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multivariate"
SEED = 0
BASELINE_WINDOW = 32
METRICS = ("vus_pr", "pr_auc", "roc_auc")
GROUPS = {"smap": "SMAP", "omi": "ASD", "skab": "SKAB"}


def group_of(path: Path) -> str:
    """The data set a file belongs to, from its name."""
    return next(group for prefix, group in GROUPS.items() if path.stem.startswith(prefix))


def halves(paths: list[Path]) -> dict[str, str]:
    """Each series' fixed half: its position among its group's file names in sorted order."""
    half = {}
    for group in GROUPS.values():
        members = sorted(p for p in paths if group_of(p) == group)
        half.update({p.stem: ("even", "odd")[position % 2] for position, p in enumerate(members)})
    return half


def load(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The channels (float64, row order), the labels, and the number of training rows."""
    frame = pd.read_parquet(path)
    channels = frame.drop(columns=["timestamp", "label", "split"]).to_numpy(dtype=np.float64)
    n_train = int((frame["split"] == "train").sum())
    if not (frame["split"].iloc[:n_train] == "train").all():
        raise ValueError(f"{path}: the train rows do not come first")
    return channels, frame["label"].to_numpy().astype(int), n_train


def _standardized(values: np.ndarray, n_train: int) -> np.ndarray:
    mean, std = values[:n_train].mean(axis=0), values[:n_train].std(axis=0)
    return (values - mean) / np.where(std > 0, std, 1.0)


def _pyod(name: str) -> object:
    if name.startswith("pca"):
        from pyod.models.pca import PCA

        return PCA(random_state=SEED)
    if name.startswith("knn"):
        from pyod.models.knn import KNN

        return KNN()
    from pyod.models.iforest import IForest

    return IForest(random_state=SEED)


def baseline(name: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """A baseline as a function of (series, training rows) -> anomaly score per timestamp."""

    def score(values: np.ndarray, n_train: int) -> np.ndarray:
        standardized = _standardized(values, n_train)
        if name.startswith("pca"):
            standardized = standardized[:, standardized[:n_train].std(axis=0) > 0]
            if standardized.shape[1] == 0:  # nothing varies in training: PCA has nothing to learn
                return np.zeros(len(values))
        model = _pyod(name)
        if name.endswith("_point"):
            model.fit(standardized[:n_train])
            return model.decision_function(standardized)
        starts = window_starts(len(standardized), BASELINE_WINDOW, 1)
        windows = Windows(standardized, BASELINE_WINDOW, starts)[:]
        n_train_windows = int(np.searchsorted(starts, n_train - BASELINE_WINDOW, side="right"))
        model.fit(windows[: max(n_train_windows, 2)])
        window_scores = model.decision_function(windows)
        return window_scores_to_points(window_scores, starts, BASELINE_WINDOW, len(standardized), "max")

    return score


def vae(params: dict) -> Callable[[np.ndarray, int], np.ndarray]:
    """The detector as a function of (series, training rows) -> anomaly score per timestamp."""

    def score(values: np.ndarray, n_train: int) -> np.ndarray:
        detector = TimeSeriesVAEDetector(**{"random_state": SEED, **params})
        window = auto_window(values.shape[1]) if detector.window == "auto" else detector.window
        if n_train < window:  # a series too short to train on at this window: no score
            raise ValueError(f"{n_train} training rows, fewer than window={window}")
        detector.fit(values[:n_train])
        return detector.anomaly_score(values)

    return score


def run(method: str, score: Callable[[np.ndarray, int], np.ndarray], path: Path) -> dict | None:
    """One method on one series: metrics on the test rows and seconds, or None if it has no anomaly."""
    values, labels, n_train = load(path)
    if labels[n_train:].sum() == 0:
        return None
    start = time.perf_counter()
    scores = score(values, n_train)
    seconds = time.perf_counter() - start
    metrics = timeseries_metrics(labels[n_train:], scores[n_train:])
    return {"series": path.stem, "group": group_of(path), "method": method, "seconds": seconds, **metrics}


def scoring_speed(params: dict, n_points: int, n_channels: int) -> float:
    """Timestamps per second that ``anomaly_score`` scores on a synthetic series (median of three)."""
    rng = np.random.default_rng(SEED)
    t = np.arange(n_points)[:, None]
    values = np.sin(2 * np.pi * t / 288 + rng.uniform(0, 6, n_channels)) + 0.1 * rng.normal(
        size=(n_points, n_channels)
    )
    detector = TimeSeriesVAEDetector(**{"random_state": SEED, "epochs": 3, **params}).fit(values[:20_000])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        detector.anomaly_score(values)
        times.append(time.perf_counter() - start)
    return n_points / float(np.median(times))


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean metrics per group and method, and overall with the groups weighing the same."""
    per_group = frame.groupby(["method", "group"])[[*METRICS, "seconds"]].mean()
    overall = per_group.groupby("method").mean().assign(group="overall").set_index("group", append=True)
    return pd.concat([per_group, overall]).sort_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--methods", default="vae,pca_point,pca_window,knn_window,iforest_window,iforest_point"
    )
    parser.add_argument(
        "--vae-params",
        default="{}",
        help="JSON of TimeSeriesVAEDetector parameters; random_state replaces the seed 0",
    )
    parser.add_argument("--half", choices=["even", "odd", "all"], default="all")
    parser.add_argument("--series", default="", help="comma-separated name fragments to run only those")
    parser.add_argument("--speed-points", type=int, default=0, help="also time scoring this many points")
    parser.add_argument("--csv", type=Path, help="also write every row of results here")
    args = parser.parse_args()
    params = json.loads(args.vae_params)
    paths = files_or_exit(args.data, "*.parquet", "multivariate")
    half_of = halves(paths)
    if args.series:
        paths = [p for p in paths if any(part in p.stem for part in args.series.split(","))]
    if args.half != "all":
        paths = [p for p in paths if half_of[p.stem] == args.half]
    if not paths:
        raise SystemExit(f"No series in {args.data} match --series {args.series!r} --half {args.half}.")
    rows = []
    for path in paths:
        for method in args.methods.split(","):
            result = run(method, vae(params) if method == "vae" else baseline(method), path)
            if result is None:
                break
            rows.append({**result, "half": half_of[path.stem]})
            print(
                f"{path.stem:24} {method:15} vus_pr={result['vus_pr']:.3f} pr={result['pr_auc']:.3f} "
                f"roc={result['roc_auc']:.3f} {result['seconds']:.1f}s",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(f"\n## all halves (vae params: {json.dumps(params)})\n")
    print(summary(frame).round(4).to_markdown())
    for half, part in frame.groupby("half"):
        print(f"\n## {half} half\n")
        print(summary(part).round(4).to_markdown())
    if args.speed_points:
        speed = scoring_speed(params, args.speed_points, 25)
        print(f"\nscoring speed, 25 channels: {speed:,.0f} timestamps/s")


if __name__ == "__main__":
    main()
