"""The MLproject's entry points, run with `mlflow run --env-manager local` against a temp sqlite store."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import seasonal_series
from mlflow.tracking import MlflowClient

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE = REPOSITORY / "sample_data" / "tabular.parquet"
MODEL = "project-model"


@pytest.fixture
def store(tmp_path):
    """Environment for `mlflow run`: a sqlite store and an experiment whose artifacts stay in tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("project", artifact_location=str(tmp_path / "artifacts"))
    return {**os.environ, "MLFLOW_TRACKING_URI": uri}, MlflowClient(uri, registry_uri=uri)


def mlflow_run(environment: dict[str, str], entry: str, **params: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlflow", "run", "mlflow_project", "-e", entry, "--env-manager", "local"]
    command += ["--experiment-name", "project"]
    for name, value in params.items():
        command += ["-P", f"{name}={value}"]
    return subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True)


def test_train_registers_and_score_is_safe_to_rerun(store, tmp_path):
    environment, client = store
    trained = mlflow_run(environment, "train", epochs=5, model_name=MODEL)
    assert trained.returncode == 0, trained.stderr
    assert f"{MODEL} version 1: promoted to champion (no champion yet)" in trained.stdout
    [run] = client.search_runs([client.get_experiment_by_name("project").experiment_id])
    assert {"validation_pr_auc", "validation_f1", "train_loss", "offset"} <= set(run.data.metrics)
    assert run.data.tags["registered_version"] == "1"

    output = tmp_path / "out"
    for run in range(2):  # a scheduled rerun finds the output complete: no duplicated rows
        scored = mlflow_run(environment, "score", model_uri=f"models:/{MODEL}@champion", output=output)
        assert scored.returncode == 0, scored.stderr
        assert ("1 scored" if run == 0 else "1 already complete") in scored.stdout
        scores = pd.read_parquet(output / "tabular.parquet")
        source = pd.read_parquet(SAMPLE).drop(columns="is_anomaly")
        assert list(scores.columns) == [*source.columns, "anomaly_score", "is_anomaly"]
        pd.testing.assert_frame_equal(scores[source.columns], source)
    assert [path.name for path in output.iterdir()] == ["tabular.parquet"]


@pytest.mark.slow  # two `mlflow run` trainings: 26 s, which the default run cannot spare
def test_a_scheduled_retrain_that_does_not_beat_the_champion_leaves_the_alias(store):
    # The same seed gives the same model: a scheduled retrain that does not beat the champion
    # is registered but leaves the alias where it was.
    environment, client = store
    assert mlflow_run(environment, "train", epochs=5, model_name=MODEL).returncode == 0
    retrained = mlflow_run(environment, "train", epochs=5, model_name=MODEL)
    assert retrained.returncode == 0, retrained.stderr
    assert "version 2: not promoted (pr_auc" in retrained.stdout
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"


@pytest.mark.slow  # an `mlflow run` of its own, 13 s; the parametrized checks below test the messages
def test_a_bad_parameter_passed_through_mlflow_run_stops_the_entry_point(store):
    environment, _ = store
    done = mlflow_run(environment, "train", epochs=-3)
    assert done.returncode != 0
    assert "argument --epochs: expected 'auto' or a positive integer, got '-3'" in done.stderr


