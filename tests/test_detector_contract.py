"""What every detector promises, checked on each: parameters, save/load/tamper, pickle, clone, outputs."""

from __future__ import annotations

import dataclasses
import inspect
import json
import pickle
import typing
from typing import Literal

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import seasonal_series
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from vae_anomaly import ModelFileError, TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.manifests import WEIGHTS_FILE, content_digest
from vae_anomaly.model_folder import CONFIG_FILE
from vae_anomaly.training import TrainingConfig

DETECTORS = [VAEAnomalyDetector, TimeSeriesVAEDetector]
# Few epochs: these tests are about the contract, not about detection quality.
FAST = {
    VAEAnomalyDetector: dict(epochs=10, mc_samples=4, contamination=0.05, random_state=0),
    TimeSeriesVAEDetector: dict(window=16, epochs=5, mc_samples=4, early_weight=0.5, random_state=0),
}


def _data(cls: type) -> pd.DataFrame:
    """A frame for ``cls`` with an index of its own: shuffled row labels, or timestamps."""
    if cls is TimeSeriesVAEDetector:
        index = pd.date_range("2024-01-01", periods=400, freq="5min", name="time")
        return pd.DataFrame(seasonal_series(400, n_channels=2), index=index, columns=["cpu", "mem"])
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 4))
    return pd.DataFrame(values, columns=["a", "b", "c", "d"], index=rng.permutation(1000)[:300])


@pytest.fixture(scope="module", params=DETECTORS, ids=lambda cls: cls.__name__)
def fitted(request) -> tuple[BaseVAEDetector, pd.DataFrame]:
    cls = request.param
    data = _data(cls)
    return cls(**FAST[cls]).fit(data), data


def _assert_same_detector(loaded, original, data):
    np.testing.assert_array_equal(loaded.score_samples(data), original.score_samples(data))
    np.testing.assert_array_equal(loaded.predict(data), original.predict(data))
    np.testing.assert_array_equal(loaded.explain(data), original.explain(data))
    np.testing.assert_array_equal(loaded.predict_proba(data), original.predict_proba(data))
    assert loaded.offset_ == original.offset_
    assert list(loaded.feature_names_in_) == list(original.feature_names_in_)
    assert loaded.get_params() == original.get_params()


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
        cls(**params).fit(_data(cls))


@pytest.mark.parametrize("cls", DETECTORS)
def test_missing_cuda_is_reported(cls):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device='cuda' was asked for, but torch sees no CUDA device"):
        cls(**{**FAST[cls], "device": "cuda"}).fit(_data(cls))


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("device", ["tpu", "gpu0"])
def test_an_unknown_device_is_named(cls, device):
    with pytest.raises(ValueError, match=f"device='{device}' is not a device torch knows"):
        cls(**{**FAST[cls], "device": device}).fit(_data(cls))


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
    data = _data(cls)
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
    _assert_same_detector(type(detector).load(tmp_path / "model"), detector, data)


def test_pickle_round_trip(fitted):
    detector, data = fitted
    _assert_same_detector(pickle.loads(pickle.dumps(detector)), detector, data)


def test_joblib_round_trip(fitted, tmp_path):
    detector, data = fitted
    joblib.dump(detector, tmp_path / "model.joblib")
    _assert_same_detector(joblib.load(tmp_path / "model.joblib"), detector, data)


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


