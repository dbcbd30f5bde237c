"""Same scores after every round trip; safe model files refuse tampering and newer formats."""

from __future__ import annotations

import json
import pickle

import joblib
import numpy as np
import pytest

from vae_anomaly import ModelFileError, VAEAnomalyDetector
from vae_anomaly.persistence import CONFIG_FILE, WEIGHTS_FILE


@pytest.fixture(scope="module")
def fitted(planted_frame) -> VAEAnomalyDetector:
    return VAEAnomalyDetector(epochs=10, mc_samples=4, contamination=0.05, random_state=0).fit(planted_frame)


def _assert_same_detector(loaded, original, frame):
    np.testing.assert_array_equal(loaded.score_samples(frame), original.score_samples(frame))
    np.testing.assert_array_equal(loaded.predict(frame), original.predict(frame))
    np.testing.assert_array_equal(loaded.explain(frame), original.explain(frame))
    assert loaded.offset_ == original.offset_
    assert list(loaded.feature_names_in_) == list(original.feature_names_in_)
    assert loaded.get_params() == original.get_params()


def test_scores_are_deterministic(fitted, planted_frame):
    np.testing.assert_array_equal(fitted.score_samples(planted_frame), fitted.score_samples(planted_frame))


def test_repeated_fits_give_identical_models(planted_frame, fitted):
    refit = VAEAnomalyDetector(**fitted.get_params()).fit(planted_frame)
    np.testing.assert_array_equal(refit.score_samples(planted_frame), fitted.score_samples(planted_frame))


def test_save_load_round_trip(fitted, planted_frame, tmp_path):
    fitted.save(tmp_path / "model")
    _assert_same_detector(VAEAnomalyDetector.load(tmp_path / "model"), fitted, planted_frame)


@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads)])
def test_pickle_round_trip(fitted, planted_frame, dumps, loads):
    _assert_same_detector(loads(dumps(fitted)), fitted, planted_frame)


def test_joblib_round_trip(fitted, planted_frame, tmp_path):
    joblib.dump(fitted, tmp_path / "model.joblib")
    _assert_same_detector(joblib.load(tmp_path / "model.joblib"), fitted, planted_frame)


def test_saved_weights_are_not_pickle(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert config["estimator"] == "VAEAnomalyDetector"
    assert config["params"]["hidden_dims"] == list(fitted.hidden_dims)


def test_tampered_weights_are_refused(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    weights = tmp_path / "model" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match the checksum"):
        VAEAnomalyDetector.load(tmp_path / "model")


def _edit_config(folder, edit):
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def test_newer_format_version_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c.update(format_version=99))
    with pytest.raises(ModelFileError, match=r"format version 99.*upgrade vae-anomaly"):
        VAEAnomalyDetector.load(tmp_path / "model")


def test_config_inconsistent_with_weights_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c["params"].update(latent_dim=3))
    with pytest.raises(ModelFileError, match="does not describe a valid VAEAnomalyDetector"):
        VAEAnomalyDetector.load(tmp_path / "model")


def test_invalid_parameter_in_config_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    _edit_config(tmp_path / "model", lambda c: c["params"].update(score_method="pickle"))
    with pytest.raises(ModelFileError, match="score_method"):
        VAEAnomalyDetector.load(tmp_path / "model")


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(ModelFileError, match="is not a saved vae-anomaly model"):
        VAEAnomalyDetector.load(tmp_path / "nowhere")


def test_unfitted_detector_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VAEAnomalyDetector().save(tmp_path / "model")
