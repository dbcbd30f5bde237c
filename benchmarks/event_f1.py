"""Event metrics (issue 32): the detector's events beside KNN and IForest on windows, on NAB and the
multivariate dev series.

Protocols as ``benchmarks/timeseries.py`` (NAB: fit on the first 30% of each series, measured on the
last 70%) and ``benchmarks/multivariate.py`` (fit on the ``train`` rows, measured on the ``test`` rows).
Every method's scores per timestamp become events by one rule: flags above Tukey's fence of the scores
of its own training timestamps (the detector's threshold for ``contamination="auto"``), and runs of
flags at most one window apart are one event. ``vae`` is ``TimeSeriesVAEDetector.events``, which also
splits a run between cores more than a window apart; ``vae[runs]`` is the detector's flags by the
baselines' rule alone. The baselines are those of the two benchmarks: ``knn_window`` (PyOD's KNN) and
``iforest_window`` (PyOD's IForest) on the same windows as there (NAB: the detector's 128 steps, stride
4; multivariate: 32 steps, stride 1), window scores mapped to timestamps by their maximum.

Reported per data set and half (even and odd positions of the file names in sorted order, within each
multivariate group): event-wise F1 (``vae_anomaly.metrics.event_f1``: a labelled anomaly is found if
an event overlaps it; an event is real if it overlaps a label), composite F1 (``composite_f1``: the
same recall, with the share of flagged timestamps that are labelled as precision), range-based F1
(``range_f1``, Tatbul et al. 2018, flat bias, reciprocal cardinality), and ``flagged_normal``, the
share of the measured timestamps without a label that are flagged. ``every_timestamp`` flags every
measured timestamp: it scores an event F1 of 1, so event F1 alone does not rank the methods.

Data: NAB from https://github.com/numenta/NAB and the multivariate series as ``../shared/data/README.md``
describes them (see ``benchmarks/timeseries.py`` and ``benchmarks/multivariate.py``).

    python benchmarks/event_f1.py                      # NAB and the multivariate series
    python benchmarks/event_f1.py --sets nab --csv /tmp/events_nab.csv
    python benchmarks/event_f1.py --baselines ''       # the detector alone
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import multivariate
import numpy as np
import pandas as pd
import timeseries
from data_sources import files_or_exit

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.events import flagged_runs
from vae_anomaly.metrics import composite_f1, event_f1, events_to_flags, range_f1
from vae_anomaly.thresholds import offset_from
from vae_anomaly.windowing import auto_window

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEED = 0
BASELINES = ("knn_window", "iforest_window")


def joined(flagged: np.ndarray, window: int) -> np.ndarray:
    """0/1 per timestamp: the runs of ``flagged``, runs at most ``window`` apart joined."""
    flags = np.zeros(len(flagged), dtype=np.int64)
    for first, last in flagged_runs(flagged, window):
        flags[first : last + 1] = 1
    return flags


def run_flags(scores: np.ndarray, n_train: int, window: int) -> np.ndarray:
    """``joined`` flags of the scores above the fence of the training timestamps' scores."""
    return joined(scores > -offset_from(-scores[:n_train], "auto"), window)


def detector_flags(values: np.ndarray | pd.DataFrame, n_train: int, params: dict) -> dict[str, np.ndarray]:
    """The detector's events as flags, and its flags by the baselines' rule."""
    detector = TimeSeriesVAEDetector(**{"random_state": SEED, **params})
    head = values.iloc[:n_train] if isinstance(values, pd.DataFrame) else values[:n_train]
    detector.fit(head)
    runs = joined(detector.predict(values) == -1, detector.window_)
    return {"vae": events_to_flags(detector.events(values), len(values)), "vae[runs]": runs}


def measured(
    series: str, dataset: str, half: str, flags: dict[str, np.ndarray], labels: np.ndarray, n_train: int
) -> list[dict]:
    """One record per method and one for ``every_timestamp``: the metrics on the measured timestamps."""
    records = []
    truth = labels[n_train:]
    everything = np.ones(len(labels), dtype=np.int64)
    for method, flagged in {**flags, "every_timestamp": everything}.items():
        predicted = flagged[n_train:]
        events, ranges = event_f1(truth, predicted), range_f1(truth, predicted)
        records.append(
            {
                "series": series,
                "dataset": dataset,
                "half": half,
                "method": method,
                "events": len(flagged_runs(predicted.astype(bool), 0)),
                **{f"event_{name}": value for name, value in events.items()},
                "composite_f1": composite_f1(truth, predicted)["f1"],
                **{f"range_{name}": value for name, value in ranges.items()},
                "flagged_normal": float(predicted[truth == 0].mean()),
            }
        )
    return records


