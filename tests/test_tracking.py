"""MLflow tracking: the store, autolog's runs, params, epoch metrics and plots, against a real sqlite
store in a temp dir."""

from __future__ import annotations

import threading

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector, tracking
from vae_anomaly.callbacks import FitCallback, register_callback, unregister_callback
from vae_anomaly.tracking.store import ARTIFACTS_FOLDER

pytestmark = pytest.mark.usefixtures("tracking_store")


def _runs() -> pd.DataFrame:
    return mlflow.search_runs(search_all_experiments=True)


def test_default_store_is_local_sqlite(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # set by the fixture's set_tracking_uri
    assert tracking.use_tracking_store() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.use_tracking_store() == "sqlite:///elsewhere.db"


def test_a_new_sqlite_store_keeps_artifacts_beside_its_file_not_in_the_working_folder(
    planted_frame, tmp_path, monkeypatch
):
    working, elsewhere = tmp_path / "work", tmp_path / "stores"
    working.mkdir()
    monkeypatch.chdir(working)
    for uri, folder in [
        (f"sqlite:///{elsewhere / 'a' / 'mlflow.db'}", elsewhere / "a"),
        ("sqlite:///relative/mlflow.db", working / "relative"),
    ]:
        folder.mkdir(parents=True)
        tracking.use_tracking_store(uri)
        with mlflow.start_run():
            detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(planted_frame)
            tracking.log_model(detector, "model", input_example=planted_frame.head(3))
            mlflow.log_text("x", "note.txt")
        expected = (folder / ARTIFACTS_FOLDER / "0").resolve().as_uri()
        assert MlflowClient(uri).get_experiment("0").artifact_location == expected
        assert any((folder / ARTIFACTS_FOLDER / "0").rglob("note.txt"))
    assert sorted(path.name for path in working.iterdir()) == ["relative"]  # no ./mlruns


def test_an_existing_store_keeps_its_artifact_location(tracking_store):
    before = MlflowClient(tracking_store).get_experiment("0").artifact_location
    tracking.use_tracking_store(tracking_store)
    assert MlflowClient(tracking_store).get_experiment("0").artifact_location == before


def test_autolog_logs_params_epoch_metrics_summary_and_plots(planted):
    tracking.autolog()
    with mlflow.start_run() as run:
        detector = VAEAnomalyDetector(epochs=12, latent_dim=3, random_state=0).fit(planted[0])
    client = MlflowClient()
    logged = client.get_run(run.info.run_id).data
    assert logged.params["latent_dim"] == "3"
    assert logged.params["epochs"] == "12"
    for metric in ("train_loss", "train_reconstruction", "train_kl", "kl_weight", "learning_rate"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert [point.step for point in history] == list(range(1, 13))
    losses = [point.value for point in client.get_metric_history(run.info.run_id, "train_loss")]
    np.testing.assert_allclose(losses, [record["loss"] for record in detector.history_])
    assert len(client.get_metric_history(run.info.run_id, "early_stopping_loss")) == 12
    assert "validation_loss" not in logged.metrics and "best_early_stopping_loss" in logged.metrics
    assert logged.metrics["offset"] == pytest.approx(detector.offset_)
    scores = detector.anomaly_score(planted[0])
    assert logged.metrics["train_score_p99"] == pytest.approx(np.quantile(scores, 0.99))
    assert logged.metrics["train_flagged_fraction"] == pytest.approx(
        np.mean(detector.predict(planted[0]) == -1)
    )
    plots = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/loss_curve.png", "plots/score_histogram.png"}


def test_autolog_sends_each_fit_in_its_own_thread_to_its_own_run(planted):
    """Two fits at once, each in a thread with a run of its own: each run gets its own fit's epochs."""
    tracking.autolog(log_plots=False)
    both_started = threading.Barrier(2, timeout=60)

    class StartTogether(FitCallback):  # after autolog's logger: both fits have begun to log
        def on_fit_start(self, detector):
            both_started.wait()

    together = StartTogether()
    register_callback(together)
    results = {}

    def fit(epochs: int) -> None:
        with mlflow.start_run() as run:
            detector = VAEAnomalyDetector(epochs=epochs, random_state=0).fit(planted[0][:300])
        results[epochs] = (run.info.run_id, detector.history_)

    try:
        threads = [threading.Thread(target=fit, args=(epochs,)) for epochs in (4, 7)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        unregister_callback(together)
    client = MlflowClient()
    for epochs, (run_id, history) in results.items():
        losses = [point.value for point in client.get_metric_history(run_id, "train_loss")]
        np.testing.assert_allclose(losses, [record["loss"] for record in history])
        assert len(losses) == epochs
        assert client.get_run(run_id).data.params["epochs"] == str(epochs)


def test_autolog_plots_a_time_series_with_its_flags_and_events(seasonal):
    tracking.autolog()
    with mlflow.start_run() as run:
        TimeSeriesVAEDetector(window=32, epochs=3, random_state=0).fit(seasonal)
    plots = {artifact.path for artifact in MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert {"plots/series_flags.png", "plots/series_events.png"} <= plots


def test_autolog_of_separate_segments_draws_no_series_across_them(seasonal):
    index = pd.date_range("2024-01-01", periods=1500, freq="5min")
    runs = pd.DataFrame({"value": seasonal[:3000]}, index=index.append(index))  # two runs, same hours
    tracking.autolog()
    with mlflow.start_run() as run:
        detector = TimeSeriesVAEDetector(window=32, epochs=3, random_state=0).fit(runs, segments=[1500, 1500])
    plots = {artifact.path for artifact in MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/loss_curve.png", "plots/score_histogram.png"}
    assert detector.segments_ == (1500, 1500)


def test_fits_without_a_run_or_autolog_log_nothing(planted):
    VAEAnomalyDetector(epochs=2, random_state=0).fit(planted[0])  # autolog not called
    tracking.autolog()
    VAEAnomalyDetector(epochs=2, random_state=0).fit(planted[0])  # no active run
    assert _runs().empty


def test_autolog_can_start_a_run_of_its_own(planted):
    tracking.autolog(log_without_active_run=True, log_plots=False)
    VAEAnomalyDetector(epochs=2, random_state=0).fit(planted[0])
    runs = _runs()
    assert len(runs) == 1
    assert runs["status"][0] == "FINISHED"
    assert mlflow.active_run() is None


def test_a_second_fit_in_one_run_goes_to_a_nested_run(planted):
    tracking.autolog(log_plots=False)
    with mlflow.start_run() as parent:
        VAEAnomalyDetector(epochs=2, latent_dim=2, random_state=0).fit(planted[0])
        VAEAnomalyDetector(epochs=2, latent_dim=4, random_state=0).fit(planted[0])
    runs = _runs().set_index("run_id")
    assert runs.loc[parent.info.run_id, "params.latent_dim"] == "2"
    child = runs.drop(index=parent.info.run_id)
    assert child["tags.mlflow.parentRunId"].tolist() == [parent.info.run_id]
    assert child["params.latent_dim"].tolist() == ["4"]


def test_a_failed_fit_marks_its_own_run_failed(planted):
    class Stop(FitCallback):
        def on_epoch_end(self, detector, record):
            raise KeyboardInterrupt

    tracking.autolog(log_without_active_run=True)
    stop = Stop()
    register_callback(stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            VAEAnomalyDetector(epochs=5, random_state=0).fit(planted[0])
    finally:
        unregister_callback(stop)
    assert _runs()["status"].tolist() == ["FAILED"]
    assert mlflow.active_run() is None
