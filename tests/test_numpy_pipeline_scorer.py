"""A saved Pipeline scored with numpy: its preprocessing plan, then its detector's numpy scorer, as the
Pipeline itself scores (issue 33, item 3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import score_without_heavy_imports, seasonal_series
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vae_anomaly import ModelFileError, VAEAnomalyDetector
from vae_anomaly.batch import load_scoring_model, write_events
from vae_anomaly.bundle import save_bundle
from vae_anomaly.composition import model_parts
from vae_anomaly.frames import score_frame
from vae_anomaly.numpy_preprocessing import PLAN_FILE, NumpyPreprocessing, describe_preprocessing
from vae_anomaly.numpy_scorer import NumpyPipelineScorer, load_numpy_scorer
from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline


def mixed_table(n_rows: int, seed: int) -> pd.DataFrame:
    """Two related numeric columns (one of int), two categorical ones; some values missing."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["eu", "us", "ap"], n_rows)
    cpu = rng.normal(50, 10, n_rows) + np.where(region == "eu", 20.0, 0.0)
    frame = pd.DataFrame(
        {
            "cpu": cpu,
            "requests": (cpu * 3 + rng.normal(0, 5, n_rows)).round().astype(np.int64),
            "region": region,
            "tier": rng.choice(["gold", "free"], n_rows),
        }
    )
    frame.loc[rng.random(n_rows) < 0.05, "cpu"] = np.nan
    frame["region"] = frame["region"].where(rng.random(n_rows) >= 0.05)  # NaN: the imputer fills it
    return frame


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return mixed_table(500, seed=0)


@pytest.fixture(scope="module")
def new_rows() -> pd.DataFrame:
    frame = mixed_table(120, seed=1)
    frame.loc[0, "region"] = "mars"  # unseen: none of the levels
    frame.loc[1, "tier"] = None  # not NaN to scikit-learn's imputer: an unknown level too
    frame.loc[2, "requests"] = 10_000  # planted
    frame.loc[3, "cpu"] = np.nan
    return frame


@pytest.fixture(scope="module")
def fitted(training):
    return tabular_pipeline(random_state=0, epochs=5).fit(training)


def test_a_saved_tabular_pipeline_scores_with_numpy_as_the_pipeline_does(fitted, new_rows, tmp_path):
    folder = fitted.save(tmp_path / "p")
    assert (folder / PLAN_FILE).is_file()
    scorer = load_numpy_scorer(folder)
    assert isinstance(scorer, NumpyPipelineScorer)
    assert scorer.feature_names == ["cpu", "requests", "region", "tier"] and scorer.time_column is None
    assert scorer.takes(new_rows)
    expected = score_frame(fitted, new_rows)
    scored = scorer.score_frame(new_rows)
    np.testing.assert_allclose(scored["anomaly_score"], expected["anomaly_score"], rtol=1e-6)
    np.testing.assert_array_equal(scored["is_anomaly"], expected["is_anomaly"])
    assert scored.index.equals(new_rows.index) and scorer.threshold == fitted[-1].anomaly_threshold_
    assert scored["is_anomaly"].iloc[2]  # the planted count
    reordered = new_rows[["tier", "region", "requests", "cpu"]]  # columns found by name, as scikit-learn does
    np.testing.assert_allclose(scorer.anomaly_score(reordered), expected["anomaly_score"], rtol=1e-6)


