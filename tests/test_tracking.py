"""MLflow tracking, the logged pyfunc model and the registry, against a real sqlite store in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector, tracking
from vae_anomaly.callbacks import FitCallback, register_callback, unregister_callback
from vae_anomaly.pipelines import tabular_pipeline
from vae_anomaly.tracking.store import ARTIFACTS_FOLDER

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """A fresh sqlite tracking store (artifacts beside it); autolog off again afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.use_tracking_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield uri
    tracking.autolog(disable=True)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def tabular() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_parquet(SAMPLE_DATA / "tabular.parquet")
    return frame.drop(columns="is_anomaly"), frame["is_anomaly"].to_numpy()


@pytest.fixture(scope="module")
def fitted_pipeline(tabular):
    return tabular_pipeline(epochs=15, random_state=0).fit(tabular[0])


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


def test_an_existing_store_keeps_its_artifact_location(store):
    before = MlflowClient(store).get_experiment("0").artifact_location
    tracking.use_tracking_store(store)
    assert MlflowClient(store).get_experiment("0").artifact_location == before


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


def test_logged_model_scores_like_the_pipeline_in_a_fresh_process(fitted_pipeline, tabular, tmp_path):
    features, _ = tabular
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=features.head(5))
    features.to_parquet(tmp_path / "input.parquet")
    script = (
        "import sys, mlflow, pandas as pd\n"
        "assert 'vae_anomaly' not in sys.modules\n"
        f"mlflow.set_tracking_uri({mlflow.get_tracking_uri()!r})\n"
        f"model = mlflow.pyfunc.load_model({info.model_uri!r})\n"
        "import vae_anomaly\n"
        "print(vae_anomaly.__file__)\n"
        f"model.predict(pd.read_parquet({str(tmp_path / 'input.parquet')!r})).to_parquet('scores.parquet')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The model carries its own copy of vae_anomaly, so it loads where the package is not installed.
    assert "/code/vae_anomaly/__init__.py" in done.stdout
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    detector = fitted_pipeline[-1]
    np.testing.assert_array_equal(
        scores["anomaly_score"], detector.anomaly_score(fitted_pipeline[:-1].transform(features))
    )
    np.testing.assert_array_equal(scores["is_anomaly"], fitted_pipeline.predict(features) == -1)


def test_a_logged_bare_detector_loads_and_scores_without_skops_or_matplotlib(tabular, tmp_path):
    features = tabular[0].select_dtypes("number").dropna()
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(features)
    with mlflow.start_run():
        info = tracking.log_model(detector, "model", input_example=features.head(5))
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    requirements = {line.split("==")[0] for line in (folder / "requirements.txt").read_text().split()}
    assert "skops" not in requirements and "matplotlib" not in requirements
    features.to_parquet(tmp_path / "input.parquet")
    script = (
        "import sys, mlflow, pandas as pd\n"
        "sys.modules['skops'] = sys.modules['matplotlib'] = None  # as if not installed\n"
        f"model = mlflow.pyfunc.load_model({str(folder)!r})\n"
        f"model.predict(pd.read_parquet({str(tmp_path / 'input.parquet')!r})).to_parquet('scores.parquet')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    np.testing.assert_array_equal(scores["anomaly_score"], detector.anomaly_score(features))


def test_logged_model_has_signature_example_and_pinned_requirements(fitted_pipeline, tabular):
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    signature = info.signature
    assert signature.inputs.input_names() == list(tabular[0].columns)
    assert signature.outputs.input_names() == ["anomaly_score", "is_anomaly"]
    assert signature.params.to_dict() == [
        {"name": "contributions", "type": "boolean", "default": False, "shape": None},
        {"name": "probability", "type": "boolean", "default": False, "shape": None},
    ]
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    requirements = (folder / "requirements.txt").read_text().split()
    torch_pin = next(line for line in requirements if line.startswith("torch=="))
    assert "+" not in torch_pin
    assert any(line.startswith("skops==") for line in requirements)
    assert json.loads((folder / "input_example.json").read_text())["columns"] == list(tabular[0].columns)
    assert not list(folder.rglob("*.pkl")), "the model must not be pickled"


def test_logged_model_explains_rows_on_request(fitted_pipeline, tabular):
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    model = mlflow.pyfunc.load_model(info.model_uri)
    explained = model.predict(tabular[0].head(20), params={"contributions": True})
    shares = explained.filter(like="contribution_")
    assert list(shares.columns) == [f"contribution_{column}" for column in tabular[0].columns]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert list(model.predict(tabular[0].head(20)).columns) == ["anomaly_score", "is_anomaly"]


def test_the_served_answer_for_a_value_too_large_for_the_model_is_valid_json(fitted_pipeline, tabular):
    import io

    from mlflow.pyfunc.scoring_server import predictions_to_json

    from vae_anomaly.pyfunc import LARGEST_SCORE

    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    rows = tabular[0].head(3).copy()
    rows.iloc[1, rows.columns.get_loc(rows.select_dtypes("number").columns[0])] = 1e39
    answer = io.StringIO()
    predictions_to_json(mlflow.pyfunc.load_model(info.model_uri).predict(rows), answer)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    predictions = json.loads(answer.getvalue(), parse_constant=refuse)["predictions"]
    assert predictions[1] == {"anomaly_score": LARGEST_SCORE, "is_anomaly": True}
    assert predictions[0]["anomaly_score"] < LARGEST_SCORE


def test_a_logged_model_names_a_missing_column_in_one_line_before_mlflows_check(fitted_pipeline, tabular):
    from mlflow.exceptions import MlflowException

    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    model = mlflow.pyfunc.load_model(info.model_uri)
    with pytest.raises(MlflowException) as refused:
        model.predict(tabular[0].head(3).drop(columns=["cpu_pct", "region"]))
    message = refused.value.message
    assert message.startswith("The input lacks column(s) ['region', 'cpu_pct']; the model needs ['region', ")
    assert "\n" not in message and "Failed to enforce schema" not in message
    assert refused.value.get_http_status_code() == 400
    extra = model.predict(tabular[0].head(3).assign(unknown=1.0))  # ignored, with MLflow's warning
    pd.testing.assert_frame_equal(extra, model.predict(tabular[0].head(3)))


@pytest.mark.slow
def test_a_served_model_answers_400_naming_the_missing_column(fitted_pipeline, tabular):
    import socket
    import time
    import urllib.error
    import urllib.request

    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", info.model_uri]
    server = subprocess.Popen(
        [*command, "--env-manager", "local", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        rows = tabular[0].head(2).drop(columns="cpu_pct")
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer.value.code == 400
    message = json.loads(answer.value.read())["message"]
    # MLflow's server puts "Failed to predict data '<the input>'" before any error a model raises.
    assert message.endswith(
        "Error: The input lacks column(s) ['cpu_pct']; the model needs "
        + (str(list(tabular[0].columns)) + ".")
    )
    assert "Failed to enforce schema" not in message


def test_logged_model_gives_the_anomaly_probability_on_request(fitted_pipeline, tabular):
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    scored = mlflow.pyfunc.load_model(info.model_uri).predict(
        tabular[0].head(50), params={"probability": True}
    )
    np.testing.assert_allclose(
        scored["anomaly_probability"], fitted_pipeline.predict_proba(tabular[0].head(50))[:, 1]
    )


def test_a_logged_series_model_answers_and_is_evaluated_by_its_events(seasonal):
    from vae_anomaly.metrics import event_f1, events_to_flags, range_f1

    times = pd.date_range("2024-01-01", periods=len(seasonal), freq="5min")
    frame = pd.DataFrame({"time": times, "value": seasonal})
    detector = TimeSeriesVAEDetector(window=32, epochs=30, time_column="time", random_state=0)
    detector.fit(frame.iloc[:2000])
    series = frame.iloc[2000:].reset_index(drop=True)
    series.loc[300:305, "value"] += 3.0
    labels = np.zeros(len(series), dtype=int)
    labels[300:306] = 1
    with mlflow.start_run():
        info = tracking.log_model(detector, "model", input_example=frame.iloc[:64])
    assert "events" in [param["name"] for param in info.signature.params.to_dict()]
    model = mlflow.pyfunc.load_model(info.model_uri)
    events = model.predict(series, params={"events": True})
    # MLflow's schema enforcement hands the model its timestamps in nanoseconds.
    pd.testing.assert_frame_equal(events, detector.events(series.astype({"time": "datetime64[ns]"})))
    planted = series.loc[300, "time"]
    assert ((events["core_start"] <= planted) & (events["core_end"] >= planted)).sum() == 1
    assert list(model.predict(series).columns) == ["anomaly_score", "is_anomaly"]
    metrics = tracking.evaluate_model(info.model_uri, series, labels)
    flags = events_to_flags(detector.events(series), series["time"])
    expected = event_f1(labels, flags)
    assert metrics["event_recall"] == 1.0 and metrics["event_f1"] == expected["f1"] > 0
    assert metrics["event_precision"] == expected["precision"]
    assert metrics["range_f1"] == range_f1(labels, flags)["f1"]
    assert {"roc_auc", "pr_auc", "precision", "recall", "f1"} <= set(metrics)


def test_logged_model_refuses_input_without_a_column(fitted_pipeline, tabular):
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    with pytest.raises(mlflow.exceptions.MlflowException, match="cpu_pct"):
        mlflow.pyfunc.load_model(info.model_uri).predict(tabular[0].drop(columns="cpu_pct"))


def test_log_model_wants_a_dataframe_example(fitted_pipeline, tabular):
    with mlflow.start_run(), pytest.raises(TypeError, match="input_example must be a pandas DataFrame"):
        tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5).to_numpy())


def test_champion_moves_only_to_a_better_model(fitted_pipeline, tabular):
    features, labels = tabular
    weak = tabular_pipeline(epochs=1, latent_dim=1, hidden_dims=(4,), random_state=1).fit(features)
    with mlflow.start_run():
        good_uri = tracking.log_model(fitted_pipeline, "good", input_example=features.head(5)).model_uri
        weak_uri = tracking.log_model(weak, "weak", input_example=features.head(5)).model_uri
    kwargs = dict(validation_data=features, validation_labels=labels)
    first = tracking.register_model(weak_uri, "detector", **kwargs)
    assert (first.promoted, first.reason) == (True, "no champion yet")
    better = tracking.register_model(good_uri, "detector", **kwargs)
    assert better.promoted and better.metric > better.champion_metric
    assert better.validation_metrics["pr_auc"] == better.metric and "roc_auc" in better.validation_metrics
    worse = tracking.register_model(weak_uri, "detector", **kwargs)
    assert not worse.promoted and "does not beat champion v2" in worse.reason
    same = tracking.register_model(good_uri, "detector", **kwargs)
    assert not same.promoted  # a tie does not move the alias
    unlabelled = tracking.register_model(good_uri, "detector")
    assert not unlabelled.promoted and "no labelled validation data" in unlabelled.reason
    forced = tracking.register_model(weak_uri, "detector", promote="always")
    assert forced.promoted
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("detector", "champion").version) == forced.version
    versions = client.search_model_versions("name='detector'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4, 5, 6]
    assert client.get_model_version("detector", worse.version).tags["promoted"] == "false"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(50, dtype=int), "needs both anomalies"),
        (np.r_[np.zeros(49, dtype=int), 2], "0 \\(normal\\) and 1 \\(anomaly\\) only"),
        (np.r_[np.zeros(40, dtype=int), 1], "one label per sample \\(50\\)"),
    ],
    ids=["one_class", "not_binary", "wrong_length"],
)
def test_bad_labels_are_refused_before_anything_is_registered(fitted_pipeline, tabular, labels, message):
    features = tabular[0].head(50)
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=features.head(5))
    with pytest.raises(ValueError, match=message):
        tracking.register_model(
            info.model_uri, "detector", validation_data=features, validation_labels=labels
        )
    assert MlflowClient().search_registered_models() == []


