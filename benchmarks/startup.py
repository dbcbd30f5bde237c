"""Start-up of a small scoring run (issue 33, item 3): where the seconds before the first row go.

Each step is a fresh interpreter, timed from start to exit, median of ``--repeats`` runs:

  python          ``python -c pass``
  numpy, pandas, scikit-learn, torch, pyarrow.dataset, mlflow
                  ``python -c "import X"``, each alone
  vae_anomaly     the modules ``vae-anomaly score`` imports for a saved folder (cli, batch), then
                  the torch detector's loader (bundle)
  score folder    ``vae-anomaly score FOLDER small.parquet OUT``: a tabular detector saved with
                  ``save``, 100 rows of ``sample_data/tabular.parquet`` (no data needed); scored
                  with numpy (``vae_anomaly.numpy_scorer``)
  ... with torch  the same run with the numpy scorer turned off (``NUMPY_SCORING_MAX_WORK = 0``):
                  what every run took before it
  score models:/  the same with ``models:/NAME@champion`` from a fresh sqlite registry, which the
                  scoring process opens itself (MLflow's SQLAlchemy store)
  ... via server  the same through ``mlflow server`` on that registry (started here, on localhost,
                  and called once before timing, as a long-running server would have been)
  N rows          numpy and torch on N rows (``--rows``, default 180,000: about the most the numpy
                  scorer takes for this model), where torch's faster scoring starts to repay its start
  score series    a ``TimeSeriesVAEDetector`` (5 channels of ``sample_data/timeseries_multivariate``,
                  fitted on 4,000 points) scoring the next 400 points, with numpy
                  (``vae_anomaly.numpy_series_scorer``) and with torch
  score Pipeline  ``tabular_pipeline`` saved with ``save``, 100 rows of the sample table: with numpy
                  (the preprocessing's saved plan, ``vae_anomaly.numpy_preprocessing``, then the
                  detector's numpy scorer) and with torch, scikit-learn and skops

The issue's targets: under 1.5 s from start to the first row scored for a saved folder, under 3 s
for a ``models:/`` URI.

    python benchmarks/startup.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = ("numpy", "pandas", "sklearn", "torch", "pyarrow.dataset", "mlflow")
CLI_IMPORTS = "import vae_anomaly.cli, vae_anomaly.batch.run, vae_anomaly.batch.model"
# The command line with the numpy scorer turned off, as every run was scored before it.
TORCH_CLI = (
    "import vae_anomaly.batch.model as m; m.NUMPY_SCORING_MAX_WORK = 0; "
    "from vae_anomaly.cli import run; run()"
)


def seconds(command: list[str], environment: dict[str, str], repeats: int, cwd: Path) -> float:
    """Median wall time of ``command`` run in ``cwd`` over ``repeats`` runs; a failing run stops the
    benchmark."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=cwd)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return statistics.median(times)


def prepared_others(folder: Path) -> list[tuple[str, Path, Path]]:
    """A saved series detector with a 400-point series of its kind, and a saved Pipeline with 100 rows
    of the sample table: (step name, model folder, input file)."""
    from vae_anomaly import TimeSeriesVAEDetector
    from vae_anomaly.pipelines import tabular_pipeline

    series = pd.read_parquet(ROOT / "sample_data" / "timeseries_multivariate.parquet").drop(columns="label")
    detector = TimeSeriesVAEDetector(time_column="timestamp", epochs=5, random_state=0).fit(series.head(4000))
    detector.save(folder / "series_model")
    series.iloc[4000:4400].to_parquet(folder / "series.parquet")
    table = pd.read_parquet(ROOT / "sample_data" / "tabular.parquet").drop(columns="is_anomaly")
    tabular_pipeline(epochs=5, random_state=0).fit(table).save(folder / "pipeline_model")
    table.head(100).to_parquet(folder / "table.parquet")
    return [
        ("score series folder", folder / "series_model", folder / "series.parquet"),
        ("score Pipeline folder", folder / "pipeline_model", folder / "table.parquet"),
    ]


def prepared(folder: Path, n_rows: int) -> tuple[Path, Path, dict[str, str]]:
    """A saved detector, a 100-row input file, an ``n_rows`` one, and an environment whose registry
    holds the model."""
    from vae_anomaly import VAEAnomalyDetector, tracking

    data = pd.read_parquet(ROOT / "sample_data" / "tabular.parquet").select_dtypes("number")
    rows = data.drop(columns="is_anomaly").fillna(0.0)
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(rows)
    model = folder / "model"
    detector.save(model)
    rows.head(100).to_parquet(folder / "small.parquet")
    repeats = -(-n_rows // len(rows))
    pd.concat([rows] * repeats, ignore_index=True).head(n_rows).to_parquet(folder / "large.parquet")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracking.use_tracking_store(uri)
    import mlflow
    from mlflow.tracking import MlflowClient

    # Artifacts beside the store, not in ./mlruns of the current folder (MLflow's default).
    experiment = MlflowClient(uri).create_experiment("startup", artifact_location=str(folder / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        info = tracking.log_model(detector, "model", input_example=rows.head(5))
    tracking.register_model(info.model_uri, "startup-model", promote="always")
    environment = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return model, folder / "small.parquet", environment


@contextlib.contextmanager
def tracking_server(store_uri: str, folder: Path) -> Iterator[str]:
    """``mlflow server`` on ``store_uri`` at a free localhost port, until the block ends; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(
                        f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        else:
            raise SystemExit(f"mlflow server did not answer at {url} within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=180_000, help="rows of the larger run")
    args = parser.parse_args()
    python = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model, small, environment = prepared(folder, args.rows)
        steps = [("python", [python, "-c", "pass"])]
        steps += [(name, [python, "-c", f"import {name}"]) for name in IMPORTS]
        steps.append(("vae_anomaly", [python, "-c", CLI_IMPORTS]))
        steps.append(("... and the torch loader", [python, "-c", f"{CLI_IMPORTS}, vae_anomaly.bundle"]))
        registry = "models:/startup-model@champion"
        runs = [("score folder", model, small), ("score models:/", registry, small)]
        runs.append((f"{args.rows:,} rows", model, folder / "large.parquet"))
        runs += prepared_others(folder)
        for name, source, data in runs:
            arguments = ["score", str(source), str(data), str(folder / "out"), "--overwrite"]
            steps.append((name, [python, "-m", "vae_anomaly.cli", *arguments]))
            steps.append(("... with torch", [python, "-c", TORCH_CLI, *arguments]))
        for name, command in steps:
            rows.append({"step": name, "seconds": seconds(command, environment, args.repeats, folder)})
            print(f"{name:24} {rows[-1]['seconds']:.2f} s", flush=True)
        with tracking_server(environment["MLFLOW_TRACKING_URI"], folder) as url:
            served = {**environment, "MLFLOW_TRACKING_URI": url}
            arguments = ["score", registry, str(small), str(folder / "out"), "--overwrite"]
            seconds([python, "-m", "vae_anomaly.cli", *arguments], served, 1, folder)  # the server warms up
            for name, command in [
                ("score models:/ via server", [python, "-m", "vae_anomaly.cli", *arguments]),
                ("... with torch", [python, "-c", TORCH_CLI, *arguments]),
            ]:
                rows.append({"step": name, "seconds": seconds(command, served, args.repeats, folder)})
                print(f"{name:24} {rows[-1]['seconds']:.2f} s", flush=True)
    print()
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
