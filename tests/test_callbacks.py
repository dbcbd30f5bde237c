"""Fit callbacks: what a registered callback receives, and that it stops when unregistered."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Recorder

from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.callbacks import register_callback, registered_callbacks, unregister_callback


def test_callback_sees_start_every_epoch_and_the_training_scores(planted, recorder):
    x, _ = planted
    detector = VAEAnomalyDetector(epochs=4, random_state=0).fit(x)
    kinds = [event[0] for event in recorder.events]
    assert kinds == ["start", "epoch", "epoch", "epoch", "epoch", "end"]
    assert [event[1] for event in recorder.events[1:5]] == [1, 2, 3, 4]
    _, passed_x, scores = recorder.events[-1]
    assert passed_x is x
    np.testing.assert_array_equal(scores, detector.anomaly_score(x))


def test_callback_error_reaches_every_callback_and_the_caller(planted):
    failing, watching = Recorder(fail_at_epoch=2), Recorder()
    register_callback(failing)
    register_callback(watching)
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            VAEAnomalyDetector(epochs=4, random_state=0).fit(planted[0])
    finally:
        unregister_callback(failing)
        unregister_callback(watching)
    assert watching.events[-1][0] == "error"
    assert str(watching.events[-1][1]) == "stop here"


def test_unregistered_callback_hears_nothing(planted):
    callback = Recorder()
    register_callback(callback)
    register_callback(callback)
    assert registered_callbacks().count(callback) == 1
    unregister_callback(callback)
    VAEAnomalyDetector(epochs=2, random_state=0).fit(planted[0])
    assert callback.events == []


def test_anomaly_threshold_separates_predicted_outliers(planted):
    x, _ = planted
    detector = VAEAnomalyDetector(epochs=5, contamination=0.05, random_state=0).fit(x)
    flagged = detector.anomaly_score(x) > detector.anomaly_threshold_
    np.testing.assert_array_equal(flagged, detector.predict(x) == -1)
    assert flagged.any()