def test_the_plan_transforms_as_the_fitted_column_transformer(fitted, new_rows):
    preprocessing = model_parts(fitted).preprocessing
    plan = describe_preprocessing(preprocessing, list(fitted[-1].feature_names_in_))
    transformed = NumpyPreprocessing(json.loads(json.dumps(plan))).transform(new_rows)
    expected = preprocessing.transform(new_rows)
    pd.testing.assert_frame_equal(transformed, expected, check_dtype=False, rtol=0, atol=0)


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(region=pd.array(f.region, dtype="string[python]")),  # pd.NA for missing
        lambda f: f.assign(cpu=f.cpu.where(f.index != 5, np.inf)),  # scikit-learn refuses it
        lambda f: f.assign(tier=f.tier.where(f.index != 5, 7).astype(object)),  # a number among strings
        lambda f: f.assign(requests=f.requests.astype("Int64")),  # a nullable integer column
        lambda f: f.drop(columns="tier"),
    ],
    ids=["pd-na", "inf", "number-level", "nullable-int", "missing-column"],
)
def test_input_the_plan_is_not_sure_of_goes_to_the_pipeline(change, fitted, new_rows, tmp_path):
    folder = fitted.save(tmp_path / "p")
    frame = change(new_rows.copy())
    scorer = load_numpy_scorer(folder)
    assert not scorer.takes(frame)
    new_rows.to_parquet(tmp_path / "in.parquet")  # a small input: the numpy scorer is chosen
    batch_model = load_scoring_model(folder, input_path=tmp_path / "in.parquet")
    assert isinstance(batch_model.model, NumpyPipelineScorer)
    try:
        expected = score_frame(fitted, frame)
    except (ValueError, TypeError, KeyError) as error:  # the Pipeline refuses it: so does the batch model
        with pytest.raises(type(error)):
            batch_model.score(frame)
        return
    np.testing.assert_allclose(
        batch_model.score(frame)["anomaly_score"], expected["anomaly_score"], rtol=1e-6
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(cpu=f.cpu.astype(np.float32)),  # with int64: the block is float64
        lambda f: f.assign(cpu=f.cpu.astype(np.float32), requests=f.requests.astype(np.float32)),
        lambda f: f.assign(cpu=f.cpu.astype(np.float32), requests=f.requests.astype(np.int16)),  # float32
        lambda f: f.assign(requests=f.requests > 150, region=f.region.astype("category")),
        lambda f: f.assign(tier=f.tier.astype("str")),
    ],
    ids=["float32-int64", "float32-float32", "float32-int16", "bool-category", "str-dtype"],
)
def test_the_plan_converts_dtypes_as_scikit_learn_does(change, fitted, new_rows, tmp_path):
    frame = change(new_rows)
    preprocessing = model_parts(fitted).preprocessing
    plan = NumpyPreprocessing(describe_preprocessing(preprocessing, list(fitted[-1].feature_names_in_)))
    assert plan.takes(frame)
    expected = preprocessing.transform(frame)
    pd.testing.assert_frame_equal(plan.transform(frame), expected, check_dtype=False, rtol=0, atol=0)
    assert plan.transform(frame).dtypes.iloc[0] == expected.dtypes.iloc[0]
    scorer = load_numpy_scorer(fitted.save(tmp_path / "p"))
    np.testing.assert_allclose(
        scorer.anomaly_score(frame), score_frame(fitted, frame)["anomaly_score"], rtol=1e-6
    )


def test_a_lone_standard_scaler_with_named_output_is_planned_too(training, tmp_path):
    numeric = training[["cpu", "requests"]].fillna(50.0)
    scaler = StandardScaler().set_output(transform="pandas")
    model = make_pipeline(scaler, VAEAnomalyDetector(epochs=3, random_state=0)).fit(numeric)
    scorer = load_numpy_scorer(save_bundle(model, tmp_path / "p"))
    assert isinstance(scorer, NumpyPipelineScorer)
    np.testing.assert_allclose(
        scorer.anomaly_score(numeric), score_frame(model, numeric)["anomaly_score"], rtol=1e-6
    )


