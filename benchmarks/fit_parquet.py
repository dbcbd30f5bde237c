"""Training from parquet larger than memory: ``fit_parquet`` beside pyarrow's bare read of the same folder.

The data is synthetic, so that it can be as large as wanted: rows on a 4-D latent manifold in 32-D plus
noise, and 0.5% planted anomalies (one column of the row redrawn from its marginal, which breaks the
correlations and keeps the value in range: ROC-AUC about 0.89, far from 1 so that differences show),
labelled in the column ``is_anomaly``. The
training folder holds ``--rows`` rows in files of 1M rows (row groups of 131,072); a separate test
file of 200,000 rows is scored for ROC-AUC. ``--data`` is the folder the data is written to (once;
later runs reuse it). 50M rows x 32 float64 columns is 12.8 GB as a pandas frame, more than half of a
24 GB machine.

Every measurement runs in a fresh process, so its peak RSS is its own:

- ``pyarrow read``: the 32 feature columns read in record batches with ``pyarrow.dataset`` (the
  ceiling), with its default scan options and with those ``sample_parquet`` uses; each the second of
  two passes, so the page cache holds what it can of the folder for every measurement alike. With
  ``--cold`` every measurement starts with the folder's files dropped from the page cache
  (``posix_fadvise``, Linux) and the read is one pass: the data comes from storage, as a lake's
  partition or a folder larger than memory does.
- ``fit``: ``vae_anomaly.fit_parquet``'s two steps, timed apart, for a ``VAEAnomalyDetector`` (the
  defaults, ``random_state=0``), the label column dropped: the streaming pass (``sample_parquet``:
  statistics and sample) and the fit on the sample (``fit_sample``). Then, in the same process (after its peak
  RSS is taken), the in-memory fit on the same sample without the stream's statistics, and both
  models' ROC-AUC on the test file.
- ``mlproject train``: ``mlflow_project/train.py`` on the folder (the tabular pipeline, a sqlite store in
  a temporary folder).

    python benchmarks/fit_parquet.py --data /tmp/fit-parquet               # 50M rows: ~13 GB on disk
    python benchmarks/fit_parquet.py --data /tmp/fit-parquet --cold        # read from storage
    python benchmarks/fit_parquet.py --data /tmp/fit-parquet-small --rows 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from data_sources import write_once

N_FEATURES = 32
LATENT = 4
ROWS_PER_FILE = 1_000_000
ROW_GROUP_ROWS = 131_072
TEST_ROWS = 200_000
ANOMALY_SHARE = 0.005
NOISE = 0.2
COLUMNS = [f"f{i:02d}" for i in range(N_FEATURES)]
LABEL = "is_anomaly"


def synthetic_table(n_rows: int, seed: int) -> pa.Table:
    """``n_rows`` rows of the 32 features and their label, drawn from ``seed``."""
    mixing = np.random.default_rng(0).normal(size=(LATENT, N_FEATURES))  # the same manifold everywhere
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n_rows, LATENT)) @ mixing
    rows += NOISE * rng.normal(size=rows.shape)
    anomalous = rng.random(n_rows) < ANOMALY_SHARE
    redrawn = anomalous[:, None] & (np.arange(N_FEATURES) == rng.integers(0, N_FEATURES, (n_rows, 1)))
    scale = np.sqrt((mixing**2).sum(axis=0) + NOISE**2)  # each column's standard deviation
    rows[redrawn] = (rng.normal(size=rows.shape) * scale)[redrawn]
    columns = {name: rows[:, i] for i, name in enumerate(COLUMNS)}
    return pa.table({**columns, LABEL: anomalous.astype(np.int8)})


def make_data(root: Path, n_rows: int) -> None:
    """Write the training folder and the test file under ``root``, unless they are there already."""
    write_once(root / "test.parquet", lambda path: pq.write_table(synthetic_table(TEST_ROWS, seed=1), path))

    def write_training(folder: Path) -> None:
        folder.mkdir()
        for part, start in enumerate(range(0, n_rows, ROWS_PER_FILE)):
            table = synthetic_table(min(ROWS_PER_FILE, n_rows - start), seed=1000 + part)
            pq.write_table(table, folder / f"part-{part:04d}.parquet", row_group_size=ROW_GROUP_ROWS)
            print(f"wrote {start + table.num_rows:,} rows", file=sys.stderr, flush=True)

    write_once(root / "train", write_training)


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss keeps the
    parent's peak across fork and exec, so a parent that wrote the data would count)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def folder_rows(folder: Path) -> int:
    return ds.dataset(folder, format="parquet").count_rows()


def evict_from_page_cache(folder: Path) -> None:
    """Drop every file under ``folder`` from the page cache (``posix_fadvise``, Linux; written pages
    flushed first), so that the next read of it comes from storage."""
    for path in folder.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def bare_read(root: Path, columns: list[str], cold: bool, **scan_options) -> dict[str, float]:
    """pyarrow's bare read of ``columns`` of the folder ``root``/train in record batches: the second
    of two passes (the first warms the cache), or with ``cold`` one pass from storage."""
    for _ in range(1 if cold else 2):
        started = time.perf_counter()
        rows = 0
        dataset = ds.dataset(root / "train", format="parquet")
        for batch in dataset.scanner(columns=columns, **scan_options).to_batches():
            rows += batch.num_rows
    return {"rows": rows, "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


def measure_read(root: Path, params: dict, cold: bool, **scan_options) -> dict[str, float]:
    """pyarrow's bare read of the feature columns (:func:`bare_read`)."""
    return bare_read(root, COLUMNS, cold, **scan_options)


