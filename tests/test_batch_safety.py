"""The batch scorer and its CLI never run untrusted code, never touch their input, and fail in one line."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.preprocessing import StandardScaler

from vae_anomaly import VAEAnomalyDetector, tracking
from vae_anomaly.batch.files import locked_output
from vae_anomaly.cli import main

COLUMNS = ["a", "b", "c"]


class _Payload:
    """Unpickling this writes a marker file: the code of a pickle runs when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code from the pickle ran"))


class _AnyPythonModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _frame(n_rows: int, seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(n_rows, 3)), columns=COLUMNS)


@pytest.fixture(scope="module")
def detector() -> VAEAnomalyDetector:
    return VAEAnomalyDetector(epochs=2, random_state=0).fit(_frame(500))


@pytest.fixture(scope="module")
def model_folder(detector, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "detector"
    detector.save(folder)
    return folder


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for part in range(2):
        _frame(300, seed=part + 1).to_parquet(folder / f"part{part}.parquet")
    return folder


def _cli(*arguments: object, check_exit: int | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "vae_anomaly.cli", "score", *map(str, arguments), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check_exit is not None:
        assert done.returncode == check_exit, done.stdout + done.stderr
    return done


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-anomaly score: error:"), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------------- untrusted code
def _logged_model_folder(detector, tmp_path: Path) -> Path:
    """A real model logged by tracking.log_model, downloaded from a sqlite store in tmp_path (its
    artifacts beside it)."""
    tracking.use_tracking_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run():
            info = tracking.log_model(detector, "model", input_example=_frame(5))
        return Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "logged")))
    finally:
        mlflow.set_tracking_uri(None)


def test_a_pickled_mlflow_model_does_not_run_without_trust(data, tmp_path):
    folder = tmp_path / "pickled_model"
    mlflow.pyfunc.save_model(str(folder), python_model=_AnyPythonModel(), pip_requirements=[])
    marker = tmp_path / "marker.txt"
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    done = _cli(folder, data, tmp_path / "out", check_exit=2)
    _one_line_error(done, "not a model logged by vae_anomaly.tracking.log_model", "--trust-pickle")
    assert not marker.exists(), "code from the pickle ran"
    assert not (tmp_path / "out").exists()


def test_a_logged_model_loads_from_its_bundle_and_ignores_a_planted_pickle(detector, data, tmp_path):
    folder = _logged_model_folder(detector, tmp_path)
    marker = tmp_path / "marker.txt"
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    _cli(folder, data, tmp_path / "out", check_exit=0)
    assert not marker.exists(), "code from the pickle ran"
    scored = pd.read_parquet(tmp_path / "out" / "part0.parquet")
    np.testing.assert_allclose(
        scored["anomaly_score"], detector.anomaly_score(pd.read_parquet(data / "part0.parquet")), rtol=1e-6
    )