def test_register_model_checks_its_arguments(tabular):
    with pytest.raises(ValueError, match="promote must be"):
        tracking.register_model("runs:/x/model", "detector", promote="sometimes")
    with pytest.raises(ValueError, match="together"):
        tracking.register_model("runs:/x/model", "detector", validation_data=tabular[0])


def test_logging_a_model_draws_no_download_bars(fitted_pipeline, tabular, capfd, monkeypatch):
    from vae_anomaly.model_location import PROGRESS_BAR_VARIABLE

    monkeypatch.delenv(PROGRESS_BAR_VARIABLE, raising=False)
    with mlflow.start_run():
        tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert PROGRESS_BAR_VARIABLE not in os.environ


def test_loading_and_evaluating_a_model_draw_no_download_bars(fitted_pipeline, tabular, monkeypatch):
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    from vae_anomaly.loading import load_from
    from vae_anomaly.model_location import PROGRESS_BAR_VARIABLE

    monkeypatch.delenv(PROGRESS_BAR_VARIABLE, raising=False)
    with mlflow.start_run():
        info = tracking.log_model(fitted_pipeline, "model", input_example=tabular[0].head(5))
    bars = []  # whether MLflow would draw its bars, at each download

    def spy(original):
        def download(*args, **kwargs):
            bars.append(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get())
            return original(*args, **kwargs)

        return download

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", spy(mlflow.artifacts.download_artifacts))
    monkeypatch.setattr(mlflow.pyfunc, "load_model", spy(mlflow.pyfunc.load_model))
    loaded = load_from(info.model_uri)
    tracking.evaluate_model(info.model_uri, tabular[0], tabular[1])
    assert bars == [False, False]
    assert PROGRESS_BAR_VARIABLE not in os.environ  # as it was
    np.testing.assert_array_equal(
        loaded.model.score_samples(tabular[0]), fitted_pipeline.score_samples(tabular[0])
    )
    monkeypatch.setenv(PROGRESS_BAR_VARIABLE, "true")  # the user's choice wins
    load_from(info.model_uri)
    assert bars[-1] is True