# ------------------------------------------------------------------------------- safe files
def test_saved_weights_are_not_pickle(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert config["estimator"] == type(detector).__name__
    assert config["params"]["hidden_dims"] == list(detector.hidden_dims)


def test_tampered_weights_are_refused(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    weights = tmp_path / "model" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match the checksum"):
        type(detector).load(tmp_path / "model")


def _edit_config(folder, edit, *, reseal=True):
    """Edit a saved config; ``reseal`` also rewrites its checksum, as a writer with a bug would, so
    the checks behind the checksum are tested too."""
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    if reseal:
        config.pop("sha256")
        config["sha256"] = content_digest(config)
    path.write_text(json.dumps(config))


def test_newer_format_version_is_refused(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c.update(format_version=99))
    with pytest.raises(ModelFileError, match=r"format version 99.*upgrade vae-anomaly"):
        type(detector).load(tmp_path / "model")


def test_config_inconsistent_with_weights_is_refused(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c["params"].update(latent_dim=3))
    with pytest.raises(ModelFileError, match=f"does not describe a valid {type(detector).__name__}"):
        type(detector).load(tmp_path / "model")


@pytest.mark.parametrize("array", ["mean_", "scale_", "binary_features_", "latent_noise_"])
def test_arrays_that_do_not_fit_the_config_are_refused_at_load(fitted, tmp_path, array):
    from safetensors.torch import load_file, save_file

    from vae_anomaly.manifests import _sha256

    detector, _ = fitted
    detector.save(tmp_path / "model")
    weights = tmp_path / "model" / WEIGHTS_FILE
    tensors = load_file(str(weights))
    tensors[array] = tensors[array][:-1]  # one entry short, the files' checksums recomputed to match
    save_file(tensors, str(weights))
    _edit_config(tmp_path / "model", lambda c: c["files"].update({WEIGHTS_FILE: _sha256(weights)}))
    with pytest.raises(ModelFileError, match=rf"{array} has shape \([\d, ]+\), expected"):
        type(detector).load(tmp_path / "model")


def test_invalid_parameter_in_config_is_refused(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c["params"].update(score_method="pickle"))
    with pytest.raises(ModelFileError, match="score_method"):
        type(detector).load(tmp_path / "model")


def test_another_detector_class_is_named(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    other = next(cls for cls in DETECTORS if cls is not type(detector))
    with pytest.raises(
        ModelFileError, match=f"holds a '{type(detector).__name__}', not a '{other.__name__}'"
    ):
        other.load(tmp_path / "model")


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["attributes"].update(offset_=c["attributes"]["offset_"] + 1000.0),
        lambda c: c["params"].update(contamination=0.5),
        lambda c: c.update(torch_version="0"),
    ],
    ids=["offset", "parameter", "metadata"],
)
def test_an_edited_config_is_refused(fitted, tmp_path, edit):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    _edit_config(tmp_path / "model", edit, reseal=False)
    with pytest.raises(ModelFileError, match=r"config\.json was modified after the model was saved"):
        type(detector).load(tmp_path / "model")


def test_a_missing_or_extra_file_is_refused(fitted, tmp_path):
    detector, _ = fitted
    detector.save(tmp_path / "model")
    (tmp_path / "model" / "notes.txt").write_text("not part of the model")
    with pytest.raises(
        ModelFileError, match=r"holds files that are not part of the saved model: \['notes.txt'\]"
    ):
        type(detector).load(tmp_path / "model")
    (tmp_path / "model" / "notes.txt").unlink()
    (tmp_path / "model" / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"weights\.safetensors does not exist"):
        type(detector).load(tmp_path / "model")


def test_numpy_scalars_in_parameters_are_saved_as_plain_values(fitted, tmp_path):
    detector, data = fitted
    params = detector.get_params()
    numpy_params = {"latent_dim": np.int64(params["latent_dim"]), "beta": np.float32(1.0)}
    numpy_params["random_state"] = np.int64(0)
    refit = clone(detector).set_params(**numpy_params).fit(data)
    refit.save(tmp_path / "model")
    loaded = type(detector).load(tmp_path / "model")
    assert loaded.get_params() == refit.get_params()
    np.testing.assert_array_equal(loaded.score_samples(data), refit.score_samples(data))


def test_a_failed_save_leaves_the_saved_model_as_it_was(fitted, tmp_path):
    detector, data = fitted
    detector.save(tmp_path / "model")
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "model").iterdir())
    broken = clone(detector).set_params(random_state=0).fit(data)
    broken.history_ = [{"epoch": object()}]  # not JSON: the save fails after writing the weights
    with pytest.raises(TypeError, match="cannot be saved as JSON"):
        broken.save(tmp_path / "model")
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "model").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "no staging folder is left behind"
    _assert_same_detector(type(detector).load(tmp_path / "model"), detector, data)


def test_saving_over_a_model_replaces_it_whole(fitted, tmp_path):
    detector, data = fitted
    other = VAEAnomalyDetector(epochs=1, random_state=0).fit(np.zeros((50, 2)))
    other.save(tmp_path / "model")
    (tmp_path / "model" / "leftover.bin").write_bytes(b"from before")
    detector.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    _assert_same_detector(type(detector).load(tmp_path / "model"), detector, data)