def measure_lean_read(root: Path, params: dict, cold: bool) -> dict[str, float]:
    """The bare read with the scan options ``sample_parquet`` uses (less read ahead, no pre-buffering)."""
    from vae_anomaly.parquet_pass import scan_options

    return bare_read(root, COLUMNS, cold, **scan_options())


def test_auc(model, root: Path) -> float:
    from sklearn.metrics import roc_auc_score

    test = pq.read_table(root / "test.parquet").to_pandas()
    return float(roc_auc_score(test.pop(LABEL), -model.score_samples(test)))


def timed_fit(read: Callable[[], Any], fit: Callable[[Any], Any]) -> tuple[Any, Any, dict[str, float]]:
    """The sample ``read()`` makes and the model ``fit(sample)`` makes, with the pass and the fit timed
    apart and the peak RSS after them (before anything else the measurement does)."""
    started = time.perf_counter()
    sample = read()
    pass_seconds = time.perf_counter() - started
    model = fit(sample)
    seconds = time.perf_counter() - started
    timing = {
        "rows": sample.n_rows,
        "seconds": seconds,
        "read_seconds": pass_seconds,
        "fit_seconds": seconds - pass_seconds,
        "peak_rss_mb": peak_rss_mb(),
    }
    return sample, model, timing


def measure_fit(root: Path, params: dict, cold: bool) -> dict[str, float]:
    from vae_anomaly import VAEAnomalyDetector, fit_sample, sample_parquet

    sample, detector, timing = timed_fit(
        lambda: sample_parquet(root / "train", drop_columns=[LABEL], random_state=0, progress=False),
        lambda sample: fit_sample(VAEAnomalyDetector(random_state=0, **params), sample),
    )
    in_memory = VAEAnomalyDetector(random_state=0, **params).fit(sample.frame)
    return {
        **timing,
        "sample_rows": len(sample.frame),
        "auc": test_auc(detector, root),
        "auc_in_memory": test_auc(in_memory, root),
    }