def nab_records(folder: Path, params: dict, baselines: Sequence[str] = BASELINES) -> list[dict]:
    """Every NAB series with a labelled anomaly in its last 70%; ``baselines`` beside the detector."""
    paths = files_or_exit(folder, "**/*.parquet", "nab")
    window = auto_window(1)
    probe = TimeSeriesVAEDetector(random_state=SEED)
    records = []
    for position, path in enumerate(sorted(paths, key=lambda p: p.stem)):
        series, labels = timeseries.load_series(path)
        n_train = int(timeseries.TRAIN_SHARE * len(series))
        if labels[n_train:].sum() == 0:
            continue
        flags = detector_flags(series, n_train, params)
        for method in baselines:
            name = "iforest" if method == "iforest_window" else method
            scores = timeseries._baseline_scores(name, series, n_train, probe)
            flags[method] = run_flags(scores, n_train, window)
        half = ("even", "odd")[position % 2]
        records += _printed(measured(path.stem, "NAB", half, flags, labels, n_train))
    return records


def multivariate_records(folder: Path, params: dict, baselines: Sequence[str] = BASELINES) -> list[dict]:
    """Every multivariate dev series with a labelled anomaly among its test rows; ``baselines``
    beside the detector."""
    paths = files_or_exit(folder, "*.parquet", "multivariate")
    half_of = multivariate.halves(paths)
    scorers: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        name: multivariate.baseline(name) for name in baselines
    }
    records = []
    for path in paths:
        values, labels, n_train = multivariate.load(path)
        window = auto_window(values.shape[1])
        if labels[n_train:].sum() == 0 or n_train < window:
            continue
        flags = detector_flags(values, n_train, params)
        for name, score in scorers.items():
            flags[name] = run_flags(score(values, n_train), n_train, multivariate.BASELINE_WINDOW)
        group = multivariate.group_of(path)
        records += _printed(measured(path.stem, group, half_of[path.stem], flags, labels, n_train))
    return records


def _printed(records: list[dict]) -> list[dict]:
    """``records`` of one series, after printing their event, composite and range F1 on one line."""
    line = ", ".join(
        f"{r['method']} {r['event_f1']:.2f}/{r['composite_f1']:.2f}/{r['range_f1']:.2f}" for r in records
    )
    print(f"{records[0]['series']:40} {line}", flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="holds nab/ and multivariate/")
    parser.add_argument("--sets", default="nab,multivariate")
    parser.add_argument("--csv", type=Path, help="also write every series' results here")
    parser.add_argument(
        "--vae-params",
        default="{}",
        help="JSON of TimeSeriesVAEDetector parameters; random_state replaces the seed 0",
    )
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help="comma-separated baselines run beside the detector (empty: the detector alone)",
    )
    args = parser.parse_args()
    params = json.loads(args.vae_params)
    baselines = [name for name in args.baselines.split(",") if name]
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        parser.error(f"unknown baselines {unknown}; choose from {list(BASELINES)}")
    warnings.simplefilter("ignore")
    records = []
    if "nab" in args.sets.split(","):
        records += nab_records(args.data / "nab", params, baselines)
    if "multivariate" in args.sets.split(","):
        records += multivariate_records(args.data / "multivariate", params, baselines)
    frame = pd.DataFrame.from_records(records)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    columns = [
        "event_precision",
        "event_recall",
        "event_f1",
        "composite_f1",
        "range_f1",
        "flagged_normal",
        "events",
    ]
    table = frame.groupby(["dataset", "half", "method"])[columns].mean()
    print()
    print(table.to_markdown(floatfmt=".3f"))
    for metric, title in (("event_f1", "event F1"), ("composite_f1", "composite F1")):
        print()
        print(f"{title}, mean per data set and half:")
        print(table[metric].unstack("method").to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
