"""Tabular benchmark: VAEAnomalyDetector beside PyOD's VAE, AutoEncoder, IForest, KNN, LOF, CBLOF and ECOD.

Two protocols, seed 0:
  unsupervised  fit on all X, score all X;
  novelty       fit on a random 70% of the normal rows, score the other 30% plus every anomaly.
Sets above 50,000 rows are subsampled to 50,000, stratified on y. The sets are split into two fixed
halves by their file names in sorted order: "even" (positions 0, 2, ...) and "odd"; settings are chosen
on one half and reported on the other, so that a result carries to sets it was not tuned on.

``--pool wide`` (issue 31) adds the ADBench embedding sets (``--embeddings``, halves by their own
sorted order) and, for each Classical set over 1,000 rows, subsamples of 200 and 400 rows (their
anomalies in the set's share, at least 2; seed 0), each in its parent's half: small tables are what
many users have, and where the defaults lose.

``--pool check`` runs, instead, the tables kept out of every choice (``check_tables.py``: the
scikit-learn bundled sets, each class in turn made rare), all in the half "check": to check results,
not to choose on.

ADBench: https://github.com/Minqi824/ADBench (``datasets/Classical``, ``datasets/CV_by_ResNet18``).

    python benchmarks/tabular.py                       # every method, both protocols
    python benchmarks/tabular.py --methods vae --half even --vae-params '{"epochs": 50}'   # tuning
    python benchmarks/tabular.py --methods vae,iforest,knn --pool wide
    python benchmarks/tabular.py --methods vae,iforest,knn --pool check
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from check_tables import check_tables
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from vae_anomaly import VAEAnomalyDetector

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "adbench"
MAX_ROWS = 50_000
SEED = 0
# --pool wide: the Classical sets over SMALL_FROM rows also enter subsampled to each of SMALL_ROWS.
SMALL_FROM = 1000
SMALL_ROWS = (200, 400)
MIN_SMALL_ANOMALIES = 2


def _pyod(name: str) -> Callable[[], object]:
    def build() -> object:
        if name == "pyod_vae":
            from pyod.models.vae import VAE

            return VAE(epoch_num=10, random_state=SEED, verbose=0)
        if name == "pyod_ae":
            from pyod.models.auto_encoder import AutoEncoder

            return AutoEncoder(random_state=SEED, verbose=0)
        if name == "iforest":
            from pyod.models.iforest import IForest

            return IForest(random_state=SEED)
        if name == "lof":
            from pyod.models.lof import LOF

            return LOF()
        if name == "cblof":
            return _CBLOF()
        if name == "ecod":
            from pyod.models.ecod import ECOD

            return ECOD()
        from pyod.models.knn import KNN

        return KNN()

    return build


class _CBLOF:
    """PyOD's CBLOF (8 clusters); where its clusters do not split into large and small ones, which PyOD
    refuses, the next of 12, 16 and 4 clusters that does."""

    def fit(self, x: np.ndarray) -> _CBLOF:
        from pyod.models.cblof import CBLOF

        for n_clusters in (8, 12, 16, 4):
            try:
                self.model = CBLOF(n_clusters=n_clusters, random_state=SEED).fit(x)
                return self
            except ValueError:
                continue
        raise ValueError("CBLOF found no cluster separation with 4 to 16 clusters")

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function(x)


def halves(paths: list[Path]) -> dict[str, str]:
    """The fixed half of each set: its position among the file names in sorted order, even or odd."""
    return {path.stem: ("even", "odd")[position % 2] for position, path in enumerate(sorted(paths))}


def load_set(path: Path, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """X and y of one ADBench file, subsampled (stratified) to MAX_ROWS, or to ``n_rows`` with the
    set's share of anomalies (at least MIN_SMALL_ANOMALIES)."""
    data = np.load(path)
    x, y = data["X"].astype(np.float64), data["y"].astype(int)
    if n_rows is not None:
        rng = np.random.default_rng(SEED)
        n_anomalies = max(MIN_SMALL_ANOMALIES, round(n_rows * y.mean()))
        rows = np.concatenate(
            [
                rng.choice(np.flatnonzero(y == 1), n_anomalies, replace=False),
                rng.choice(np.flatnonzero(y == 0), n_rows - n_anomalies, replace=False),
            ]
        )
        return x[rows], y[rows]
    if len(x) > MAX_ROWS:
        x, _, y, _ = train_test_split(x, y, train_size=MAX_ROWS, stratify=y, random_state=SEED)
    return x, y


Loader = Callable[[], tuple[np.ndarray, np.ndarray]]


def _given(x: np.ndarray, y: np.ndarray) -> Loader:
    return lambda: (x, y)


