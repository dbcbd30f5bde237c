"""The logged pyfunc model and the registry, against a real sqlite store in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector, tracking
from vae_anomaly.pipelines import tabular_pipeline

pytestmark = pytest.mark.usefixtures("tracking_store")


def test_logged_model_scores_like_the_pipeline_in_a_fresh_process(sample_pipeline, sample_table, tmp_path):
    features, _ = sample_table
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=features.head(5))
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
    detector = sample_pipeline[-1]
    np.testing.assert_array_equal(
        scores["anomaly_score"], detector.anomaly_score(sample_pipeline[:-1].transform(features))
    )
    np.testing.assert_array_equal(scores["is_anomaly"], sample_pipeline.predict(features) == -1)


def test_a_logged_bare_detector_loads_and_scores_without_skops_or_matplotlib(sample_table, tmp_path):
    features = sample_table[0].select_dtypes("number").dropna()
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


def test_logged_model_has_signature_example_and_pinned_requirements(sample_pipeline, sample_table):
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    signature = info.signature
    assert signature.inputs.input_names() == list(sample_table[0].columns)
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
    assert json.loads((folder / "input_example.json").read_text())["columns"] == list(sample_table[0].columns)
    assert not list(folder.rglob("*.pkl")), "the model must not be pickled"


def test_logged_model_explains_rows_on_request(sample_pipeline, sample_table):
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    model = mlflow.pyfunc.load_model(info.model_uri)
    explained = model.predict(sample_table[0].head(20), params={"contributions": True})
    shares = explained.filter(like="contribution_")
    assert list(shares.columns) == [f"contribution_{column}" for column in sample_table[0].columns]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert list(model.predict(sample_table[0].head(20)).columns) == ["anomaly_score", "is_anomaly"]


def test_the_served_answer_for_a_value_too_large_for_the_model_is_valid_json(sample_pipeline, sample_table):
    import io

    from mlflow.pyfunc.scoring_server import predictions_to_json

    from vae_anomaly.pyfunc import LARGEST_SCORE

    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    rows = sample_table[0].head(3).copy()
    rows.iloc[1, rows.columns.get_loc(rows.select_dtypes("number").columns[0])] = 1e39
    answer = io.StringIO()
    predictions_to_json(mlflow.pyfunc.load_model(info.model_uri).predict(rows), answer)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    predictions = json.loads(answer.getvalue(), parse_constant=refuse)["predictions"]
    assert predictions[1] == {"anomaly_score": LARGEST_SCORE, "is_anomaly": True}
    assert predictions[0]["anomaly_score"] < LARGEST_SCORE


def test_a_logged_model_names_a_missing_column_in_one_line_before_mlflows_check(
    sample_pipeline, sample_table
):
    from mlflow.exceptions import MlflowException

    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    model = mlflow.pyfunc.load_model(info.model_uri)
    with pytest.raises(MlflowException) as refused:
        model.predict(sample_table[0].head(3).drop(columns=["cpu_pct", "region"]))
    message = refused.value.message
    assert message.startswith("The input lacks column(s) ['region', 'cpu_pct']; the model needs ['region', ")
    assert "\n" not in message and "Failed to enforce schema" not in message
    assert refused.value.get_http_status_code() == 400
    extra = model.predict(sample_table[0].head(3).assign(unknown=1.0))  # ignored, with MLflow's warning
    pd.testing.assert_frame_equal(extra, model.predict(sample_table[0].head(3)))


@pytest.mark.slow
def test_a_served_model_answers_400_naming_the_missing_column(sample_pipeline, sample_table):
    import socket
    import time
    import urllib.error
    import urllib.request

    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
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
        rows = sample_table[0].head(2).drop(columns="cpu_pct")
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
        + (str(list(sample_table[0].columns)) + ".")
    )
    assert "Failed to enforce schema" not in message


def test_logged_model_gives_the_anomaly_probability_on_request(sample_pipeline, sample_table):
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    scored = mlflow.pyfunc.load_model(info.model_uri).predict(
        sample_table[0].head(50), params={"probability": True}
    )
    np.testing.assert_allclose(
        scored["anomaly_probability"], sample_pipeline.predict_proba(sample_table[0].head(50))[:, 1]
    )


def test_a_logged_series_model_answers_and_is_evaluated_by_its_events(seasonal):
    from vae_anomaly.metrics import composite_f1, event_f1, events_to_flags, range_f1

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
    assert metrics["composite_f1"] == composite_f1(labels, flags)["f1"] < metrics["event_f1"]
    assert {"roc_auc", "pr_auc", "precision", "recall", "f1"} <= set(metrics)


def test_logged_model_refuses_input_without_a_column(sample_pipeline, sample_table):
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    with pytest.raises(mlflow.exceptions.MlflowException, match="cpu_pct"):
        mlflow.pyfunc.load_model(info.model_uri).predict(sample_table[0].drop(columns="cpu_pct"))


def test_log_model_wants_a_dataframe_example(sample_pipeline, sample_table):
    with mlflow.start_run(), pytest.raises(TypeError, match="input_example must be a pandas DataFrame"):
        tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5).to_numpy())


def test_champion_moves_only_to_a_better_model(sample_pipeline, sample_table):
    features, labels = sample_table
    weak = tabular_pipeline(epochs=1, latent_dim=1, hidden_dims=(4,), random_state=1).fit(features)
    with mlflow.start_run():
        good_uri = tracking.log_model(sample_pipeline, "good", input_example=features.head(5)).model_uri
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
def test_bad_labels_are_refused_before_anything_is_registered(sample_pipeline, sample_table, labels, message):
    features = sample_table[0].head(50)
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=features.head(5))
    with pytest.raises(ValueError, match=message):
        tracking.register_model(
            info.model_uri, "detector", validation_data=features, validation_labels=labels
        )
    assert MlflowClient().search_registered_models() == []


def test_register_model_checks_its_arguments(sample_table):
    with pytest.raises(ValueError, match="promote must be"):
        tracking.register_model("runs:/x/model", "detector", promote="sometimes")
    with pytest.raises(ValueError, match="together"):
        tracking.register_model("runs:/x/model", "detector", validation_data=sample_table[0])


def test_logging_a_model_draws_no_download_bars(sample_pipeline, sample_table, capfd, monkeypatch):
    from vae_anomaly.model_location import PROGRESS_BAR_VARIABLE

    monkeypatch.delenv(PROGRESS_BAR_VARIABLE, raising=False)
    with mlflow.start_run():
        tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert PROGRESS_BAR_VARIABLE not in os.environ


def test_loading_and_evaluating_a_model_draw_no_download_bars(sample_pipeline, sample_table, monkeypatch):
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    from vae_anomaly.loading import load_from
    from vae_anomaly.model_location import PROGRESS_BAR_VARIABLE

    monkeypatch.delenv(PROGRESS_BAR_VARIABLE, raising=False)
    with mlflow.start_run():
        info = tracking.log_model(sample_pipeline, "model", input_example=sample_table[0].head(5))
    bars = []  # whether MLflow would draw its bars, at each download

    def spy(original):
        def download(*args, **kwargs):
            bars.append(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get())
            return original(*args, **kwargs)

        return download

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", spy(mlflow.artifacts.download_artifacts))
    monkeypatch.setattr(mlflow.pyfunc, "load_model", spy(mlflow.pyfunc.load_model))
    loaded = load_from(info.model_uri)
    tracking.evaluate_model(info.model_uri, sample_table[0], sample_table[1])
    assert bars == [False, False]
    assert PROGRESS_BAR_VARIABLE not in os.environ  # as it was
    np.testing.assert_array_equal(
        loaded.model.score_samples(sample_table[0]), sample_pipeline.score_samples(sample_table[0])
    )
    monkeypatch.setenv(PROGRESS_BAR_VARIABLE, "true")  # the user's choice wins
    load_from(info.model_uri)
    assert bars[-1] is True
