"""Training from parquet of any size: exact statistics, a seeded uniform sample, the same detector."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import make_column_transformer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from vae_anomaly import (
    ColumnStatistics,
    TimeSeriesVAEDetector,
    VAEAnomalyDetector,
    fit_parquet,
    fit_sample,
    sample_parquet,
)
from vae_anomaly.batch import SchemaError
from vae_anomaly.cli import main
from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline
from vae_anomaly.row_sample import RowSample


def correlated_rows(n_rows: int, seed: int, anomalies: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows on a 2-D manifold in 6-D (mean 10, so the scaling matters), with planted anomalies."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(0).normal(size=(2, 6))
    values = 10 + rng.normal(size=(n_rows, 2)) @ mixing + 0.05 * rng.normal(size=(n_rows, 6))
    planted = rng.random(n_rows) < anomalies
    values[planted] += rng.choice([-3.0, 3.0], size=(planted.sum(), 6))
    return pd.DataFrame(values, columns=[f"c{i}" for i in range(6)]), planted


def write_days(frame: pd.DataFrame, folder, n_days: int = 3) -> None:
    """``frame`` in row order as hive partitions day=0/, day=1/, ..., row groups of 500 rows."""
    for day, rows in enumerate(np.array_split(np.arange(len(frame)), n_days)):
        (folder / f"day={day}").mkdir(parents=True)
        table = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False)
        pq.write_table(table, folder / f"day={day}" / "part.parquet", row_group_size=500)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    frame, _ = correlated_rows(6000, seed=1)
    frame.loc[[10, 4000], "c2"] = np.nan  # two missing values
    folder = tmp_path_factory.mktemp("lake")
    write_days(frame, folder)
    return folder, frame


def test_statistics_are_those_of_every_row_and_the_sample_is_the_same_for_any_batch_size(lake):
    folder, frame = lake
    sample = sample_parquet(folder, max_rows=700, random_state=3, batch_rows=333, progress=False)
    values = frame.to_numpy()
    statistics = sample.statistics
    assert sample.n_rows == 6000 and statistics.names == tuple(frame.columns)
    assert statistics.nulls.tolist() == [0, 0, 2, 0, 0, 0]
    np.testing.assert_allclose(statistics.mean, np.nanmean(values, axis=0), rtol=1e-13)
    np.testing.assert_allclose(statistics.variance, np.nanvar(values, axis=0), rtol=1e-10)
    np.testing.assert_array_equal(statistics.minimum, np.nanmin(values, axis=0))
    np.testing.assert_array_equal(statistics.maximum, np.nanmax(values, axis=0))
    # 700 distinct rows of the data, in its order; another batch size draws the very same rows.
    assert len(sample.frame) == 700
    positions = frame.reset_index().merge(sample.frame.dropna(), on=list(frame.columns))["index"]
    assert positions.is_monotonic_increasing and positions.is_unique
    again = sample_parquet(folder, max_rows=700, random_state=3, batch_rows=4096, progress=False)
    pd.testing.assert_frame_equal(again.frame, sample.frame)
    other = sample_parquet(folder, max_rows=700, random_state=4, progress=False)
    assert not other.frame.equals(sample.frame)


def test_the_sample_is_uniform_over_rows_and_files(tmp_path):
    frame = pd.DataFrame({"position": np.arange(20_000, dtype=float)})
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[rows].to_parquet(tmp_path / f"part-{part}.parquet")
    counts = np.zeros(10)
    for seed in range(5):
        sample = sample_parquet(tmp_path, max_rows=1000, random_state=seed, batch_rows=777, progress=False)
        counts += np.histogram(sample.frame["position"], bins=10, range=(0, 20_000))[0]
    assert counts.sum() == 5000 and counts.min() > 430 and counts.max() < 570  # 500 expected in each


def test_the_sample_takes_only_its_drawn_rows_however_the_stream_is_cut():
    table = pa.table({"position": np.arange(10_000)})
    samples = []
    for cuts in ([0, 10_000], [0, 1, 2, 5000, 5001, 9999, 10_000], [*range(0, 10_001, 137), 10_000]):
        sample = RowSample(10_000, 300, np.random.default_rng(7))
        for start, stop in itertools.pairwise(cuts):
            sample.add(table.slice(start, stop - start))
        rows, positions = sample.sample()
        np.testing.assert_array_equal(rows["position"].to_numpy(), positions)
        samples.append(positions)
    assert len(np.unique(samples[0])) == 300 and (np.diff(samples[0]) > 0).all()
    for other in samples[1:]:
        np.testing.assert_array_equal(other, samples[0])


def test_a_stream_shorter_or_longer_than_its_footers_said_is_refused():
    for n_read in (999, 1001):
        sample = RowSample(1000, 100, np.random.default_rng(0))
        sample.add(pa.table({"x": np.zeros(n_read)}))
        with pytest.raises(ValueError, match=rf"footers counted 1,000 rows, but {n_read:,} were read"):
            sample.sample()


def test_a_table_smaller_than_the_sample_is_read_as_it_is(lake):
    folder, frame = lake
    sample = sample_parquet(folder, random_state=0, progress=False)
    pd.testing.assert_frame_equal(sample.frame, frame.reset_index(drop=True))
    with_day = sample_parquet(folder, columns=["day", "c0"], progress=False)  # a partition key by name
    assert with_day.frame["day"].tolist() == [0] * 2000 + [1] * 2000 + [2] * 2000


def test_fit_parquet_is_an_in_memory_fit_scaled_by_every_row(lake, tmp_path):
    folder, frame = lake
    detector = VAEAnomalyDetector(missing="skip", epochs=5, random_state=0)
    fitted = fit_parquet(detector, folder, max_rows=2000, progress=False)
    sample = sample_parquet(folder, max_rows=2000, random_state=0, progress=False)
    np.testing.assert_allclose(fitted.mean_, np.nanmean(frame.to_numpy(), axis=0), rtol=1e-13)
    np.testing.assert_allclose(fitted.scale_, np.nanstd(frame.to_numpy(), axis=0), rtol=1e-10)
    same = VAEAnomalyDetector(missing="skip", epochs=5, random_state=0)
    same.fit(sample.frame, feature_statistics=sample.statistics)
    np.testing.assert_array_equal(fitted.score_samples(frame), same.score_samples(frame))
    fitted.save(tmp_path / "model")
    loaded = VAEAnomalyDetector.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score_samples(frame), fitted.score_samples(frame))


def test_a_detector_fitted_from_parquet_finds_planted_anomalies_and_rarely_flags_clean_rows(tmp_path):
    train, _ = correlated_rows(20_000, seed=2, anomalies=0.01)
    write_days(train, tmp_path / "train", n_days=4)
    detector = fit_parquet(VAEAnomalyDetector(random_state=0), tmp_path / "train", max_rows=5000)
    test, planted = correlated_rows(4000, seed=3, anomalies=0.05)
    assert roc_auc_score(planted, -detector.score_samples(test)) > 0.95
    clean, _ = correlated_rows(4000, seed=4)
    assert (detector.predict(clean) == -1).mean() < 0.03


def test_statistics_must_name_the_features_fitted():
    frame, _ = correlated_rows(300, seed=0)
    statistics = ColumnStatistics.of(frame.to_numpy()[:, ::-1], list(frame.columns[::-1]))
    with pytest.raises(ValueError, match=r"feature_statistics describe the columns \['c5'"):
        VAEAnomalyDetector(epochs=1).fit(frame, feature_statistics=statistics)


def test_a_pipeline_sees_every_level_of_a_categorical_column(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"load": rng.normal(size=3000), "region": rng.choice(["eu", "us"], 3000)})
    frame.loc[2500, "region"] = "antarctica"  # once in 3,000 rows: rarely in a sample of 300
    frame.to_parquet(tmp_path / "data.parquet")
    sample = sample_parquet(tmp_path / "data.parquet", max_rows=300, random_state=0, progress=False)
    assert sample.levels == {"region": ["us", "eu", "antarctica"]}
    assert len(sample.frame) == 301 and sample.frame["region"].eq("antarctica").sum() == 1
    model = fit_sample(tabular_pipeline(epochs=2, random_state=0), sample)
    encoder = model[0].named_transformers_["categorical"][-1]
    assert sorted(encoder.categories_[0]) == ["antarctica", "eu", "us"]


def test_a_sample_of_rows_is_refused_for_a_time_series_detector(lake):
    sample = sample_parquet(lake[0], max_rows=300, random_state=0, progress=False)
    with pytest.raises(ValueError, match="TimeSeriesVAEDetector needs its series whole and in order"):
        fit_sample(timeseries_pipeline(), sample)


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (VAEAnomalyDetector(latent_dim=0), "The 'latent_dim' parameter of VAEAnomalyDetector"),
        (VAEAnomalyDetector(scoring_device="tpu:9"), "tpu"),
        (tabular_pipeline(learning_rate=-1.0), "The 'learning_rate' parameter"),
        (TimeSeriesVAEDetector(stride=0), "The 'stride' parameter of TimeSeriesVAEDetector"),
    ],
    ids=["parameter", "device", "pipeline step", "series"],
)
def test_a_bad_parameter_fails_before_the_data_is_read(tmp_path, estimator, message):
    # The source does not exist: the parameter check comes first, so the error is about the parameter.
    with pytest.raises(ValueError, match=message):
        fit_parquet(estimator, tmp_path / "not-there", progress=False)


def test_metadata_problems_are_all_named_before_any_row_is_read(tmp_path):
    frame, _ = correlated_rows(100, seed=0)
    frame.to_parquet(tmp_path / "a.parquet")
    frame.assign(c3=np.nan).to_parquet(tmp_path / "b.parquet")  # pandas writes NaN as null
    frame.drop(columns="c4").to_parquet(tmp_path / "c.parquet")
    frame.assign(c5="text").to_parquet(tmp_path / "d.parquet")
    (tmp_path / "e.parquet").write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match=r"e\.parquet: unreadable parquet"):
        fit_parquet(VAEAnomalyDetector(), tmp_path)
    (tmp_path / "e.parquet").unlink()
    with pytest.raises(SchemaError) as error:
        fit_parquet(VAEAnomalyDetector(), tmp_path)
    message = str(error.value)
    assert "b.parquet: column 'c3' has 100 null(s)" in message
    assert "c.parquet: missing column 'c4'" in message
    assert "d.parquet: column 'c5' holds string values" in message
    with pytest.raises(ValueError, match=r"no column\(s\) \['nope'\]"):
        sample_parquet(tmp_path / "a.parquet", columns=["nope"])


def test_a_bad_value_is_named_by_file_column_and_row(tmp_path):
    frame, _ = correlated_rows(3000, seed=0)
    frame.loc[2100, "c1"] = np.inf
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "data.parquet", row_group_size=1000)
    with pytest.raises(
        ValueError, match=r"data\.parquet: .*column 'c1': inf in 1 row\(s\), first at row 2100"
    ):
        sample_parquet(tmp_path / "data.parquet", batch_rows=1000, progress=False)
    frame.loc[2100, "c1"] = np.nan  # a NaN value, not a null: refused where missing values are
    columns = {name: pa.array(frame[name].to_numpy(), from_pandas=False) for name in frame.columns}
    pq.write_table(pa.table(columns), tmp_path / "data.parquet")
    with pytest.raises(ValueError, match=r"column 'c1': NaN in 1 row\(s\), first at row 2100"):
        fit_parquet(VAEAnomalyDetector(), tmp_path / "data.parquet", batch_rows=512)
    frame.loc[2100, "c1"] = 1e39  # beyond float32, which the VAE trains in
    frame.to_parquet(tmp_path / "data.parquet")
    with pytest.raises(
        ValueError, match=r"column 'c1': \|value\| > 3.4e\+38 in 1 row\(s\), first at row 2100"
    ):
        sample_parquet(tmp_path / "data.parquet", batch_rows=512, progress=False)
    pq.write_table(pa.table({"c0": pa.array([], pa.float64())}), tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="holds no rows"):
        sample_parquet(tmp_path / "empty.parquet")


def test_fit_parquet_refuses_a_label_column_for_a_bare_detector_before_the_pass(tmp_path):
    frame, planted = correlated_rows(3000, seed=0, anomalies=0.02)
    # An earlier run's scores, as a ColumnTransformer would have named them, are refused as fit would.
    frame = frame.assign(is_anomaly=planted, old__anomaly_score=0.0)
    frame.loc[2100, "c1"] = np.inf  # the pass would refuse this row; the column names are refused first
    frame.to_parquet(tmp_path / "labelled.parquet")
    with pytest.raises(
        ValueError,
        match=r"\['is_anomaly', 'old__anomaly_score'\] are named as the scores.*"
        r"drop_columns=\['is_anomaly', 'old__anomaly_score'\]",
    ):
        fit_parquet(VAEAnomalyDetector(epochs=1), tmp_path / "labelled.parquet", progress=False)
    frame.loc[2100, "c1"] = 0.0
    frame.to_parquet(tmp_path / "labelled.parquet")
    detector = fit_parquet(
        VAEAnomalyDetector(epochs=1, random_state=0),
        tmp_path / "labelled.parquet",
        drop_columns=["is_anomaly", "old__anomaly_score"],
        progress=False,
    )
    assert detector.feature_names_in_.tolist() == [f"c{i}" for i in range(6)]
    # A Pipeline chooses its own columns, so the label may stay in the files.
    features = [f"c{i}" for i in range(6)]
    chosen = make_pipeline(
        make_column_transformer(("passthrough", features)), VAEAnomalyDetector(epochs=1, random_state=0)
    )
    fitted = fit_parquet(chosen, tmp_path / "labelled.parquet", progress=False)
    assert fitted[-1].n_features_in_ == 6


def test_the_train_command_saves_a_model_that_scores_and_refuses_a_folder_it_would_clobber(
    lake, tmp_path, capsys
):
    folder, frame = lake
    assert (
        main(
            [
                "train",
                str(folder),
                str(tmp_path / "model"),
                "--params",
                '{"epochs": 2, "missing": "skip"}',
                "--no-progress",
            ]
        )
        == 0
    )
    assert "trained VAEAnomalyDetector on 6 columns" in capsys.readouterr().out
    assert VAEAnomalyDetector.load(tmp_path / "model").score_samples(frame).shape == (6000,)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["train", str(folder), str(tmp_path / "mine"), "--no-progress"]) == 2
    assert "not a saved vae-anomaly model" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    bad = '{"epochs": 0, "missing": "skip"}'
    assert main(["train", str(folder), str(tmp_path / "m2"), "--params", bad]) == 2
    assert "epochs" in capsys.readouterr().err


def test_the_train_command_refuses_columns_named_as_its_scores_and_trains_once_they_are_left_out(
    lake, tmp_path, capsys
):
    frame = lake[1]
    labelled = frame.assign(is_anomaly=np.int8(0), contribution_c0=0.0)
    labelled.to_parquet(tmp_path / "labelled.parquet")
    command = ["train", str(tmp_path / "labelled.parquet"), str(tmp_path / "model"), "--no-progress"]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "column(s) ['is_anomaly', 'contribution_c0'] are named as the scores" in error
    assert "--drop-columns is_anomaly,contribution_c0" in error
    assert not (tmp_path / "model").exists()
    params = ["--params", '{"epochs": 1, "missing": "skip"}']
    assert main([*command, *params, "--drop-columns", "is_anomaly,contribution_c0"]) == 0
    assert "trained VAEAnomalyDetector on 6 columns" in capsys.readouterr().out