@pytest.mark.parametrize(
    "entry,argv,message",
    [
        ("train", ["--latent-dim", "2.5"], "argument --latent-dim: expected a positive integer, got '2.5'"),
        ("score", ["--batch-rows", "0"], "argument --batch-rows: expected a positive integer, got 0"),
        (
            "train",
            ["--holdout-fraction", "0.95"],
            "argument --holdout-fraction: expected a number in [0, 0.9]",
        ),
    ],
)
def test_entry_points_refuse_bad_parameters(entry, argv, message, monkeypatch, capsys):
    # MLflow passes int and float parameters through unchecked (the test above): each script parses
    # them itself, here in this process instead of a run of its own each.
    monkeypatch.syspath_prepend(str(REPOSITORY / "mlflow_project"))
    spec = importlib.util.spec_from_file_location(
        f"entry_point_{entry}", REPOSITORY / "mlflow_project" / f"{entry}.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    required = {
        "train": ["--model-name", "m"],
        "score": ["--model-uri", "models:/m@champion", "--output", "out"],
    }[entry]
    monkeypatch.setattr(sys, "argv", [f"{entry}.py", *required, "--data", str(SAMPLE), *argv])
    with pytest.raises(SystemExit) as stopped:
        script.parse_arguments()
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # two `mlflow run`s as cron runs them: about 30 s
def test_the_readme_crontab_line_runs_as_cron_runs_it(tmp_path):
    block = (REPOSITORY / "README.md").read_text().split("```cron\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    path = next(line for line in lines if line.startswith("PATH=")).split("=", 1)[1]
    job = next(line for line in lines if line.startswith("0 2 * * * ")).removeprefix("0 2 * * * ")
    site = tmp_path / "srv"  # the checkout the line cds into: its project and sample data
    shutil.copytree(
        REPOSITORY / "mlflow_project", site / "mlflow_project", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPOSITORY / "sample_data", site / "sample_data")
    for planned, here in (
        ("/srv/vae-anomaly", str(site)),
        ("/srv/scores", str(tmp_path / "scores")),
        ("/var/log/vae-anomaly.log", str(tmp_path / "job.log")),
        ("\\%", "%"),  # cron turns \% into %
    ):
        job, path = job.replace(planned, here), path.replace(planned, here)
    path = path.replace(f"{site}/.venv/bin", str(Path(sys.executable).parent))
    done = subprocess.run(
        ["env", "-i", f"PATH={path}", f"HOME={tmp_path}", "sh", "-c", job],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = (tmp_path / "job.log").read_text()
    assert done.returncode == 0, log[-3000:]
    assert done.stdout == done.stderr == ""  # both runs' output went to the log
    assert "promoted to champion" in log and "1 scored" in log
    assert len(list((tmp_path / "scores").glob("*/tabular.parquet"))) == 1
    client = MlflowClient(f"sqlite:///{site / 'mlflow.db'}")  # both runs used the line's store
    assert str(client.get_model_version_by_alias("vae-anomaly-tabular", "champion").version) == "1"


def test_train_samples_a_long_series_and_validates_on_its_last_part(store, tmp_path, monkeypatch):
    n_rows = 100_000  # more windows than a fit trains on: segments are drawn from the first 80,000
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n_rows, freq="1min"),
            "value": seasonal_series(n_rows),
            "label": 0,
        }
    )
    for start in range(82_000, n_rows, 3000):  # spikes in the holdout
        frame.loc[start, ["value", "label"]] = [frame.loc[start, "value"] + 4.0, 1]
    frame.to_parquet(tmp_path / "series.parquet")
    environment, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", environment["MLFLOW_TRACKING_URI"])
    # The store's Default experiment keeps its artifacts in ./mlruns of the folder the store was made
    # in (the checkout): the run goes to the fixture's experiment, whose artifacts stay in tmp_path.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "project")
    monkeypatch.syspath_prepend(str(REPOSITORY / "mlflow_project"))
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(
        "entry_point_train", REPOSITORY / "mlflow_project" / "train.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--data", str(tmp_path / "series.parquet"), "--kind", "timeseries", "--time-column", "timestamp"]
    monkeypatch.setattr(
        sys, "argv", ["train.py", *argv, "--label-column", "label", "--epochs", "3", "--model-name", MODEL]
    )
    training, holdout, fit_options, _ = script.read_training_data(
        script.parse_arguments(), ["label", "timestamp"]
    )
    assert holdout["timestamp"].tolist() == frame["timestamp"].iloc[80_000:].tolist()
    segments = fit_options["detector__segments"]
    assert (
        len(segments) > 1
        and sum(segments) == len(training)
        and training["timestamp"].max() < holdout["timestamp"].min()
    )
    script.main()
    [run] = client.search_runs([client.get_experiment_by_name("project").experiment_id])
    assert run.data.params["input_rows"] == str(n_rows)
    assert run.data.metrics["validation_roc_auc"] > 0.9


@pytest.mark.parametrize("entry", ["train", "score", "evaluate"])
def test_each_entry_point_leaves_its_objects_to_the_system_at_exit(entry):
    # A handler registered before the script's runs after its gc.freeze (last in, first out).
    script = (
        "import atexit, gc, runpy, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        f"sys.path.insert(0, '.'); sys.argv = ['{entry}.py', '--help']\n"
        f"runpy.run_path('{entry}.py', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY / "mlflow_project", capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and done.stdout.strip().splitlines()[-1] == "frozen True"