def test_a_logged_model_rewired_to_a_pickle_is_refused(detector, data, tmp_path):
    folder = _logged_model_folder(detector, tmp_path)
    marker = tmp_path / "marker.txt"
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    description = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = description["flavors"]["python_function"]
    flavor["loader_module"] = "mlflow.pyfunc.model"
    flavor["python_model"] = "python_model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(description))
    _one_line_error(_cli(folder, data, tmp_path / "out", check_exit=2), "--trust-pickle")
    assert not marker.exists(), "code from the pickle ran"


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("", "AttributeError"),
        ("flavors: [unclosed\n  : x", "ParserError"),
        ("flavors: x\n", "its flavors are str"),
        ("flavors: !!python/object:os.system {}\n", "ConstructorError"),
    ],
    ids=["empty", "invalid_yaml", "flavors_not_a_mapping", "python_tag"],
)
def test_a_malformed_mlmodel_file_is_one_line_error(data, tmp_path, content, kind, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text(content)
    assert main(["score", str(tmp_path / "model"), str(data), str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "MLmodel is not a valid MLmodel file" in lines[0] and kind in lines[0], lines


def test_a_trusted_pickle_that_is_not_a_detector_is_named(data, tmp_path, capsys):
    joblib.dump(StandardScaler().fit(_frame(10)), tmp_path / "scaler.joblib")
    arguments = ["score", str(tmp_path / "scaler.joblib"), str(data), str(tmp_path / "out"), "--trust-pickle"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "does not hold a vae-anomaly model" in error and "got StandardScaler" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("device", "code"), [("cpu", 0), ("tpu", 2)])
def test_the_scoring_device_can_be_chosen(model_folder, data, tmp_path, capsys, device, code):
    assert main(["score", str(model_folder), str(data), str(tmp_path / "out"), "--device", device]) == code
    if code:
        assert "device='tpu' is not a device torch knows" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- the input
def test_the_input_folder_as_output_is_refused_and_left_as_it_was(model_folder, data):
    before = _snapshot(data)
    done = _cli(model_folder, data, data, check_exit=2)
    _one_line_error(done, "holds the input file", "write the scores to a folder outside the input")
    assert _snapshot(data) == before


@pytest.mark.parametrize(
    ("make_input", "make_output", "message"),
    [
        (lambda d: d, lambda d: d / "scores", "is inside the INPUT folder"),
        (lambda d: d / "part0.parquet", lambda d: d, "holds the input file"),
        (lambda d: d.parent, lambda d: d, "holds the input file"),
        (lambda d: f"{d}/**/*.parquet", lambda d: d / "scores", "which the INPUT pattern"),
        (lambda d: f"{d}/*.parquet", lambda d: d, "holds the input file"),
    ],
    ids=["output_in_input", "file_in_output", "input_contains_output", "recursive_glob", "glob_folder"],
)
def test_an_output_that_overlaps_the_input_is_refused_before_any_work(
    model_folder, data, make_input, make_output, message, capsys
):
    before = _snapshot(data.parent)
    assert main(["score", str(model_folder), str(make_input(data)), str(make_output(data))]) == 2
    assert message in capsys.readouterr().err
    assert _snapshot(data.parent) == before


def test_an_output_beside_a_single_input_file_is_fine(model_folder, data, capsys):
    assert main(["score", str(model_folder), str(data / "part0.parquet"), str(data.parent / "scores")]) == 0
    assert (data.parent / "scores" / "part0.parquet").is_file()


def test_an_output_that_is_a_file_is_one_line_error(model_folder, data, tmp_path):
    (tmp_path / "scores.parquet").write_bytes(b"someone's file")
    done = _cli(model_folder, data, tmp_path / "scores.parquet", check_exit=2)
    _one_line_error(done, "is a file; scores are written into a folder")
    assert (tmp_path / "scores.parquet").read_bytes() == b"someone's file"


# ------------------------------------------------------------------------ links and names
def test_a_link_planted_at_the_partial_name_is_never_written_through(model_folder, data, tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's own file")
    (tmp_path / "out").mkdir()
    for name in (".part0.parquet.partial", ".part0.parquet.0123456789ab.partial"):
        (tmp_path / "out" / name).symlink_to(precious)
    assert main(["score", str(model_folder), str(data), str(tmp_path / "out")]) == 0
    assert precious.read_text() == "the user's own file"
    output = tmp_path / "out" / "part0.parquet"
    assert output.is_file() and not output.is_symlink()
    assert len(pd.read_parquet(output)) == 300


@pytest.mark.parametrize("where", ["part0.parquet", "day2"])
def test_a_link_where_an_output_goes_is_refused_by_name(model_folder, data, tmp_path, where, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "part0.parquet").write_text("the user's own file")
    _frame(10).to_parquet(data / "day2.parquet")  # a file beside the folder day2
    (data / "day2").mkdir()
    _frame(10).to_parquet(data / "day2" / "part0.parquet")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / where
    link.symlink_to(precious / where if where.endswith(".parquet") else precious)
    assert main(["score", str(model_folder), str(data), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{link} is a symbolic link" in error and "never writes through a link" in error
    assert (precious / "part0.parquet").read_text() == "the user's own file"
    assert sorted(p.name for p in precious.iterdir()) == ["part0.parquet"]


def test_a_rerun_clears_only_what_a_killed_job_left(model_folder, data, tmp_path, capsys):
    out = tmp_path / "out"
    left = {name: out / name for name in (".part0.parquet.k1ll3d_1.partial", ".part0.parquet.other.partial")}
    for folder in left.values():
        folder.mkdir(parents=True)
        (folder / "output.partial").write_bytes(b"a killed job's rows")
    (left[".part0.parquet.other.partial"] / "notes.txt").write_text("not ours")
    unrelated = out / ".elsewhere.parquet.abc.partial"
    unrelated.mkdir()
    assert main(["score", str(model_folder), str(data), str(out)]) == 0
    assert not left[".part0.parquet.k1ll3d_1.partial"].exists()
    assert (left[".part0.parquet.other.partial"] / "notes.txt").read_text() == "not ours"
    assert unrelated.is_dir()
    assert len(pd.read_parquet(out / "part0.parquet")) == 300


def test_two_inputs_that_would_share_an_output_are_refused_naming_both(model_folder, data, tmp_path, capsys):
    _frame(50).to_parquet(data / "part0.pq")
    assert main(["score", str(model_folder), str(data), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert str(data / "part0.parquet") in error and str(data / "part0.pq") in error
    assert "would both be scored into" in error
    assert not (tmp_path / "out").exists()


def test_a_linked_input_folder_is_scored_and_a_loop_is_refused(model_folder, data, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere" / "day2"
    elsewhere.mkdir(parents=True)
    _frame(70).to_parquet(elsewhere / "x.parquet")
    (data / "day2").symlink_to(elsewhere)
    assert main(["score", str(model_folder), str(data), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("3 files (3 scored")
    assert len(pd.read_parquet(tmp_path / "out" / "day2" / "x.parquet")) == 70
    (elsewhere / "back").symlink_to(data)
    assert main(["score", str(model_folder), str(data), str(tmp_path / "out2")]) == 2
    error = capsys.readouterr().err
    assert f"INPUT folder {data / 'day2' / 'back'} is the folder {data} again" in error


# ------------------------------------------------------------------------ two jobs at once
def test_a_second_job_on_a_busy_output_says_so(model_folder, data, tmp_path):
    with locked_output(tmp_path / "out"):
        done = _cli(model_folder, data, tmp_path / "out", check_exit=2)
    _one_line_error(done, "Another vae-anomaly scoring job is writing into")
    _cli(model_folder, data, tmp_path / "out", check_exit=0)  # free again once the first job is done


@pytest.mark.slow  # two concurrent scoring processes over 20 files, 8 s; the lock itself is tested above
def test_two_jobs_on_one_output_report_no_false_failures(model_folder, tmp_path):
    for part in range(20):
        _frame(5000, seed=part).to_parquet(tmp_path / f"in_{part:02d}.parquet")
    inputs = f"{tmp_path}/in_*.parquet"
    command = [sys.executable, "-m", "vae_anomaly.cli", "score", str(model_folder), inputs]
    jobs = [
        subprocess.Popen([*command, str(tmp_path / "out"), "--batch-rows", "500", "--no-progress"], **pipes)
        for pipes in [dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)] * 2
    ]
    outcomes = [(job.wait(timeout=300), *job.communicate()) for job in jobs]
    assert {code for code, _, _ in outcomes} <= {0, 2}, outcomes
    assert any(code == 0 for code, _, _ in outcomes), outcomes
    for code, out, err in outcomes:
        assert "No such file" not in out + err and "failed: " not in out, (out, err)
        if code == 2:
            assert "Another vae-anomaly scoring job is writing into" in err
    rerun = _cli(model_folder, inputs, tmp_path / "out", check_exit=0)
    assert "20 files (0 scored, 20 already complete, 0 failed)" in rerun.stdout
    assert not [p for p in (tmp_path / "out").rglob(".*")], "no partial files are left behind"


# ---------------------------------------------------------------------- unrepresentable values
def test_a_value_beyond_float32_in_a_file_is_flagged_not_nan(model_folder, tmp_path):
    frame = _frame(100)
    frame.loc[7, "b"] = 1e39
    frame.to_parquet(tmp_path / "in.parquet")
    _cli(model_folder, tmp_path / "in.parquet", tmp_path / "out", check_exit=0)
    scored = pd.read_parquet(tmp_path / "out" / "in.parquet")
    assert scored.loc[7, "anomaly_score"] == np.inf and scored.loc[7, "is_anomaly"]
    assert not scored["anomaly_score"].isna().any()


def test_a_trusted_pickle_that_fails_to_load_is_one_line_error(data, tmp_path, capsys):
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x04not a pickle")
    arguments = ["score", str(tmp_path / "broken.pkl"), str(data), str(tmp_path / "out"), "--trust-pickle"]
    assert main(arguments) == 2
    assert "Cannot unpickle" in capsys.readouterr().err
