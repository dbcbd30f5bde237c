"""The numpy scorer: a saved table detector scored without torch, as the detector scores it (issue 33).
A series detector's: ``test_numpy_series_scorer.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import score_without_heavy_imports
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_info

from vae_anomaly import ModelFileError, TimeSeriesVAEDetector, VAEAnomalyDetector, cpus, numpy_vae
from vae_anomaly.batch import load_scoring_model, model
from vae_anomaly.batch.inputs import input_files, parquet_rows
from vae_anomaly.bundle import save_bundle
from vae_anomaly.cpus import available_cpus
from vae_anomaly.model import GaussianVAE
from vae_anomaly.numpy_scorer import NumpyTableScorer, load_numpy_scorer
from vae_anomaly.numpy_vae import NumpyVAE
from vae_anomaly.scoring import score_rows

COLUMNS = ["cpu", "memory", "latency", "total", "flag"]


def correlated_table(n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, 3)), columns=COLUMNS[:3])
    frame["total"] = frame["cpu"] + frame["memory"] + 0.05 * rng.normal(size=n_rows)
    frame["flag"] = rng.random(n_rows) < 0.3
    return frame


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return correlated_table(600, seed=0)


@pytest.fixture(scope="module")
def new_rows() -> pd.DataFrame:
    frame = correlated_table(300, seed=1)
    frame.loc[:9, "total"] += 4.0  # planted: the sum no longer holds
    return frame


def saved(detector, folder: Path) -> Path:
    detector.save(folder)
    return folder


@pytest.mark.parametrize("hidden_dims", [(), (7,), (32, 16, 8)])
@pytest.mark.parametrize("weight_scale", [1.0, 6.0])  # 6: the log-variance clamps and the floor are hit
def test_the_numpy_pass_is_the_modules_on_any_weights(hidden_dims, weight_scale):
    module = GaussianVAE(5, hidden_dims, latent_dim=3, generator=torch.Generator().manual_seed(1)).eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(weight_scale)
        module.x_log_var_raw.copy_(torch.linspace(-12.0, 3.0, 5))
    rows = np.random.default_rng(0).normal(scale=3.0, size=(200, 5)).astype(np.float32)
    expected = score_rows(module, rows)
    state = {name: tensor.numpy() for name, tensor in module.state_dict().items()}
    scores = NumpyVAE(state, len(hidden_dims)).scores(rows)
    for name in ("reconstruction_error", "reconstruction_nll", "kl"):
        np.testing.assert_allclose(getattr(scores, name), getattr(expected, name), rtol=2e-5, atol=1e-5)


def test_weights_of_another_module_are_refused_by_name():
    module = GaussianVAE(4, (8,), latent_dim=2, generator=torch.Generator().manual_seed(0))
    state = {name: tensor.numpy() for name, tensor in module.state_dict().items()}
    with pytest.raises(ValueError, match=r"missing \['decoder.2.bias', 'decoder.2.weight'"):
        NumpyVAE(state, 2)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"score_method": "reconstruction"},
        {"hidden_dims": ()},
        {"hidden_dims": (16,), "latent_dim": 3},
        {"early_weight": 0.0},
        {"binary_features": "keep"},
    ],
    ids=[
        "defaults",
        "reconstruction",
        "no-hidden-layer",
        "one-hidden-layer",
        "no-early-checkpoint",
        "keep-binary",
    ],
)
def test_the_numpy_scores_and_flags_are_the_detectors(params, training, new_rows, tmp_path):
    detector = VAEAnomalyDetector(epochs=5, random_state=0, **params).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "model"))
    assert isinstance(scorer, NumpyTableScorer)
    expected = detector.anomaly_score(new_rows)
    scores = scorer.anomaly_score(new_rows)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    frame = scorer.score_frame(new_rows)
    assert list(frame.columns) == ["anomaly_score", "is_anomaly"]
    assert (frame.index == new_rows.index).all()
    np.testing.assert_array_equal(frame["is_anomaly"], detector.predict(new_rows) == -1)
    assert scorer.threshold == detector.anomaly_threshold_


def test_a_row_scores_the_same_alone_as_among_others_and_in_any_pass(
    training, new_rows, tmp_path, monkeypatch
):
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    together = scorer.anomaly_score(new_rows)
    alone = np.concatenate([scorer.anomaly_score(new_rows.iloc[[i]]) for i in range(0, 300, 37)])
    np.testing.assert_allclose(alone, together[::37], rtol=1e-12)
    monkeypatch.setattr(numpy_vae, "ROWS_PER_PASS", 7)
    np.testing.assert_allclose(scorer.anomaly_score(new_rows), together, rtol=1e-12)


def test_a_value_that_overflows_float32_scores_infinite_as_with_the_detector(training, tmp_path):
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    rows = training.head(3).copy()
    rows.loc[rows.index[1], "cpu"] = 1e30  # finite, but its square overflows float32
    assert np.isinf(detector.anomaly_score(rows)[1])
    scores = scorer.anomaly_score(rows)
    assert np.isinf(scores[1]) and np.isfinite(scores[[0, 2]]).all()


def with_gaps(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    return frame.astype(float).mask(np.random.default_rng(seed).random(frame.shape) < share)


@pytest.mark.parametrize(
    "params",
    [{}, {"gap_fill": "mean"}, {"score_method": "reconstruction"}, {"early_weight": 0.0}],
    ids=["refilled", "at-the-mean", "reconstruction", "no-early-checkpoint"],
)
def test_rows_with_gaps_score_as_with_a_detector_that_skips_them(params, training, new_rows, tmp_path):
    detector = VAEAnomalyDetector(epochs=5, missing="skip", random_state=0, **params)
    detector.fit(with_gaps(training, 0.1, seed=2))
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    assert isinstance(scorer, NumpyTableScorer) and scorer.skips_missing
    gapped = with_gaps(new_rows, 0.25, seed=3)
    gapped.iloc[0] = np.nan
    gapped.iloc[0, 0] = 1.5  # one observed value
    assert gapped.isna().any(axis=1).mean() > 0.5
    expected = detector.anomaly_score(gapped)
    np.testing.assert_allclose(scorer.anomaly_score(gapped), expected, rtol=1e-6)
    np.testing.assert_array_equal(scorer.score_frame(gapped)["is_anomaly"], detector.predict(gapped) == -1)
    alone = [scorer.anomaly_score(gapped.iloc[[i]])[0] for i in range(0, 300, 41)]
    np.testing.assert_allclose(alone, expected[::41], rtol=1e-6)  # a row's refill is its own
    complete = new_rows.head(20)  # no gap: the plain pass, as the detector scores it
    np.testing.assert_allclose(scorer.anomaly_score(complete), detector.anomaly_score(complete), rtol=1e-6)


def test_a_skipping_detectors_scorer_refuses_what_the_detector_refuses(training, tmp_path):
    detector = VAEAnomalyDetector(epochs=3, missing="skip", random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    rows = training.head(4).astype(float)
    rows.iloc[2] = np.nan
    for scoring in (detector, scorer):
        with pytest.raises(ValueError, match=r"no observed value.*\b2\b"):
            scoring.anomaly_score(rows)
    rows.iloc[2] = 0.0
    rows.iloc[1, 0] = np.inf
    for scoring in (detector, scorer):
        with pytest.raises(ValueError, match=r"infinite values.*'cpu'.*Replace them with NaN"):
            scoring.anomaly_score(rows)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_refused_with_the_detectors_message(bad, training, tmp_path):
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    rows = training.head(5).copy()
    rows.loc[rows.index[3], "latency"] = bad
    with pytest.raises(ValueError) as from_torch:
        detector.anomaly_score(rows)
    with pytest.raises(ValueError, match=r"column 'latency'.*first at row 3") as from_numpy:
        scorer.anomaly_score(rows)
    assert str(from_numpy.value) == str(from_torch.value)


def test_columns_other_than_the_fitted_ones_are_refused_by_name(training, tmp_path):
    scorer = load_numpy_scorer(
        saved(VAEAnomalyDetector(epochs=5, random_state=0).fit(training), tmp_path / "m")
    )
    with pytest.raises(
        ValueError, match=r"Expected the columns \['cpu', 'memory', 'latency', 'total', 'flag'\]"
    ):
        scorer.anomaly_score(training[COLUMNS[::-1]])


@pytest.mark.parametrize(
    "detector, scoring_device, device",
    [
        (VAEAnomalyDetector(epochs=3, mc_samples=4, random_state=0), "auto", None),
        (VAEAnomalyDetector(epochs=3, random_state=0), "cuda", None),
        (VAEAnomalyDetector(epochs=3, random_state=0), "cuda", "cpu"),
        (VAEAnomalyDetector(epochs=3, random_state=0), "auto", "cuda"),
        (TimeSeriesVAEDetector(window=8, epochs=2, mc_samples=4, random_state=0), "auto", None),
    ],
    ids=["mc-samples", "saved-for-cuda", "cpu-asked", "cuda-asked", "series-mc-samples"],
)
def test_only_what_it_scores_as_torch_does_goes_to_the_numpy_scorer(
    detector, scoring_device, device, training, tmp_path
):
    detector.fit(training[COLUMNS[:4]]).set_params(scoring_device=scoring_device)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"), device)
    assert (scorer is not None) == (device == "cpu")  # --device cpu overrides a model saved for CUDA


def test_a_bundle_of_a_detector_is_read_and_a_pipeline_of_other_steps_is_left_to_torch(
    training, new_rows, tmp_path
):
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(training)
    scorer = load_numpy_scorer(save_bundle(detector, tmp_path / "bare"))
    np.testing.assert_allclose(scorer.anomaly_score(new_rows), detector.anomaly_score(new_rows), rtol=1e-6)
    minmax = MinMaxScaler().set_output(transform="pandas")  # a step numpy_preprocessing does not run
    pipeline = make_pipeline(minmax, VAEAnomalyDetector(epochs=3, random_state=0)).fit(training)
    folder = save_bundle(pipeline, tmp_path / "pipeline")
    assert not (folder / "preprocessing.json").exists()
    assert load_numpy_scorer(folder) is None


def test_a_tampered_folder_is_refused_as_torch_refuses_it(training, tmp_path):
    folder = saved(VAEAnomalyDetector(epochs=3, random_state=0).fit(training), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["attributes"]["offset_"] = 1e9
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="was modified after the model was saved"):
        load_numpy_scorer(folder)
    with pytest.raises(ModelFileError, match="was modified after the model was saved"):
        VAEAnomalyDetector.load(folder)


def test_the_input_rows_are_counted_from_the_footers_and_the_count_stops_early(training, tmp_path):
    for part in range(3):
        training.iloc[part * 200 : (part + 1) * 200].to_parquet(tmp_path / f"part-{part}.parquet")
    (tmp_path / "notes.parquet").write_text("not parquet")  # counts 0: scoring reports it
    files = input_files(tmp_path)[1]
    assert parquet_rows(files) == 600
    assert parquet_rows(files, stop_above=250) == 400


def test_a_small_input_is_scored_with_numpy_and_a_large_one_with_torch(training, tmp_path, monkeypatch):
    folder = saved(VAEAnomalyDetector(epochs=3, random_state=0).fit(training), tmp_path / "m")
    training.to_parquet(tmp_path / "in.parquet")
    assert isinstance(load_scoring_model(folder, input_path=tmp_path / "in.parquet").model, NumpyTableScorer)
    work = load_numpy_scorer(folder).multiply_adds_per_row * len(training)
    monkeypatch.setattr(model, "NUMPY_SCORING_MAX_WORK", work - 1)
    assert isinstance(
        load_scoring_model(folder, input_path=tmp_path / "in.parquet").model, VAEAnomalyDetector
    )
    assert isinstance(load_scoring_model(folder).model, VAEAnomalyDetector)  # no input: torch


def test_an_input_of_many_files_is_scored_with_torch(training, tmp_path, monkeypatch):
    folder = saved(VAEAnomalyDetector(epochs=3, random_state=0).fit(training), tmp_path / "m")
    (tmp_path / "in").mkdir()
    for part in range(3):
        training.iloc[part * 10 : (part + 1) * 10].to_parquet(tmp_path / "in" / f"{part}.parquet")
    assert isinstance(load_scoring_model(folder, input_path=tmp_path / "in").model, NumpyTableScorer)
    monkeypatch.setattr(model, "NUMPY_SCORING_MAX_FILES", 2)
    assert isinstance(load_scoring_model(folder, input_path=tmp_path / "in").model, VAEAnomalyDetector)


def test_the_command_line_scores_a_small_input_without_torch_or_scikit_learn(training, new_rows, tmp_path):
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(training)
    folder = saved(detector, tmp_path / "m")
    new_rows.to_parquet(tmp_path / "in.parquet")
    assert score_without_heavy_imports(folder, tmp_path / "in.parquet", tmp_path / "out") == []
    output = pd.read_parquet(tmp_path / "out" / "in.parquet")
    np.testing.assert_allclose(output["anomaly_score"], detector.anomaly_score(new_rows), rtol=1e-6)
    np.testing.assert_array_equal(output["is_anomaly"], detector.predict(new_rows) == -1)


def test_a_registered_detector_is_scored_with_numpy_from_its_bundle(
    training, new_rows, tmp_path, register_champion
):
    detector = VAEAnomalyDetector(epochs=3, random_state=0).fit(training)
    uri = register_champion(detector, "numpy-model", training.head(5))
    new_rows.to_parquet(tmp_path / "in.parquet")
    loaded = load_scoring_model(uri, input_path=tmp_path / "in.parquet")
    assert isinstance(loaded.model, NumpyTableScorer)
    assert loaded.kinds["flag"] == "boolean"  # the signature's kinds, as for the torch model
    scores = loaded.score(new_rows[loaded.columns])["anomaly_score"]
    np.testing.assert_allclose(scores, detector.anomaly_score(new_rows), rtol=1e-6)


@pytest.mark.parametrize(("n_threads", "small_work_macs"), [(1, None), ("auto", None), ("auto", 0)])
def test_n_threads_caps_numpys_blas_threads_while_it_scores(
    n_threads, small_work_macs, training, new_rows, tmp_path, monkeypatch
):
    """As torch's threads: 1 and "auto" for a small model run one BLAS thread; "auto" for large work
    (every pass counted large here) every CPU the process may use."""
    if small_work_macs is not None:
        monkeypatch.setattr(cpus, "SMALL_WORK_MACS", small_work_macs)
    expected = available_cpus() if small_work_macs == 0 else 1
    detector = VAEAnomalyDetector(epochs=3, n_threads=n_threads, random_state=0).fit(training)
    scorer = load_numpy_scorer(saved(detector, tmp_path / "m"))
    before = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    during = []
    scores = NumpyVAE.scores

    def spied(module, *args):
        during.append([pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"])
        return scores(module, *args)

    monkeypatch.setattr(NumpyVAE, "scores", spied)
    np.testing.assert_allclose(scorer.anomaly_score(new_rows), detector.anomaly_score(new_rows), rtol=1e-6)
    assert during and all(threads == [expected] * len(before) for threads in during)
    assert [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"] == before
