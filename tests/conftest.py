"""Shared test data (a low-dimensional manifold with anomalies planted off it, a seasonal series, the
sample table and a pipeline fitted on it), and a tracking store and a registry in a temp folder."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from vae_anomaly.callbacks import FitCallback, register_callback, unregister_callback

N_FEATURES = 8
REPOSITORY = Path(__file__).resolve().parents[1]
# What MLflow writes into the working folder when a run's experiment keeps its artifacts there.
CLUTTER = ("mlruns", "mlflow.db", "mlartifacts")


@pytest.fixture(scope="session", autouse=True)
def the_suite_writes_nothing_into_the_checkout():
    """Tests write into their temp folders only: no MLflow store or artifacts left in the checkout."""
    before = {name for name in CLUTTER if (REPOSITORY / name).exists()}
    yield
    left = sorted({name for name in CLUTTER if (REPOSITORY / name).exists()} - before)
    assert not left, f"the tests left {left} in {REPOSITORY}"


@pytest.fixture
def tracking_store(tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh sqlite tracking store in ``tmp_path`` (the working folder, artifacts beside it) for the
    test, its URI; autolog off and every run ended afterwards."""
    import mlflow

    from vae_anomaly import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tracking.use_tracking_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.autolog(disable=True)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def sample_table() -> tuple[pd.DataFrame, np.ndarray]:
    """``sample_data/tabular.parquet``: its features and its ``is_anomaly`` labels."""
    frame = pd.read_parquet(REPOSITORY / "sample_data" / "tabular.parquet")
    return frame.drop(columns="is_anomaly"), frame["is_anomaly"].to_numpy()


@pytest.fixture(scope="session")
def sample_pipeline(sample_table):
    """``tabular_pipeline`` fitted briefly (15 epochs) on ``sample_table``'s features."""
    from vae_anomaly.pipelines import tabular_pipeline

    return tabular_pipeline(epochs=15, random_state=0).fit(sample_table[0])


@pytest.fixture
def register_champion(tracking_store) -> Callable[[Any, str, pd.DataFrame], str]:
    """In the test's ``tracking_store``: ``register_champion(model, name, input_example)`` logs the
    model, registers it as the ``champion`` of ``name`` and returns its ``models:/`` URI."""
    import mlflow

    from vae_anomaly import tracking

    def register(model: Any, name: str, input_example: pd.DataFrame) -> str:
        with mlflow.start_run():
            info = tracking.log_model(model, "model", input_example=input_example)
        tracking.register_model(info.model_uri, name, promote="always")
        return f"models:/{name}@champion"

    return register


def planted_anomalies(
    n_normal: int = 1000, n_anomalies: int = 50, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Normal rows lie near a 2-D plane in 8-D space; anomalies are Gaussian points off it, same scale."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(2, N_FEATURES))
    normal = rng.normal(size=(n_normal, 2)) @ mixing + 0.1 * rng.normal(size=(n_normal, N_FEATURES))
    anomalies = rng.normal(size=(n_anomalies, N_FEATURES)) * normal.std(axis=0)
    x = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(n_normal, dtype=int), np.ones(n_anomalies, dtype=int)]
    order = rng.permutation(len(x))
    return x[order], y[order]


@pytest.fixture(scope="session")
def planted() -> tuple[np.ndarray, np.ndarray]:
    return planted_anomalies()


@pytest.fixture(scope="session")
def planted_frame(planted) -> pd.DataFrame:
    x, _ = planted
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])


def score_without_heavy_imports(folder: Path, source: Path, output: Path) -> list[str]:
    """Run ``vae-anomaly score folder source output`` in a fresh interpreter; assert that it succeeds
    and return which of torch, scikit-learn, scipy and MLflow it imported."""
    arguments = ["score", str(folder), str(source), str(output)]
    script = (
        f"import sys; from vae_anomaly.cli import main; code = main({arguments!r}); "
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy', 'mlflow') if m in sys.modules)); "
        "sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=output.parent)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def seasonal_series(n: int = 3000, n_channels: int = 1, period: int = 50, seed: int = 0) -> np.ndarray:
    """Noisy sine waves, one phase per channel: shape (n,) for one channel, else (n, n_channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    phases = np.linspace(0, np.pi, n_channels, endpoint=False)
    values = np.sin(2 * np.pi * t / period + phases) + 0.1 * rng.normal(size=(n, n_channels))
    return values[:, 0] if n_channels == 1 else values


@pytest.fixture(scope="session")
def seasonal() -> np.ndarray:
    return seasonal_series()


@pytest.fixture(scope="session")
def fitted_series_detector(seasonal):
    """A detector fitted on the first 2,000 points of the seasonal series."""
    from vae_anomaly import TimeSeriesVAEDetector

    return TimeSeriesVAEDetector(window=32, epochs=60, random_state=0).fit(seasonal[:2000])


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``gpu`` where torch sees no CUDA device, so CI on CPU stays green."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class Recorder(FitCallback):
    """A fit callback that records every event it hears, in order, as (kind, ...) tuples; with
    ``fail_at_epoch`` it raises at that epoch."""

    def __init__(self, fail_at_epoch: int | None = None) -> None:
        self.events: list[tuple] = []
        self.fail_at_epoch = fail_at_epoch

    def on_fit_start(self, detector):
        self.events.append(("start", detector))

    def on_epoch_end(self, detector, record):
        self.events.append(("epoch", record["epoch"]))
        if record["epoch"] == self.fail_at_epoch:
            raise RuntimeError("stop here")

    def on_fit_end(self, detector, X, training_scores):
        self.events.append(("end", X, training_scores))

    def on_fit_error(self, detector, error):
        self.events.append(("error", error))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A ``Recorder`` registered for the test."""
    callback = Recorder()
    register_callback(callback)
    yield callback
    unregister_callback(callback)
