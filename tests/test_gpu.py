"""CUDA training and scoring (marked gpu: they run where torch sees a CUDA device and skip elsewhere).

On such a machine ``test_estimator_checks.py`` also runs scikit-learn's checks with scoring on CUDA,
``check_methods_subset_invariance`` among them.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector

pytestmark = pytest.mark.gpu
# float32 on two devices: the same sums in another order.
DEVICE_RTOL = 1e-4


@pytest.fixture(scope="module")
def cuda_fitted(planted):
    return VAEAnomalyDetector(device="cuda", epochs=20, random_state=0).fit(planted[0])


def test_a_cuda_fit_trains_under_bf16_and_keeps_the_model_on_the_cpu(cuda_fitted, planted):
    assert next(cuda_fitted.module_.parameters()).device.type == "cpu"
    assert np.isfinite([record["loss"] for record in cuda_fitted.history_]).all()
    assert np.isfinite(cuda_fitted.score_samples(planted[0])).all()


def _on(detector, device):
    """The fitted detector, set to score on ``device`` (a shallow copy: the fixture keeps its setting)."""
    return copy.copy(detector).set_params(scoring_device=device)


def test_scores_on_the_gpu_equal_scores_on_the_cpu(cuda_fitted, planted):
    on_gpu = _on(cuda_fitted, "cuda").score_samples(planted[0])
    np.testing.assert_allclose(on_gpu, _on(cuda_fitted, "cpu").score_samples(planted[0]), rtol=DEVICE_RTOL)


def test_a_cuda_trained_model_loads_and_scores_without_cuda(cuda_fitted, planted, tmp_path):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(cuda_fitted))
    np.save(tmp_path / "x.npy", planted[0])
    script = (
        "import pickle, sys, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        f"model = pickle.loads(open({str(tmp_path / 'model.pkl')!r}, 'rb').read())\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'scores.npy')!r}, model.score_samples(x))\n"
    )
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
    assert done.returncode == 0, done.stderr
    expected = _on(cuda_fitted, "cpu").score_samples(planted[0])
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), expected, rtol=DEVICE_RTOL)


def test_cuda_fits_with_one_random_state_agree(cuda_fitted, planted):
    again = VAEAnomalyDetector(device="cuda", epochs=20, random_state=0).fit(planted[0])
    np.testing.assert_allclose(
        again.score_samples(planted[0]), cuda_fitted.score_samples(planted[0]), rtol=1e-5
    )


def test_a_series_trains_and_scores_on_cuda(seasonal):
    detector = TimeSeriesVAEDetector(window=32, epochs=10, device="cuda", random_state=0).fit(seasonal[:2000])
    on_gpu = detector.score_samples(seasonal)
    on_cpu = _on(detector, "cpu").score_samples(seasonal)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=DEVICE_RTOL)


def test_a_cuda_fit_finds_planted_anomalies_as_well_as_a_cpu_fit(planted):
    # Default settings: epochs="auto" with early stopping, as a user fits.
    cuda_default = VAEAnomalyDetector(device="cuda", random_state=0).fit(planted[0])
    cpu_fitted = VAEAnomalyDetector(device="cpu", random_state=0).fit(planted[0])
    cuda_auc = roc_auc_score(planted[1], -cuda_default.score_samples(planted[0]))
    assert cuda_auc > 0.99
    assert cuda_auc >= roc_auc_score(planted[1], -cpu_fitted.score_samples(planted[0])) - 0.01


@pytest.mark.parametrize("n_rows", [3, 40, 700])
def test_cuda_fits_capture_the_step_whatever_the_number_of_steps_per_epoch(planted, n_rows):
    # 3 rows: one step per epoch, the capture falls in epoch 4; 700 rows: two steps, a padded last batch.
    detector = VAEAnomalyDetector(
        device="cuda", epochs=6, batch_size=512, validation_fraction=0, random_state=0
    )
    detector.fit(planted[0][:n_rows])
    losses = [record["loss"] for record in detector.history_]
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert np.isfinite(detector.score_samples(planted[0])).all()


def test_missing_values_train_on_cuda(planted):
    x = planted[0].copy()
    x[::7, 2] = np.nan
    detector = VAEAnomalyDetector(device="cuda", missing="skip", random_state=0).fit(x)
    assert np.isfinite(detector.score_samples(x)).all()
    assert roc_auc_score(planted[1], -detector.score_samples(x)) > 0.99
