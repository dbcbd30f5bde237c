"""Fit and scoring time of this checkout beside another one, in alternating fresh processes.

A change that must not slow the defaults (issue 29: at most 5%) is measured against the commit before
it, checked out elsewhere, e.g. ``git worktree add /tmp/before HEAD~3``. Each round runs one process
per checkout, in turn, so that a busy moment of the machine falls on both; the table gives each
measurement's median over the rounds and the ratio this checkout / the other.

Measurements, on synthetic rows (20 features, seed 0):
  default fit       ``VAEAnomalyDetector(random_state=0).fit`` of 5,000 rows;
  skip fit          the same with ``missing="skip"`` and every tenth row missing a value;
  score 1M rows     ``score_samples`` of 1,000,000 rows (the best of three calls);
  score 1 row       one ``score_samples`` call of one row (mean of 300 calls);
  skip score 1M     ``score_samples`` of the 1,000,000 rows, every tenth missing a value, by the skip fit;
  series fit        ``TimeSeriesVAEDetector(random_state=0).fit`` of a 4-channel sine, 3,000 points;
  series score      ``score_samples`` of 200,000 points of it (the best of three calls);
  series explain    ``explain`` of 5,000 points of it.

    python benchmarks/overhead.py --before /tmp/before          # 5 rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURE = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import vae_anomaly
from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
assert vae_anomaly.__file__.startswith(sys.argv[1]), vae_anomaly.__file__
rng = np.random.default_rng(0)
x, big = rng.normal(size=(5000, 20)), rng.normal(size=(1_000_000, 20))
gapped = x.copy()
gapped[::10, 3] = np.nan
big_gapped = big.copy()
big_gapped[::10, 3] = np.nan
t = np.arange(200_000)[:, None]
series = np.sin(2 * np.pi * t / 50 + np.arange(4)) + 0.05 * rng.normal(size=(200_000, 4))

def timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start

detector = VAEAnomalyDetector(random_state=0).fit(x)
one_row = timed(lambda: [detector.score_samples(x[i : i + 1]) for i in range(300)]) / 300
skip_detector = VAEAnomalyDetector(random_state=0, missing="skip").fit(gapped)
series_detector = TimeSeriesVAEDetector(random_state=0).fit(series[:3000])
print(json.dumps({
    "default fit (s)": timed(lambda: VAEAnomalyDetector(random_state=0).fit(x)),
    "skip fit (s)": timed(lambda: VAEAnomalyDetector(random_state=0, missing="skip").fit(gapped)),
    "score 1M rows (s)": min(timed(lambda: detector.score_samples(big)) for _ in range(3)),
    "score 1 row (ms)": one_row * 1e3,
    "skip score 1M rows (s)": min(timed(lambda: skip_detector.score_samples(big_gapped)) for _ in range(3)),
    "series fit (s)": timed(lambda: TimeSeriesVAEDetector(random_state=0).fit(series[:3000])),
    "series score (s)": min(timed(lambda: series_detector.score_samples(series)) for _ in range(3)),
    "series explain (s)": timed(lambda: series_detector.explain(series[:5000])),
}))
"""


def _measure(checkout: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(checkout)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "this": []}
    for _ in range(arguments.rounds):
        runs["before"].append(_measure(arguments.before.resolve()))
        runs["this"].append(_measure(ROOT))
    print(f"| measurement | {arguments.before} | this checkout | this / before |")
    print("| --- | ---: | ---: | ---: |")
    for name in runs["this"][0]:
        before = statistics.median(run[name] for run in runs["before"])
        this = statistics.median(run[name] for run in runs["this"])
        print(f"| {name} | {before:.3f} | {this:.3f} | {this / before:.3f} |")


if __name__ == "__main__":
    main()