def pool(data: Path, embeddings: Path, kind: str) -> list[tuple[str, str, Loader]]:
    """The sets to run as (name, half, a function giving X and y): the Classical sets, with ``kind``
    "wide" also the embedding sets and the Classical sets' small subsamples; "check": the tables
    kept out of every choice instead."""
    if kind == "check":
        return [(name, "check", _given(x, y)) for name, x, y in check_tables()]
    paths = sorted(data.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    half_of = halves(paths)
    sets = [(path.stem, half_of[path.stem], functools.partial(load_set, path)) for path in paths]
    if kind != "wide":
        return sets
    embedded = sorted(embeddings.glob("*.npz"))
    if not embedded:
        raise SystemExit(f"No .npz files in {embeddings}; see the docstring for where they come from.")
    embedded_half = halves(embedded)
    sets += [(path.stem, embedded_half[path.stem], functools.partial(load_set, path)) for path in embedded]
    for path in paths:
        if len(np.load(path)["y"]) > SMALL_FROM:
            sets += [
                (f"{path.stem}@{n}", half_of[path.stem], functools.partial(load_set, path, n))
                for n in SMALL_ROWS
            ]
    return sets


def split(x: np.ndarray, y: np.ndarray, protocol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows, test rows and test labels for one protocol."""
    if protocol == "unsupervised":
        return x, x, y
    rng = np.random.default_rng(SEED)
    normal = rng.permutation(np.flatnonzero(y == 0))
    n_train = int(0.7 * len(normal))
    test = np.concatenate([normal[n_train:], np.flatnonzero(y == 1)])
    return x[normal[:n_train]], x[test], y[test]


def run_method(name: str, vae_params: dict, x_train, x_test, y_test) -> dict[str, dict[str, float]]:
    """Fit and score one method; anomaly scores are oriented higher = more anomalous.

    The VAE reports both of its scores from one fit, as ``vae`` (its ``score_method``) and
    ``vae[other score]``.
    """
    model = VAEAnomalyDetector(**{"random_state": SEED, **vae_params}) if name == "vae" else _pyod(name)()
    start = time.perf_counter()
    model.fit(x_train)
    fitted = time.perf_counter()
    if name == "vae":
        components = model.score_components(x_test)
        main = "neg_elbo" if model.score_method == "elbo" else "reconstruction_error"
        other = "reconstruction_error" if main == "neg_elbo" else "neg_elbo"
        all_scores = {"vae": components[main], f"vae[{other}]": components[other]}
    else:
        all_scores = {name: model.decision_function(x_test)}
    scored = time.perf_counter()
    return {
        method: {
            "roc_auc": roc_auc_score(y_test, scores),
            "pr_auc": average_precision_score(y_test, scores),
            "fit_s": fitted - start,
            "score_s": scored - fitted,
        }
        for method, scores in all_scores.items()
    }


def summarise(part: pd.DataFrame) -> pd.DataFrame:
    """Mean ROC-AUC and PR-AUC and total seconds per method, with the fit time relative to PyOD VAE."""
    summary = part.groupby("method", sort=False).agg(
        mean_roc_auc=("roc_auc", "mean"),
        mean_pr_auc=("pr_auc", "mean"),
        total_fit_s=("fit_s", "sum"),
        total_score_s=("score_s", "sum"),
    )
    if "pyod_vae" in summary.index:
        summary["fit_time_vs_pyod_vae"] = summary["total_fit_s"] / summary.loc["pyod_vae", "total_fit_s"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--methods", default="vae,pyod_vae,pyod_ae,iforest,knn,lof,cblof,ecod")
    parser.add_argument("--protocols", default="unsupervised,novelty")
    parser.add_argument(
        "--vae-params",
        default="{}",
        help="JSON of VAEAnomalyDetector parameters; random_state replaces the seed 0",
    )
    parser.add_argument("--sets", default="", help="comma-separated name fragments to run only those")
    parser.add_argument(
        "--half", choices=["even", "odd", "all"], default="all", help="which half to run (not --pool check)"
    )
    parser.add_argument("--csv", type=Path, help="also write every row of results here")
    parser.add_argument("--pool", choices=["classical", "wide", "check"], default="classical")
    parser.add_argument(
        "--embeddings",
        type=Path,
        help="the embedding sets for --pool wide (default: DATA/../adbench_embeddings)",
    )
    args = parser.parse_args()
    vae_params = json.loads(args.vae_params)
    sets = pool(args.data, args.embeddings or args.data.parent / "adbench_embeddings", args.pool)
    if args.sets:
        sets = [entry for entry in sets if any(part in entry[0] for part in args.sets.split(","))]
    if args.half != "all":
        sets = [entry for entry in sets if entry[1] == args.half]
    if not sets:
        raise SystemExit(
            f"No .npz files in {args.data} (or none matching --sets/--half): put ADBench's Classical sets "
            "there (https://github.com/Minqi824/ADBench, datasets/Classical/*.npz) or pass --data."
        )
    rows = []
    for name, half, load in sets:
        x, y = load()
        for protocol in args.protocols.split(","):
            x_train, x_test, y_test = split(x, y, protocol)
            for method_name in args.methods.split(","):
                for method, result in run_method(method_name, vae_params, x_train, x_test, y_test).items():
                    row = {"set": name, "half": half, "protocol": protocol, "method": method}
                    rows.append({**row, **result})
                    print(
                        f"{name:16} {protocol:12} {method:26} roc={result['roc_auc']:.3f} "
                        f"pr={result['pr_auc']:.3f} fit={result['fit_s']:.1f}s",
                        flush=True,
                    )
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    for protocol, part in frame.groupby("protocol", sort=False):
        print(f"\n## {protocol} (vae params: {json.dumps(vae_params)})\n")
        per_set = part.pivot_table(index="set", columns="method", values="roc_auc", sort=False)
        print("ROC-AUC per set\n" + per_set.round(3).to_markdown() + "\n")
        print(summarise(part).round(3).to_markdown())
        for half, half_part in part.groupby("half", sort=True):
            print(f"\n### {half} half ({half_part['set'].nunique()} sets)\n")
            print(summarise(half_part).round(3).to_markdown())


if __name__ == "__main__":
    main()
