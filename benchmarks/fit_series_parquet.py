"""Training a time-series detector from a parquet series longer than memory: ``fit_parquet`` beside
pyarrow's bare read of the same files, and beside in-memory fits.

The series is synthetic, so that it can be as long as wanted: 8 channels sampled every minute, each
a mix of a daily and an hourly cycle plus AR(1) noise, in regimes of 2^22 minutes (about 8 years;
the regime scales the hourly cycle by 1, 0.5 or 1.6 and shifts the channels' mean by 0, +1 or -1),
drawn at random. ``--rows`` timestamps (200M: 12.8 GB of values as a pandas frame, 14.4 GB with
its DatetimeIndex, more than half of a 24 GB machine) go into files of 10M rows (row groups of
131,072) under ``--data``/train, once; later runs reuse them. The test series, 100,000 new minutes in
five regime blocks of 20,000 (regimes 0, 1, 2, 0, 1), is scored twice: clean, for the share of its
timestamps ``predict`` flags (the target: about ``contamination``), and with 40 planted anomalies of
20 minutes each (a spike, a level shift or a doubled noise on one channel), for ROC-AUC and VUS-PR.

Every measurement runs in a fresh process, so its peak RSS is its own:

- ``pyarrow read``: the channels and the time column read in record batches with
  ``pyarrow.dataset``, with ``sample_series_parquet``'s scan options, the second of two passes.
- ``fit``: ``fit_parquet``'s two steps timed apart, for a ``TimeSeriesVAEDetector`` (defaults,
  ``random_state=0``, ``time_column="time"``): the streaming pass (``sample_series_parquet``: exact
  statistics and the segments) and the fit on the segments (``fit_sample``). Then, after its peak RSS
  is taken, two in-memory fits: on the same segments with their own statistics, and on the first
  65,599 minutes of the series read whole (as many windows as the fit trains on, the whole-series
  route of a series that fits the cap: what a user who cannot read the series would train on).

    python benchmarks/fit_series_parquet.py --data /tmp/fit-series                 # 200M minutes
    python benchmarks/fit_series_parquet.py --data /tmp/fit-series-small --rows 5000000
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from data_sources import write_once
from fit_parquet import bare_read, cache_note, parsed_arguments, run_measurement, timed_fit
from scipy.signal import lfilter

N_CHANNELS = 8
CHANNELS = [f"ch{i}" for i in range(N_CHANNELS)]
TIME = "time"
ROWS_PER_FILE = 10_000_000
ROW_GROUP_ROWS = 131_072
REGIME_MINUTES = 2**22
HOURLY_SCALE = (1.0, 0.5, 1.6)
MEAN_SHIFT = (0.0, 1.0, -1.0)
AR = 0.9
NOISE = 0.15
TEST_REGIMES = (0, 1, 2, 0, 1)
TEST_BLOCK = 20_000
N_PLANTED, PLANTED_LENGTH = 40, 20
START = pd.Timestamp("2000-01-01")


def channel_values(minutes: np.ndarray, regimes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 8 channels at ``minutes`` (consecutive), each minute in its regime; fresh noise from ``rng``."""
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, size=(2, N_CHANNELS))  # fixed per channel
    daily = np.sin(2 * np.pi * minutes[:, None] / 1440 + phases[0])
    hourly = np.sin(2 * np.pi * minutes[:, None] / 60 + phases[1])
    noise = lfilter([1.0], [1.0, -AR], NOISE * rng.normal(size=(len(minutes), N_CHANNELS)), axis=0)
    values = daily + np.asarray(HOURLY_SCALE)[regimes][:, None] * hourly + noise
    return values + np.asarray(MEAN_SHIFT)[regimes][:, None]