def test_save_refuses_to_replace_what_is_not_a_model(fitted, tmp_path):
    detector, _ = fitted
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="already holds files that are not a saved vae-anomaly model"):
        detector.save(tmp_path / "documents")
    assert (tmp_path / "documents" / "thesis.tex").read_text() == "years of work"
    (tmp_path / "a_file").write_text("data")
    with pytest.raises(FileExistsError, match="is a file; a model is saved as a folder"):
        detector.save(tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "data"


@pytest.mark.parametrize("target_holds_a_model", [False, True])
def test_saving_to_a_link_is_refused_and_leaves_nothing_behind(fitted, tmp_path, target_holds_a_model):
    detector, _ = fitted
    target = tmp_path / "target"
    if target_holds_a_model:
        detector.save(target)
    else:
        target.mkdir()
    before = sorted((p.name, p.read_bytes()) for p in target.iterdir())
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileExistsError, match=r"link is a symbolic link \(to .*target\)"):
        detector.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "link").resolve() == target
    assert sorted((p.name, p.read_bytes()) for p in target.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"], "no debris"


@pytest.mark.parametrize("cls", DETECTORS)
def test_missing_folder_is_reported(cls, tmp_path):
    with pytest.raises(ModelFileError, match="is not a saved vae-anomaly model"):
        cls.load(tmp_path / "nowhere")


@pytest.mark.parametrize("cls", DETECTORS)
def test_unfitted_detector_cannot_be_saved(cls, tmp_path):
    with pytest.raises(NotFittedError):
        cls().save(tmp_path / "model")


PARAMETERS_ADDED_LATER = pytest.mark.parametrize(
    ("name", "before"),
    [
        ("min_relative_scale", 0.0),
        ("binary_features", "standardize"),
        ("gap_injection", 0.0),
        ("gap_fill", "mean"),
    ],
)


@PARAMETERS_ADDED_LATER
def test_a_model_saved_before_a_parameter_existed_loads_with_its_old_value(fitted, tmp_path, name, before):
    detector, x = fitted
    detector.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c["params"].pop(name))
    loaded = type(detector).load(tmp_path / "model")
    assert loaded.get_params()[name] == before
    np.testing.assert_array_equal(loaded.score_samples(x), detector.score_samples(x))


@PARAMETERS_ADDED_LATER
def test_a_detector_pickled_before_a_parameter_existed_unpickles_with_its_old_value(fitted, name, before):
    detector, x = fitted
    state = dict(detector.__getstate__())  # a copy: it is the fitted fixture's own __dict__
    del state[name]
    if name == "binary_features":
        del state["binary_features_"]  # nor had the fitted attribute: every feature was scaled
    restored = type(detector).__new__(type(detector))
    restored.__setstate__(state)
    assert restored.get_params()[name] == before
    assert not restored.binary_features_.any()
    shown = before != inspect.signature(type(detector)).parameters[name].default  # repr shows non-defaults
    assert (f"{name}={before!r}" in repr(restored)) == shown
    np.testing.assert_array_equal(restored.score_samples(x), detector.score_samples(x))


@pytest.fixture(scope="module")
def without_early_module() -> tuple[VAEAnomalyDetector, pd.DataFrame]:
    """A detector fitted as every one was before ``early_weight`` existed: no early module."""
    data = _data(VAEAnomalyDetector)
    return VAEAnomalyDetector(**{**FAST[VAEAnomalyDetector], "early_weight": 0.0}).fit(data), data


def test_a_model_saved_before_early_weight_existed_loads_unpaired(without_early_module, tmp_path):
    detector, x = without_early_module
    detector.save(tmp_path / "model")
    _edit_config(
        tmp_path / "model", lambda c: (c["params"].pop("early_weight"), c["attributes"].pop("early_share_"))
    )
    loaded = VAEAnomalyDetector.load(tmp_path / "model")
    assert loaded.early_weight == 0.0 and loaded.early_module_ is None
    np.testing.assert_array_equal(loaded.score_samples(x), detector.score_samples(x))


def test_a_detector_pickled_before_early_weight_existed_unpickles_unpaired(without_early_module, tmp_path):
    detector, x = without_early_module
    state = dict(detector.__getstate__())  # a copy: it is the fitted fixture's own __dict__
    for name in ("early_weight", "early_module_", "early_share_"):
        del state[name]
    restored = VAEAnomalyDetector.__new__(VAEAnomalyDetector)
    restored.__setstate__(state)
    assert restored.early_weight == 0.0 and restored.early_module_ is None and restored.early_share_ is None
    assert "early_weight=0.0" in repr(restored)
    np.testing.assert_array_equal(restored.score_samples(x), detector.score_samples(x))
    restored.save(tmp_path / "model")  # it saves as any fitted detector does, and loads back the same
    loaded = VAEAnomalyDetector.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score_samples(x), detector.score_samples(x))


def test_early_weights_without_their_share_are_refused_at_load(fitted, tmp_path):
    detector, _ = fitted
    assert detector.early_module_ is not None
    detector.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c["attributes"].update(early_share_=None))
    with pytest.raises(ModelFileError, match="early module's weights and early_share_ must come together"):
        type(detector).load(tmp_path / "model")


def test_the_kept_flags_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=(300, 2)), rng.random(300) < 0.1])
    detector = VAEAnomalyDetector(binary_features="keep", epochs=2, random_state=0).fit(x)
    detector.save(tmp_path / "model")
    loaded = VAEAnomalyDetector.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.binary_features_, [False, False, True])
    np.testing.assert_array_equal(loaded.score_samples(x), detector.score_samples(x))
