"""CPU threads: two default fits and two scoring passes, on idle cores and beside one busy process.

The busy process is single-threaded numpy (a matrix product in a loop), so it takes one core of the
machine, as a Spark executor, an ``n_jobs`` worker or a neighbour under a Kubernetes CPU limit would.
Each workload runs with torch (or, for the numpy scorer of a small ``vae-anomaly score`` run, numpy's
BLAS) on 1 thread, on every core, and with ``n_threads="auto"``; the table gives the seconds on idle
cores, beside the busy process, and their ratio.

    python benchmarks/cpu_threads.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.cpus import available_cpus
from vae_anomaly.numpy_scorer import load_numpy_scorer

BUSY = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).random((400, 400))\n"
    "while True:\n"
    "    a = a @ a\n"
    "    a /= np.abs(a).max()\n"
)


def _series(n: int, channels: int) -> pd.DataFrame:
    """A seasonal multichannel series with noise, like a day of minute metrics from many hosts."""
    rng = np.random.default_rng(0)
    t = np.arange(n)[:, None]
    values = np.sin(2 * np.pi * t / 1440 + rng.uniform(0, 6, channels)) + 0.1 * rng.normal(size=(n, channels))
    return pd.DataFrame(values, columns=[f"c{i}" for i in range(channels)])


def workloads(n_threads: int | str, folder: Path) -> dict[str, Callable[[], object]]:
    """The timed work: the two default fits of the issue, scoring 1M rows, and the numpy scorer of the
    same detector saved in ``folder`` on 150,000 rows (a small run of ``vae-anomaly score``)."""
    names = [f"c{i}" for i in range(16)]  # the numpy scorer reads columns by name, as from parquet
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(20_000, 16)), columns=names)
    series = _series(8_640, 19)
    scored = pd.DataFrame(np.random.default_rng(1).normal(size=(1_000_000, 16)), columns=names)
    fitted = VAEAnomalyDetector(random_state=0, n_threads=n_threads).fit(table)
    fitted.save(folder / f"threads-{n_threads}")
    numpy_scorer = load_numpy_scorer(folder / f"threads-{n_threads}")
    return {
        "VAEAnomalyDetector fit 20,000 x 16": lambda: VAEAnomalyDetector(
            random_state=0, n_threads=n_threads
        ).fit(table),
        "TimeSeriesVAEDetector fit 8,640 x 19": lambda: TimeSeriesVAEDetector(
            random_state=0, n_threads=n_threads
        ).fit(series),
        "score_samples 1,000,000 x 16": lambda: fitted.score_samples(scored),
        "numpy scorer 150,000 x 16": lambda: numpy_scorer.anomaly_score(scored.iloc[:150_000]),
    }


def timed(work: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _timed_rows(n_threads: int | str, folder: Path, repeats: int) -> list[dict[str, object]]:
    """Each workload's seconds with ``n_threads``, on idle cores and beside the busy process."""
    rows = []
    for name, work in workloads(n_threads, folder).items():
        idle = timed(work, repeats)
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        busy = subprocess.Popen([sys.executable, "-c", BUSY], env=environment)
        try:
            time.sleep(1.0)
            loaded = timed(work, repeats)
        finally:
            busy.kill()
            busy.wait()
        rows.append(
            {
                "work": name,
                "n_threads": str(n_threads),
                "idle_s": idle,
                "busy_s": loaded,
                "ratio": loaded / idle,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cpus = available_cpus()
    with tempfile.TemporaryDirectory(prefix="cpu-threads-") as folder:
        rows = [
            row
            for n_threads in (1, cpus, "auto")
            for row in _timed_rows(n_threads, Path(folder), args.repeats)
        ]
    frame = pd.DataFrame(rows)
    print(f"\n{cpus} CPUs available to this process\n")
    print(frame.round(2).to_markdown(index=False))


if __name__ == "__main__":
    main()
