"""What every detector promises of its saved files: no pickle, tampering and version checks, atomic
saves that never delete what is not a model, and models saved or pickled before a parameter existed."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import pytest
from contract_detectors import DETECTORS, FAST, assert_same_detector, fitted_fast, frame_for
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from vae_anomaly import ModelFileError, VAEAnomalyDetector
from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.manifests import WEIGHTS_FILE, content_digest
from vae_anomaly.model_folder import CONFIG_FILE


@pytest.fixture(scope="module", params=DETECTORS, ids=lambda cls: cls.__name__)
def fitted(request) -> tuple[BaseVAEDetector, pd.DataFrame]:
    return fitted_fast(request.param)


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
    assert_same_detector(type(detector).load(tmp_path / "model"), detector, data)


def test_saving_over_a_model_replaces_it_whole(fitted, tmp_path):
    detector, data = fitted
    other = VAEAnomalyDetector(epochs=1, random_state=0).fit(np.zeros((50, 2)))
    other.save(tmp_path / "model")
    (tmp_path / "model" / "leftover.bin").write_bytes(b"from before")
    detector.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert_same_detector(type(detector).load(tmp_path / "model"), detector, data)


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
    data = frame_for(VAEAnomalyDetector)
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
