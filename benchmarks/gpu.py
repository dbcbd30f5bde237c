"""GPU speed: training steps, default fits, scoring in memory and from parquet (issue 13).

Run on a machine with a CUDA device, one section at a time or all (the default)::

    python benchmarks/gpu.py --section steps fit score parquet

``steps`` times one training step of the default model (32 features, hidden (64, 32), latent 8) at
batch 512, 8,192, 65,536 and the largest power of two that fits, eagerly as before (fused AdamW, one
Python step per batch) and as the replayed CUDA graph the estimators now use. ``fit`` times the default
``VAEAnomalyDetector().fit`` on 2M and 20M synthetic rows with 1% planted anomalies, on CUDA and (2M
only) on the CPU, with the ROC-AUC of each. ``score`` times ``score_samples`` of 2M rows on each
scoring device; ``parquet`` times ``score_parquet`` of 2M rows in 8 files on each device beside a plain
pyarrow read and write of the same files. The ADBench comparison of CUDA and CPU fits is
``benchmarks/tabular.py --methods vae --vae-params '{"device": "cuda"}'`` beside ``'{"device": "cpu"}'``.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.metrics import roc_auc_score

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.batch import score_parquet
from vae_anomaly.epochs import (
    Generators,
    TrainingRows,
    autograd_step,
    epoch_runner,
    run_eager_epoch,
)
from vae_anomaly.model import GaussianVAE
from vae_anomaly.optimizers import optimizer_for

N_FEATURES = 32
HIDDEN, LATENT = (64, 32), 8
SEED = 0
STEP_BATCHES = (512, 8192, 65536)


def planted_rows(n_rows: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Rows near a 4-D subspace of 32-D space (noise 0.1); 1% are anomalies pushed off it by noise 0.15."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(4, N_FEATURES)).astype(np.float32)
    x = rng.standard_normal((n_rows, 4), dtype=np.float32) @ mixing
    x += 0.1 * rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    y = np.zeros(n_rows, dtype=int)
    anomalies = rng.choice(n_rows, n_rows // 100, replace=False)
    y[anomalies] = 1
    x[anomalies] += 0.15 * rng.standard_normal((len(anomalies), N_FEATURES), dtype=np.float32)
    return x, y


def _synchronized_seconds(work) -> float:
    torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    torch.cuda.synchronize()
    return time.perf_counter() - started


def step_times(batch: int, n_steps: int) -> dict[str, float]:
    """Seconds per step at ``batch`` rows: the eager loop as landed, and the replayed CUDA graph."""
    device = torch.device("cuda")
    x = torch.randn(batch * n_steps, N_FEATURES, device=device)
    rows = TrainingRows(x, None)
    generators = Generators(
        torch.Generator().manual_seed(SEED),
        torch.Generator(device=device).manual_seed(SEED),
        torch.Generator(device=device).manual_seed(SEED + 1),
    )
    result = {"batch": batch}
    module = GaussianVAE(N_FEATURES, HIDDEN, LATENT, torch.Generator().manual_seed(SEED)).to(device)
    eager_optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    step = functools.partial(autograd_step, module, eager_optimizer, autocast=autocast)
    eager = lambda: run_eager_epoch(step, module, rows, 1.0, batch, generators, 0.0)  # noqa: E731
    eager()  # warm-up: cuBLAS handles, AdamW state
    result["eager_ms"] = 1e3 * _synchronized_seconds(eager) / n_steps
    module = GaussianVAE(N_FEATURES, HIDDEN, LATENT, torch.Generator().manual_seed(SEED)).to(device)
    run = epoch_runner(module, optimizer_for(module, 1e-3, 0.0, device), rows, batch, generators, 0.0)
    run(1.0)  # warm-up and capture
    result["graphed_ms"] = 1e3 * _synchronized_seconds(lambda: run(1.0)) / n_steps
    result["graphed_samples_per_s"] = batch / (result["graphed_ms"] / 1e3)
    result["eager_samples_per_s"] = batch / (result["eager_ms"] / 1e3)
    return result


def steps_section() -> pd.DataFrame:
    results = [step_times(batch, 200 if batch < 65536 else 50) for batch in STEP_BATCHES]
    batch = 1 << 20
    while batch <= 1 << 25:
        try:
            results.append(step_times(batch, 4))
        except (torch.OutOfMemoryError, RuntimeError) as error:  # an OOM inside a capture is a RuntimeError
            print(f"batch {batch}: {str(error).splitlines()[0]}", flush=True)
            break
        finally:
            torch.cuda.empty_cache()
        batch *= 2
    return pd.DataFrame(results)


def fit_section(fits: list[str]) -> pd.DataFrame:
    results = []
    for fit in fits:
        device, n_rows = fit.split(":")[0], int(fit.split(":")[1])
        x, y = planted_rows(n_rows)
        started = time.perf_counter()
        detector = VAEAnomalyDetector(device=device, random_state=SEED).fit(x)
        fit_s = time.perf_counter() - started
        scores = -detector.score_samples(x)
        results.append(
            {
                "rows": n_rows,
                "device": device,
                "fit_s": fit_s,
                "epochs": len(detector.history_),
                "roc_auc": roc_auc_score(y, scores),
            }
        )
        print(results[-1], flush=True)
    return pd.DataFrame(results)


def _fitted_on_cuda() -> tuple[VAEAnomalyDetector, pd.DataFrame]:
    """A default detector fitted on CUDA to 200,000 of 2M planted rows, and the 2M rows as a frame."""
    x, _ = planted_rows(2_000_000)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    return VAEAnomalyDetector(device="cuda", random_state=SEED).fit(frame.iloc[:200_000]), frame


def score_section() -> pd.DataFrame:
    detector, x = _fitted_on_cuda()
    results = []
    for device in ("cuda", "cpu"):
        detector.set_params(scoring_device=device)
        detector.score_samples(x.iloc[:10_000])  # the device copy of the module is made once
        started = time.perf_counter()
        detector.score_samples(x)
        seconds = time.perf_counter() - started
        results.append(
            {"scoring_device": device, "rows": len(x), "seconds": seconds, "rows_per_s": len(x) / seconds}
        )
    return pd.DataFrame(results)


def parquet_section() -> pd.DataFrame:
    detector, x = _fitted_on_cuda()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        for part, start in enumerate(range(0, len(x), len(x) // 8)):
            chunk = x.iloc[start : start + len(x) // 8]
            pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), data / f"part-{part}.parquet")
        started = time.perf_counter()
        for path in sorted(data.glob("*.parquet")):
            pq.write_table(pq.read_table(path), Path(scratch) / f"copy-{path.name}")
        results.append({"what": "pyarrow read + write only", "seconds": time.perf_counter() - started})
        for device in ("cuda", "cpu"):
            detector.set_params(scoring_device=device)
            started = time.perf_counter()
            summary = score_parquet(detector, data, Path(scratch) / f"out-{device}", progress=False)
            seconds = time.perf_counter() - started
            results.append({"what": f"score_parquet on {device}", "seconds": seconds, "rows": summary.rows})
    frame = pd.DataFrame(results)
    frame["rows_per_s"] = len(x) / frame["seconds"]
    return frame


SECTIONS = ("steps", "fit", "score", "parquet")
DEFAULT_FITS = ["cuda:2000000", "cuda:20000000", "cpu:2000000"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--fits", nargs="+", default=DEFAULT_FITS, help="DEVICE:ROWS default fits to time")
    arguments = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device; torch sees none.")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    for name in arguments.section:
        print(f"\n## {name}\n", flush=True)
        table = fit_section(arguments.fits) if name == "fit" else globals()[f"{name}_section"]()
        print(table.to_markdown(index=False, floatfmt=".4g"), flush=True)


if __name__ == "__main__":
    main()
