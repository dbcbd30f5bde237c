"""What every detector promises, checked on each: parameters, extreme values, determinism, round trips
(save/load, pickle, joblib, clone) and outputs; the safety of its saved files is in test_saved_models."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import typing
from typing import Literal

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from contract_detectors import DETECTORS, FAST, assert_same_detector, fitted_fast, frame_for
from sklearn.base import clone

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.training import TrainingConfig


@pytest.fixture(scope="module", params=DETECTORS, ids=lambda cls: cls.__name__)
def fitted(request) -> tuple[BaseVAEDetector, pd.DataFrame]:
    return fitted_fast(request.param)


# ----------------------------------------------------------------------------------- parameters
def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cls.__init__).parameters)


# The defaults the series detector declares for itself: the share of validation windows it was tuned
# with, binary channels kept as they are, and no early checkpoint.
_OWN_DEFAULTS = {
    TimeSeriesVAEDetector: {"validation_fraction": 0.1, "binary_features": "keep", "early_weight": 0.0}
}


@pytest.mark.parametrize("cls", DETECTORS)
def test_shared_parameters_have_the_base_defaults_and_are_documented(cls):
    shared = {name: p for name, p in _parameters(BaseVAEDetector).items() if name != "self"}
    own = _parameters(cls)
    for name, parameter in shared.items():
        assert own[name].default == _OWN_DEFAULTS.get(cls, {}).get(name, parameter.default), name
        assert own[name].annotation == parameter.annotation, name
        assert f"\n    {name} : " in cls.__doc__, f"{name} is not documented in {cls.__name__}"
    for name in own:
        if name != "self":
            assert f"\n    {name} : " in cls.__doc__, f"{name} is not documented in {cls.__name__}"
    assert set(shared) <= set(cls._parameter_constraints)


@pytest.mark.parametrize("cls", DETECTORS)
def test_the_signature_is_keyword_only_and_its_annotations_resolve(cls):
    # The __init__ is written from fields declared in two modules; its hints must resolve in either.
    parameters = [p for name, p in _parameters(cls).items() if name != "self"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    hints = typing.get_type_hints(cls.__init__)
    assert hints["score_method"] == Literal["elbo", "reconstruction"]
    assert hints["hidden_dims"] == tuple[int, ...]
    assert set(hints) == {p.name for p in parameters} | {"return"}


@pytest.mark.parametrize("cls", DETECTORS)
def test_the_shared_parameters_reach_the_base_class(cls):
    shared = [name for name in _parameters(BaseVAEDetector) if name != "self"]
    values = {name: f"value of {name}" for name in shared}
    detector = cls(**values)
    assert {name: getattr(detector, name) for name in shared} == values


def test_the_training_configuration_takes_shared_parameters_only():
    shared = set(_parameters(BaseVAEDetector))
    assert {field.name for field in dataclasses.fields(TrainingConfig)} <= shared


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize(
    "params,match",
    [
        ({"hidden_dims": (32, 0)}, "hidden_dims must be positive integers"),
        ({"contamination": 0.7}, "'contamination' parameter"),
        ({"latent_dim": 0}, "'latent_dim' parameter"),
        ({"min_relative_scale": -0.01}, "'min_relative_scale' parameter"),
        ({"binary_features": "drop"}, "'binary_features' parameter"),
        ({"score_method": "mse"}, "'score_method' parameter"),
        ({"device": 3}, "'device' parameter"),
    ],
)
def test_bad_parameters_fail_at_fit(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params).fit(frame_for(cls))


@pytest.mark.parametrize("cls", DETECTORS)
def test_missing_cuda_is_reported(cls):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device='cuda' was asked for, but torch sees no CUDA device"):
        cls(**{**FAST[cls], "device": "cuda"}).fit(frame_for(cls))


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("device", ["tpu", "gpu0"])
def test_an_unknown_device_is_named(cls, device):
    with pytest.raises(ValueError, match=f"device='{device}' is not a device torch knows"):
        cls(**{**FAST[cls], "device": device}).fit(frame_for(cls))


def test_a_scoring_device_torch_lacks_is_named_when_scoring(fitted):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    detector, data = fitted
    on_cuda = clone(detector).set_params(scoring_device="cuda")
    on_cuda.__dict__.update({k: v for k, v in detector.__dict__.items() if k.endswith("_")})
    with pytest.raises(ValueError, match="device='cuda' was asked for, but torch sees no CUDA device"):
        on_cuda.score_samples(data)


def test_scoring_on_the_cpu_by_name_equals_auto_without_accelerators(fitted):
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("auto picks an accelerator here")
    detector, data = fitted
    on_cpu = clone(detector).set_params(scoring_device="cpu")
    on_cpu.__dict__.update({k: v for k, v in detector.__dict__.items() if k.endswith("_")})
    np.testing.assert_array_equal(on_cpu.score_samples(data), detector.score_samples(data))


# ------------------------------------------------------------------------------ extreme values
@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("value", [1e39, -1e308])
def test_training_values_beyond_float32_are_refused_by_column_and_row(cls, value):
    data = frame_for(cls)
    data.iloc[5, 1] = value
    column = data.columns[1]
    with pytest.raises(
        ValueError, match=rf"column '{column}': \|value\| > 3\.4e\+38 in 1 row\(s\), first at row 5"
    ):
        cls(**FAST[cls]).fit(data)


@pytest.mark.parametrize("value", [1e39, 1e20, -1e300])
def test_a_value_the_model_cannot_represent_scores_as_most_anomalous(fitted, value):
    detector, data = fitted
    row = len(data) // 2
    odd = data.copy()
    odd.iloc[row, 1] = value
    scores = detector.anomaly_score(odd)
    assert scores[row] == np.inf
    assert detector.predict(odd)[row] == -1
    reach = getattr(detector, "window", 1)  # the timestamps that share a window with it
    far = np.abs(np.arange(len(odd)) - row) >= reach
    np.testing.assert_array_equal(scores[far], detector.anomaly_score(data)[far])
    assert not detector.score_components(odd).isna().any().any()
    shares = detector.explain(odd)
    assert not shares.isna().any().any()
    assert shares.iloc[row].idxmax() == data.columns[1]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_the_anomaly_probability_agrees_with_predict_and_rises_with_the_score(fitted):
    detector, data = fitted
    probability = detector.predict_proba(data)
    assert probability.shape == (len(data), 2)
    np.testing.assert_allclose(probability.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probability[:, 1] > 0.5, detector.predict(data) == -1)
    order = np.argsort(detector.anomaly_score(data))
    assert (np.diff(probability[order, 1]) >= 0).all()
    assert probability[:, 1].min() >= 0 and probability[:, 1].max() <= 1


# ---------------------------------------------------------------------------------- determinism
def test_scores_are_deterministic(fitted):
    detector, data = fitted
    np.testing.assert_array_equal(detector.score_samples(data), detector.score_samples(data))


def test_repeated_fits_give_identical_models(fitted):
    detector, data = fitted
    refit = type(detector)(**detector.get_params()).fit(data)
    np.testing.assert_array_equal(refit.score_samples(data), detector.score_samples(data))


# -------------------------------------------------------------------------------- round trips
def test_save_load_round_trip(fitted, tmp_path):
    detector, data = fitted
    detector.save(tmp_path / "model")
    assert_same_detector(type(detector).load(tmp_path / "model"), detector, data)


def test_pickle_round_trip(fitted):
    detector, data = fitted
    assert_same_detector(pickle.loads(pickle.dumps(detector)), detector, data)


def test_joblib_round_trip(fitted, tmp_path):
    detector, data = fitted
    joblib.dump(detector, tmp_path / "model.joblib")
    assert_same_detector(joblib.load(tmp_path / "model.joblib"), detector, data)


def test_clone_keeps_parameters_and_drops_fitted_state(fitted):
    detector, _ = fitted
    copy = clone(detector)
    assert copy.get_params() == detector.get_params()
    assert not hasattr(copy, "module_")


@pytest.mark.parametrize("method", ["score_components", "explain"])
def test_dataframe_outputs_keep_the_input_index(fitted, method):
    detector, data = fitted
    output = getattr(detector, method)(data)
    assert isinstance(output, pd.DataFrame)
    assert output.index.equals(data.index)
    assert len(output) == len(data)


def test_feature_frame_is_the_input_as_the_detector_reads_it(fitted):
    detector, data = fitted
    pd.testing.assert_frame_equal(detector.feature_frame(data), data.astype(np.float64))