@pytest.mark.parametrize(
    "features, planned",
    [
        (
            ColumnTransformer(
                [("n", StandardScaler(), ["cpu"]), ("c", OneHotEncoder(sparse_output=False), ["tier"])]
            ),
            False,
        ),
        (
            ColumnTransformer(
                [("n", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), ["cpu"])]
            ),
            False,
        ),
        (
            ColumnTransformer([("n", StandardScaler(), ["cpu", "requests"])], transformer_weights={"n": 2.0}),
            False,
        ),
        (ColumnTransformer([("n", StandardScaler(), ["cpu"])], remainder="passthrough"), True),
        (ColumnTransformer([("n", StandardScaler(), ["cpu"]), ("c", "drop", ["tier"])]), True),
    ],
    ids=["unknown-level-refused", "imputed-numbers", "weighted", "numeric-remainder", "dropped"],
)
def test_only_steps_numpy_runs_exactly_are_planned(features, planned, training):
    data = training.assign(cpu=training.cpu.fillna(50.0))
    data = data[["cpu", "requests", "tier"]] if planned else data
    data = data.drop(columns="tier") if features.remainder == "passthrough" else data
    detector = VAEAnomalyDetector(epochs=1, missing="skip", random_state=0)
    model = make_pipeline(features.set_output(transform="pandas"), detector)
    model.fit(data)
    plan = describe_preprocessing(model_parts(model).preprocessing, list(model[-1].feature_names_in_))
    assert (plan is not None) == planned
    if planned:
        expected = model_parts(model).preprocessing.transform(data)
        pd.testing.assert_frame_equal(NumpyPreprocessing(plan).transform(data), expected, check_dtype=False)


def test_a_tampered_plan_is_refused_as_the_bundle_is(fitted, tmp_path):
    folder = fitted.save(tmp_path / "p")
    plan = json.loads((folder / PLAN_FILE).read_text())
    plan["parts"][0]["mean"][0] += 1.0
    (folder / PLAN_FILE).write_text(json.dumps(plan))
    with pytest.raises(ModelFileError, match="does not match the checksum"):
        load_numpy_scorer(folder)


def test_the_command_line_scores_a_saved_pipeline_without_torch_or_scikit_learn(fitted, new_rows, tmp_path):
    folder = fitted.save(tmp_path / "p")
    new_rows.to_parquet(tmp_path / "in.parquet")
    assert score_without_heavy_imports(folder, tmp_path / "in.parquet", tmp_path / "out") == []
    output = pd.read_parquet(tmp_path / "out" / "in.parquet")
    expected = score_frame(fitted, pd.read_parquet(tmp_path / "in.parquet"))
    np.testing.assert_allclose(output["anomaly_score"], expected["anomaly_score"], rtol=1e-6)
    np.testing.assert_array_equal(output["is_anomaly"], expected["is_anomaly"])


def test_a_saved_series_pipeline_scores_with_numpy_a_gapped_series_too(tmp_path):
    values = seasonal_series(900, n_channels=2, seed=0)
    frame = pd.DataFrame(values, columns=["cpu", "memory"])
    frame.insert(0, "time", pd.date_range("2024-01-01", periods=900, freq="min"))
    frame["host"] = "web-1"  # not a channel: dropped by the pipeline
    model = timeseries_pipeline(time_column="time", window=16, epochs=3, random_state=0).fit(frame[:700])
    folder = model.save(tmp_path / "p")
    new = frame[700:].reset_index(drop=True)
    new.to_parquet(tmp_path / "in.parquet")
    batch_model = load_scoring_model(folder, input_path=tmp_path / "in.parquet")
    assert isinstance(batch_model.model, NumpyPipelineScorer) and batch_model.whole_files
    assert batch_model.columns == ["time", "cpu", "memory", "host"]
    gapped = new.assign(cpu=new.cpu.where(~new.index.isin(range(40, 50))))
    assert batch_model.model.takes(new) and batch_model.model.takes(gapped)
    for series in (new, gapped):  # both with numpy
        np.testing.assert_allclose(
            batch_model.score(series)["anomaly_score"], score_frame(model, series)["anomaly_score"], rtol=1e-6
        )
    with pytest.raises(TypeError, match="load the model without input_path"):
        write_events(batch_model, tmp_path / "in.parquet", tmp_path / "events")
