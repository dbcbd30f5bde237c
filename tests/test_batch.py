"""Batch scoring of parquet: exactly once, in order, resumable, with every input problem named."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.batch import SchemaError, score_parquet
from vae_anomaly.bundle import save_bundle
from vae_anomaly.cli import main
from vae_anomaly.frames import score_frame
from vae_anomaly.pipelines import tabular_pipeline

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE_DATA / "tabular.parquet").drop(columns="is_anomaly")


@pytest.fixture(scope="module")
def pipeline(features):
    return tabular_pipeline(epochs=5, random_state=0).fit(features)


@pytest.fixture(scope="module")
def model_folder(pipeline, tmp_path_factory) -> Path:
    return save_bundle(pipeline, tmp_path_factory.mktemp("model") / "bundle")


def write_parts(frame: pd.DataFrame, folder: Path, n_parts: int) -> list[Path]:
    """Split ``frame`` into hive-partitioned files part=0/, part=1/, ... in row order."""
    paths = []
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), n_parts)):
        path = folder / f"part={part}" / "data.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.iloc[rows].to_parquet(path)
        paths.append(path)
    return paths


def read_output(folder: Path) -> pd.DataFrame:
    files = sorted(folder.rglob("*.parquet"))
    return pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)


def test_output_has_every_row_once_in_order_with_the_scores(pipeline, model_folder, features, tmp_path):
    write_parts(features, tmp_path / "in", 3)
    summary = score_parquet(model_folder, tmp_path / "in", tmp_path / "out", batch_rows=333)
    assert (summary.files, summary.scored_files, summary.rows, summary.failed) == (3, 3, len(features), {})
    output = read_output(tmp_path / "out")
    expected = score_frame(pipeline, features)
    pd.testing.assert_frame_equal(output[features.columns], features.reset_index(drop=True))
    # float32 matrix products may round the last bit differently for another batch size.
    np.testing.assert_allclose(output["anomaly_score"], expected["anomaly_score"], rtol=1e-6)
    np.testing.assert_array_equal(output["is_anomaly"], expected["is_anomaly"])
    assert summary.anomalies == int(expected["is_anomaly"].sum())
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "part=0/data.parquet",
        "part=1/data.parquet",
        "part=2/data.parquet",
    ]


def test_a_rerun_skips_complete_outputs_and_redoes_changed_inputs(model_folder, features, tmp_path):
    paths = write_parts(features, tmp_path / "in", 2)
    score_parquet(model_folder, tmp_path / "in", tmp_path / "out")
    again = score_parquet(model_folder, tmp_path / "in", tmp_path / "out")
    assert (again.skipped_files, again.scored_files, again.rows) == (2, 0, 0)
    features.head(10).to_parquet(paths[1])  # the input changed since it was scored
    changed = score_parquet(model_folder, tmp_path / "in", tmp_path / "out")
    assert (changed.skipped_files, changed.scored_files, changed.rows) == (1, 1, 10)
    assert len(read_output(tmp_path / "out")) == 2000 + 10


def test_a_killed_job_resumes_to_exactly_the_uninterrupted_output(model_folder, features, tmp_path):
    big = pd.concat([features] * 50, ignore_index=True)  # 200,000 rows in 40 files
    write_parts(big, tmp_path / "in", 40)
    score_parquet(model_folder, tmp_path / "in", tmp_path / "reference", batch_rows=1000)
    command = [sys.executable, "-m", "vae_anomaly.cli", "score", str(model_folder), str(tmp_path / "in")]
    job = subprocess.Popen([*command, str(tmp_path / "out"), "--batch-rows", "1000", "--no-progress"])
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").rglob("data.parquet")) and time.monotonic() < deadline:
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done_before = len(list((tmp_path / "out").rglob("data.parquet")))
    assert 1 <= done_before < 40, "the job should have been killed part-way"
    resumed = score_parquet(model_folder, tmp_path / "in", tmp_path / "out", batch_rows=1000)
    assert resumed.skipped_files == done_before
    assert resumed.scored_files == 40 - done_before
    pd.testing.assert_frame_equal(read_output(tmp_path / "out"), read_output(tmp_path / "reference"))
    assert not [p for p in (tmp_path / "out").rglob(".*")], "no partial files are left behind"


def test_schema_problems_are_all_listed_before_any_work(planted_frame, tmp_path):
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(planted_frame)
    (tmp_path / "in").mkdir()
    planted_frame.drop(columns=["f1", "f2"]).to_parquet(tmp_path / "in" / "a.parquet")
    planted_frame.assign(f3=planted_frame["f3"].astype(str)).to_parquet(tmp_path / "in" / "b.parquet")
    planted_frame.assign(f4=planted_frame["f4"].where(planted_frame.index > 2)).to_parquet(
        tmp_path / "in" / "c.parquet"
    )
    with pytest.raises(SchemaError) as raised:
        score_parquet(detector, tmp_path / "in", tmp_path / "out")
    message = str(raised.value)
    assert "(4 problems)" in message
    assert "a.parquet: missing column 'f1'" in message and "a.parquet: missing column 'f2'" in message
    assert "b.parquet: column 'f3' holds string values" in message
    assert "c.parquet: column 'f4' has 3 null(s), which the model cannot take" in message
    assert not (tmp_path / "out").exists()


def test_a_corrupt_file_is_reported_and_the_others_finish(model_folder, features, tmp_path):
    write_parts(features, tmp_path / "in", 2)
    (tmp_path / "in" / "part=1" / "broken.parquet").write_bytes(b"PAR1 not really")
    summary = score_parquet(model_folder, tmp_path / "in", tmp_path / "out")
    assert summary.scored_files == 2
    assert list(summary.failed) == [str(tmp_path / "in" / "part=1" / "broken.parquet")]
    assert len(read_output(tmp_path / "out")) == len(features)


def test_keep_columns_and_a_clash_with_the_score_columns(model_folder, features, tmp_path):
    labelled = features.assign(is_anomaly=0)
    labelled.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(SchemaError, match=r"already has column\(s\) \['is_anomaly'\]") as raised:
        score_parquet(model_folder, tmp_path / "in.parquet", tmp_path / "out")
    assert "--drop-columns is_anomaly" in str(raised.value)
    score_parquet(model_folder, tmp_path / "in.parquet", tmp_path / "out", keep_columns=["region"])
    assert list(pd.read_parquet(tmp_path / "out" / "in.parquet").columns) == [
        "region",
        "anomaly_score",
        "is_anomaly",
    ]


def test_a_pickled_model_loads_only_when_trusted(pipeline, features, tmp_path):
    joblib.dump(pipeline, tmp_path / "model.joblib")
    features.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(ValueError, match="unpickling runs code"):
        score_parquet(tmp_path / "model.joblib", tmp_path / "in.parquet", tmp_path / "out")
    summary = score_parquet(
        tmp_path / "model.joblib", tmp_path / "in.parquet", tmp_path / "out", trust_pickle=True
    )
    assert summary.rows == len(features)


def test_an_mlflow_registry_uri_scores_like_the_model(pipeline, features, tmp_path, register_champion):
    uri = register_champion(pipeline, "batch-model", features.head(5))
    features.to_parquet(tmp_path / "in.parquet")
    score_parquet(uri, tmp_path / "in.parquet", tmp_path / "out")
    output = pd.read_parquet(tmp_path / "out" / "in.parquet")
    expected = score_frame(pipeline, features)
    # A small input: scored with numpy from the Pipeline's saved plan, to float32's precision.
    np.testing.assert_allclose(output["anomaly_score"], expected["anomaly_score"], rtol=1e-6)
    np.testing.assert_array_equal(output["is_anomaly"], expected["is_anomaly"])


def test_a_time_series_file_is_scored_whole(tmp_path):
    series = pd.read_parquet(SAMPLE_DATA / "timeseries_univariate.parquet").drop(columns="label")
    detector = TimeSeriesVAEDetector(window=32, epochs=2, time_column="timestamp", random_state=0).fit(series)
    series.to_parquet(tmp_path / "series.parquet")
    score_parquet(detector, tmp_path / "series.parquet", tmp_path / "out", batch_rows=100)
    output = pd.read_parquet(tmp_path / "out" / "series.parquet")
    np.testing.assert_array_equal(output["anomaly_score"], detector.anomaly_score(series))


def test_cli_prints_a_summary_and_exit_codes_say_what_failed(model_folder, features, tmp_path, capsys):
    write_parts(features, tmp_path / "in", 2)
    assert (
        main(["score", str(model_folder), str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress"]) == 0
    )
    assert "2 files (2 scored, 0 already complete, 0 failed), 4000 rows" in capsys.readouterr().out
    (tmp_path / "in" / "part=0" / "zz.parquet").write_bytes(b"junk")
    assert main(["score", str(model_folder), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    assert "failed: " in capsys.readouterr().out
    assert main(["score", str(tmp_path / "nowhere"), str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert "is not a model" in capsys.readouterr().err


def test_a_glob_selects_files_and_an_empty_file_gets_an_empty_output(model_folder, features, tmp_path):
    write_parts(features, tmp_path / "in", 2)
    features.head(0).to_parquet(tmp_path / "in" / "part=1" / "empty.parquet")
    (tmp_path / "in" / "notes.txt").write_text("not parquet, not matched")
    summary = score_parquet(model_folder, str(tmp_path / "in" / "part=*" / "*.parquet"), tmp_path / "out")
    assert (summary.files, summary.scored_files, summary.failed) == (3, 3, {})
    empty = pd.read_parquet(tmp_path / "out" / "part=1" / "empty.parquet")
    assert list(empty.columns) == [*features.columns, "anomaly_score", "is_anomaly"] and empty.empty
    assert len(read_output(tmp_path / "out")) == len(features)


def test_drop_columns_leaves_out_a_label_named_like_an_output_column(model_folder, features, tmp_path):
    features.assign(is_anomaly=1).to_parquet(tmp_path / "in.parquet")
    arguments = ["score", str(model_folder), str(tmp_path / "in.parquet"), str(tmp_path / "out")]
    assert main([*arguments, "--drop-columns", "is_anomaly"]) == 0
    output = pd.read_parquet(tmp_path / "out" / "in.parquet")
    assert list(output.columns) == [*features.columns, "anomaly_score", "is_anomaly"]
    assert output["is_anomaly"].dtype == bool


def test_drop_columns_are_checked(model_folder, features, tmp_path, capsys):
    features.to_parquet(tmp_path / "in.parquet")
    arguments = ["score", str(model_folder), str(tmp_path / "in.parquet"), str(tmp_path / "out")]
    assert main([*arguments, "--drop-columns", "is_anomly"]) == 2
    assert "names ['is_anomly'], which no input file has" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*arguments, "--drop-columns", "a", "--keep-columns", "b"])


@pytest.fixture(scope="module")
def numeric_detector_folder(tmp_path_factory) -> tuple[VAEAnomalyDetector, Path]:
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 3)), columns=["a", "b", "c"])
    detector = VAEAnomalyDetector(missing="skip", epochs=2, random_state=0).fit(frame)
    folder = tmp_path_factory.mktemp("numeric") / "detector"
    detector.save(folder)
    return detector, folder


def test_decimal_columns_with_nulls_are_scored_as_numbers(numeric_detector_folder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    detector, folder = numeric_detector_folder
    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(40, 3)), columns=["a", "b", "c"]).round(3)
    frame.loc[[4, 9], "b"] = np.nan
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(1, "b", table.column("b").cast(pa.decimal128(9, 3)))
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "x.parquet")
    assert main(["score", str(folder), str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    scored = pd.read_parquet(tmp_path / "out" / "x.parquet")
    # A small input: the numpy scorer's scores, within float32's precision of the detector's.
    np.testing.assert_allclose(scored["anomaly_score"], detector.anomaly_score(frame), rtol=1e-6)


def test_a_boolean_column_is_scored_as_the_detector_reads_it(tmp_path):
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(300, 2)), columns=["a", "b"])
    frame["on"] = frame["a"] > 0
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(frame)
    frame.to_parquet(tmp_path / "x.parquet")
    score_parquet(detector, tmp_path / "x.parquet", tmp_path / "out")
    scored = pd.read_parquet(tmp_path / "out" / "x.parquet")
    np.testing.assert_array_equal(scored["anomaly_score"], detector.anomaly_score(frame))


def test_a_partition_key_that_is_a_numeric_feature_takes_its_number(
    numeric_detector_folder, tmp_path, capsys
):
    detector, folder = numeric_detector_folder
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(30, 3)), columns=["a", "b", "c"])
    for value in ("1", "2.5"):
        (tmp_path / "in" / f"a={value}").mkdir(parents=True)
        frame[["b", "c"]].to_parquet(tmp_path / "in" / f"a={value}" / "x.parquet")
    assert main(["score", str(folder), str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    scored = pd.read_parquet(tmp_path / "out" / "a=2.5" / "x.parquet")
    expected = detector.anomaly_score(frame.assign(a=2.5))
    np.testing.assert_allclose(scored["anomaly_score"], expected, rtol=1e-6)  # numpy-scored
    (tmp_path / "in" / "a=high").mkdir()
    frame[["b", "c"]].to_parquet(tmp_path / "in" / "a=high" / "x.parquet")
    assert main(["score", str(folder), str(tmp_path / "in"), str(tmp_path / "out2")]) == 2
    assert "partition key a='high' (from its folder name) is a numeric feature" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_a_single_schema_problem_is_counted_in_the_singular(planted_frame, tmp_path):
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(planted_frame)
    (tmp_path / "in").mkdir()
    planted_frame.drop(columns=["f1"]).to_parquet(tmp_path / "in" / "a.parquet")
    with pytest.raises(SchemaError, match=r"\(1 problem\):\n.*a.parquet: missing column 'f1'"):
        score_parquet(detector, tmp_path / "in", tmp_path / "out")