def training_regimes(n_rows: int) -> np.ndarray:
    """The regime of each block of REGIME_MINUTES training minutes."""
    return np.random.default_rng(7).integers(0, len(HOURLY_SCALE), size=n_rows // REGIME_MINUTES + 1)


def training_part(start: int, n_rows: int, total: int) -> pa.Table:
    minutes = np.arange(start, start + n_rows)
    regimes = training_regimes(total)[minutes // REGIME_MINUTES]
    values = channel_values(minutes, regimes, np.random.default_rng(1000 + start // ROWS_PER_FILE))
    columns = {TIME: pa.array(START + pd.to_timedelta(minutes, unit="min"))}
    return pa.table({**columns, **{name: values[:, i] for i, name in enumerate(CHANNELS)}})


def make_data(root: Path, n_rows: int) -> None:
    """Write the training series under ``root``/train, unless it is there already."""

    def write_training(folder: Path) -> None:
        folder.mkdir()
        for part, start in enumerate(range(0, n_rows, ROWS_PER_FILE)):
            table = training_part(start, min(ROWS_PER_FILE, n_rows - start), n_rows)
            pq.write_table(table, folder / f"part-{part:04d}.parquet", row_group_size=ROW_GROUP_ROWS)
            print(f"wrote {start + table.num_rows:,} rows", file=sys.stderr, flush=True)

    write_once(root / "train", write_training)


def test_series(n_rows: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The clean test series after the training series, the same with planted anomalies, their labels."""
    minutes = np.arange(n_rows, n_rows + TEST_BLOCK * len(TEST_REGIMES))
    regimes = np.repeat(TEST_REGIMES, TEST_BLOCK)
    rng = np.random.default_rng(1)
    clean = pd.DataFrame(channel_values(minutes, regimes, rng), columns=CHANNELS)
    clean.insert(0, TIME, START + pd.to_timedelta(minutes, unit="min"))
    planted, labels = clean.copy(), np.zeros(len(clean), dtype=int)
    starts = rng.choice(np.arange(200, len(clean) - 200, 2000), size=N_PLANTED, replace=False)
    for k, start in enumerate(starts):
        rows, channel = slice(start, start + PLANTED_LENGTH), CHANNELS[rng.integers(N_CHANNELS)]
        column = planted.columns.get_loc(channel)
        if k % 3 == 0:
            planted.iloc[start + PLANTED_LENGTH // 2, column] += 4.0
        elif k % 3 == 1:
            planted.iloc[rows, column] += 2.0
        else:
            planted.iloc[rows, column] += NOISE * 6 * rng.normal(size=PLANTED_LENGTH)
        labels[rows] = 1
    return clean, planted, labels


def test_results(detector, n_rows: int) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from vae_anomaly.metrics import vus_pr

    clean, planted, labels = test_series(n_rows)
    scores = detector.anomaly_score(planted)
    return {
        "clean_flagged": float((detector.predict(clean) == -1).mean()),
        "auc": float(roc_auc_score(labels, scores)),
        "vus_pr": float(vus_pr(labels, scores)),
    }


def measure_read(root: Path, params: dict, cold: bool) -> dict[str, float]:
    """pyarrow's bare read, with the sampler's scan options: the second of two passes, or with
    ``cold`` one pass from storage."""
    from vae_anomaly.parquet_pass import scan_options

    return bare_read(root, [TIME, *CHANNELS], cold, **scan_options())


def measure_fit(root: Path, params: dict, cold: bool) -> dict[str, float]:
    from vae_anomaly import TimeSeriesVAEDetector, fit_sample, sample_series_parquet

    def detector() -> TimeSeriesVAEDetector:
        return TimeSeriesVAEDetector(random_state=0, time_column=TIME, **params)

    sample, fitted, timing = timed_fit(
        lambda: sample_series_parquet(root / "train", time_column=TIME, random_state=0, progress=False),
        lambda sample: fit_sample(detector(), sample),
    )
    same_segments = detector().fit(sample.frame, segments=sample.segments)
    windows = sum(length - sample.window + 1 for length in sample.segments)
    first = next(iter(sorted((root / "train").glob("*.parquet"))))
    prefix = pq.read_table(first).slice(0, windows + sample.window - 1).to_pandas()
    in_prefix = detector().fit(prefix)
    return {
        **timing,
        "segments": len(sample.segments),
        "segment_length": sample.segments[0],
        "windows": windows,
        **{f"{key}": value for key, value in test_results(fitted, sample.n_rows).items()},
        **{f"segments_{key}": value for key, value in test_results(same_segments, sample.n_rows).items()},
        **{f"prefix_{key}": value for key, value in test_results(in_prefix, sample.n_rows).items()},
    }


MEASUREMENTS = {"read": measure_read, "fit": measure_fit}


def main() -> None:
    arguments = parsed_arguments(__doc__, MEASUREMENTS, 200_000_000, "timestamps written (default 200M)")
    if arguments is None:
        return
    make_data(arguments.data, arguments.rows)
    read, fit = (
        run_measurement(name, arguments.data, arguments.vae_params, arguments.cold, __file__)
        for name in ("read", "fit")
    )
    speed = read["rows"] / read["seconds"]
    print(f"{'measurement':<40}{'rows':>13}{'seconds':>9}{'rows/s':>12}{'of read':>9}{'peak RSS MB':>13}")
    for label, seconds, peak in (
        ("pyarrow read (sampler's options)", read["seconds"], read["peak_rss_mb"]),
        ("sample_series_parquet (the pass)", fit["read_seconds"], float("nan")),
        ("fit_parquet (pass + fit)", fit["seconds"], fit["peak_rss_mb"]),
    ):
        rate = read["rows"] / seconds
        print(
            f"{label:<40}{read['rows']:>13,}{seconds:>9.1f}{rate:>12,.0f}{rate / speed:>9.2f}{peak:>13,.0f}"
        )
    print(f"(of read: over the pyarrow read, {cache_note(arguments.cold)})")
    print(
        f"\n{fit['segments']} segments of {fit['segment_length']} minutes, {fit['windows']:,} training "
        f"windows; fit on them {fit['fit_seconds']:.1f} s\n"
    )
    print(f"{'test series':<44}{'clean flagged':>14}{'ROC-AUC':>9}{'VUS-PR':>8}")
    for label, prefix in (
        ("fit_parquet (segments, exact statistics)", ""),
        ("in memory, same segments", "segments_"),
        ("in memory, the first minutes, read whole", "prefix_"),
    ):
        print(
            f"{label:<44}{fit[prefix + 'clean_flagged']:>14.2%}{fit[prefix + 'auc']:>9.4f}"
            f"{fit[prefix + 'vus_pr']:>8.4f}"
        )


if __name__ == "__main__":
    main()
