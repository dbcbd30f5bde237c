"""Batch-scoring benchmark: rows/s and peak memory of score_parquet beside a naive pandas path and the
model's pure forward pass, at 1M and 5M rows x 20 float features.

The data is synthetic (a 4-D latent manifold in 20-D plus noise), written as parquet files of
--rows-per-file rows each, so more rows means more files. A VAEAnomalyDetector is fitted on 20,000 rows
and saved. Every measurement runs in a fresh process, so its peak RSS is its own:

- ``score_parquet``: ``vae_anomaly.batch.score_parquet`` from the input folder to an output folder.
- ``naive``: ``pd.read_parquet`` of the whole folder, ``predict``, ``to_parquet``.
- ``forward``: the VAE's forward passes alone (``vae_anomaly.scoring.score_rows`` with the final
  weights and, where the detector kept them, the early ones) over the same rows, standardized and
  already in memory: the ceiling for end-to-end throughput. Its peak RSS counts the
  in-memory rows, so only its rows/s is compared.

    python benchmarks/batch.py                       # 1M and 5M rows, data under /tmp
    python benchmarks/batch.py --sizes 200000        # a quick run
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

N_FEATURES = 20
TRAIN_ROWS = 20_000
SEED = 0
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]


def synthetic_rows(n_rows: int, rng: np.random.Generator, mixing: np.ndarray) -> np.ndarray:
    latent = rng.normal(size=(n_rows, mixing.shape[0]))
    return latent @ mixing + 0.1 * rng.normal(size=(n_rows, N_FEATURES))


def make_data(folder: Path, n_rows: int, rows_per_file: int, mixing: np.ndarray) -> None:
    rng = np.random.default_rng(n_rows)
    folder.mkdir(parents=True)
    for part, start in enumerate(range(0, n_rows, rows_per_file)):
        rows = synthetic_rows(min(rows_per_file, n_rows - start), rng, mixing)
        table = pa.table({name: rows[:, i] for i, name in enumerate(COLUMNS)})
        pq.write_table(table, folder / f"part-{part:04d}.parquet")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(method: str, model: Path, data: Path, output: Path, batch_rows: int) -> dict[str, float]:
    """Run one method in this process; rows, seconds and peak RSS."""
    from vae_anomaly import VAEAnomalyDetector
    from vae_anomaly.batch import score_parquet
    from vae_anomaly.scoring import score_rows

    detector = VAEAnomalyDetector.load(model)
    if method == "score_parquet":
        started = time.perf_counter()
        summary = score_parquet(model, data, output, batch_rows=batch_rows, progress=False)
        seconds, rows = time.perf_counter() - started, summary.rows
    elif method == "naive":
        started = time.perf_counter()
        frame = pd.read_parquet(data)
        frame["is_anomaly"] = detector.predict(frame) == -1
        output.mkdir(parents=True)
        frame.to_parquet(output / "scores.parquet")
        seconds, rows = time.perf_counter() - started, len(frame)
    else:
        x = (pd.read_parquet(data).to_numpy() - detector.mean_) / detector.scale_
        started = time.perf_counter()
        for module in (detector.module_, detector.early_module_):
            if module is not None:
                score_rows(module, x)
        seconds, rows = time.perf_counter() - started, len(x)
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def run_measurement(method: str, model: Path, data: Path, scratch: Path, batch_rows: int) -> dict[str, float]:
    output = scratch / f"out-{method}-{data.name}"
    command = [sys.executable, __file__, "--measure", method, "--model", str(model), "--data", str(data)]
    command += ["--output", str(output), "--batch-rows", str(batch_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    shutil.rmtree(output, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--rows-per-file", type=int, default=250_000)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--scratch", type=Path, default=None, help="folder for data (default: a temp dir)")
    parser.add_argument("--measure", choices=["score_parquet", "naive", "forward"], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure:
        result = measure(
            arguments.measure, arguments.model, arguments.data, arguments.output, arguments.batch_rows
        )
        print(json.dumps(result))
        return

    from vae_anomaly import VAEAnomalyDetector

    scratch = Path(tempfile.mkdtemp(prefix="vae-batch-", dir=arguments.scratch))
    try:
        mixing = np.random.default_rng(SEED).normal(size=(4, N_FEATURES))
        training = pd.DataFrame(
            synthetic_rows(TRAIN_ROWS, np.random.default_rng(SEED), mixing), columns=COLUMNS
        )
        model = scratch / "model"
        VAEAnomalyDetector(random_state=SEED).fit(training).save(model)
        results = []
        for size in arguments.sizes:
            data = scratch / f"rows-{size}"
            make_data(data, size, arguments.rows_per_file, mixing)
            for method in ("forward", "score_parquet", "naive"):
                result = run_measurement(method, model, data, scratch, arguments.batch_rows)
                results.append({"rows": size, "method": method, **result})
                print(
                    f"{size:>9} {method:<14} {result['rows'] / result['seconds']:>12,.0f} rows/s "
                    f"{result['peak_rss_mb']:>8,.0f} MB",
                    file=sys.stderr,
                )
            shutil.rmtree(data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = pd.DataFrame(results)
    table["rows_per_s"] = table["rows"] / table["seconds"]
    forward = table[table.method == "forward"].set_index("rows")["rows_per_s"]
    table["vs_forward"] = table["rows_per_s"] / table["rows"].map(forward)
    print(
        table[["rows", "method", "rows_per_s", "vs_forward", "seconds", "peak_rss_mb"]].to_markdown(
            index=False, floatfmt=",.2f"
        )
    )
    scorer = table[table.method == "score_parquet"].set_index("rows")
    naive = table[table.method == "naive"].set_index("rows")
    sizes = sorted(arguments.sizes)
    print()
    print(
        "end-to-end / forward pass: "
        f"{', '.join(f'{scorer.vs_forward[s]:.2f}' for s in sizes)} (target >= 0.5)"
    )
    print(
        f"score_parquet / naive rows/s: "
        f"{', '.join(f'{scorer.rows_per_s[s] / naive.rows_per_s[s]:.2f}' for s in sizes)} (target > 1)"
    )
    if len(sizes) > 1:
        growth = scorer.peak_rss_mb[sizes[-1]] / scorer.peak_rss_mb[sizes[0]]
        print(
            f"score_parquet peak RSS at {sizes[-1]:,} / at {sizes[0]:,} rows: {growth:.3f} (target <= 1.10)"
        )


if __name__ == "__main__":
    main()