def measure_mlproject(root: Path, params: dict, cold: bool) -> dict[str, float]:
    project = Path(__file__).resolve().parents[1] / "mlflow_project"
    with tempfile.TemporaryDirectory() as store:
        environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(project / "train.py"),
                "--data",
                str(root / "train"),
                "--model-name",
                "fit-parquet",
            ],
            cwd=store,
            env={**environment, "PYTHONPATH": f"{project}{os.pathsep}{project.parent}"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rows": folder_rows(root / "train"), "seconds": seconds, "peak_rss_mb": child}


MEASUREMENTS = {
    "read": measure_read,
    "lean_read": measure_lean_read,
    "fit": measure_fit,
    "mlproject": measure_mlproject,
}
LABELS = {
    "read": "pyarrow read, its defaults",
    "lean_read": "pyarrow read, sample_parquet's options",
    "fit": "fit_parquet (pass + fit)",
    "mlproject": "MLproject train",
}


def cache_note(cold: bool) -> str:
    """How the measurements read the data, for the printed table."""
    return "each from storage (--cold)" if cold else "each the second of two passes"


def run_measurement(
    name: str, root: Path, params: str, cold: bool = False, script: str = __file__
) -> dict[str, float]:
    """Run one measurement of ``script`` in a fresh process (``cold``: the data out of the page
    cache first) and return what it printed."""
    output = subprocess.run(
        [sys.executable, script, "--data", str(root), "--measure", name, "--vae-params", params]
        + (["--cold"] if cold else []),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def parsed_arguments(
    doc: str,
    measurements: dict,
    default_rows: int,
    rows_help: str,
    parser: argparse.ArgumentParser | None = None,
) -> argparse.Namespace | None:
    """The benchmark's arguments (``--data``, ``--rows``, ``--vae-params``, ``--cold``); None when the
    run was one ``--measure`` of a fresh process, which this has run and printed as JSON."""
    parser = parser or argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of the data (written if absent)")
    parser.add_argument("--rows", type=int, default=default_rows, help=rows_help)
    parser.add_argument("--vae-params", default="{}", help="JSON of detector parameters (default: none)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="drop the data from the page cache before each measurement (Linux): read from storage",
    )
    parser.add_argument("--measure", choices=sorted(measurements), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure:
        if arguments.cold:
            evict_from_page_cache(arguments.data)
        measure = measurements[arguments.measure]
        print(json.dumps(measure(arguments.data, json.loads(arguments.vae_params), arguments.cold)))
        return None
    return arguments


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=sorted(MEASUREMENTS), help="measurements left out"
    )
    arguments = parsed_arguments(
        __doc__, MEASUREMENTS, 50_000_000, "training rows written (default 50M)", parser
    )
    if arguments is None:
        return
    make_data(arguments.data, arguments.rows)
    results = {
        name: run_measurement(name, arguments.data, arguments.vae_params, arguments.cold)
        for name in MEASUREMENTS
        if name not in arguments.skip
    }
    if "fit" in results:  # the pass alone, beside the whole fit
        fit = results["fit"]
        results = {**results, "pass": {**fit, "seconds": fit["read_seconds"], "peak_rss_mb": float("nan")}}
    reads = [results[name] for name in ("read", "lean_read") if name in results]
    fastest = max((r["rows"] / r["seconds"] for r in reads), default=None)
    print(f"{'measurement':<42}{'rows':>12}{'seconds':>9}{'rows/s':>12}{'of read':>9}{'peak RSS MB':>13}")
    for name, result in results.items():
        speed = result["rows"] / result["seconds"]
        share = f"{speed / fastest:.2f}" if fastest else "-"
        label = LABELS.get(name, "sample_parquet (the pass alone)")
        print(
            f"{label:<42}{result['rows']:>12,}{result['seconds']:>9.1f}{speed:>12,.0f}{share:>9}"
            f"{result['peak_rss_mb']:>13,.0f}"
        )
    note = cache_note(arguments.cold)
    print(f"(of read: rows/s over the faster pyarrow read, {note}; the pass's peak RSS is the fit's)")
    if "fit" in results:
        fit = results["fit"]
        print(
            f"\nfit_parquet: streaming pass {fit['read_seconds']:.1f} s, fit on {fit['sample_rows']:,} "
            f"sampled rows {fit['fit_seconds']:.1f} s; test ROC-AUC {fit['auc']:.4f} (in-memory fit on "
            f"the same sample: {fit['auc_in_memory']:.4f}, "
            f"difference {fit['auc'] - fit['auc_in_memory']:+.4f})"
        )


if __name__ == "__main__":
    main()
