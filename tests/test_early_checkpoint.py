"""The early checkpoint (``early_weight``): an under-fitted copy of the model scored beside the final one,
so that anomalies the model learned late in training still score high."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.scoring import score_rows
from vae_anomaly.thresholds import robust_spread


def _clustered(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1,000 normal rows near a plane in 8 dimensions, and 50 anomalies in one tight cluster off it:
    the kind of anomaly (one digit of optdigits, a defect class of MVTec) a model fitted with them in
    learns as normal."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(1000, 2)) @ rng.normal(size=(2, 8)) + 0.3 * rng.normal(size=(1000, 8))
    cluster = 2.0 * rng.normal(size=8) + 0.05 * rng.normal(size=(50, 8))
    return np.vstack([normal, cluster]), np.r_[np.zeros(1000), np.ones(50)]


@pytest.fixture(scope="module")
def clustered_fits() -> tuple[np.ndarray, np.ndarray, dict[float, VAEAnomalyDetector]]:
    x, y = _clustered(0)
    fits = {weight: VAEAnomalyDetector(early_weight=weight, random_state=0).fit(x) for weight in (0.0, 0.5)}
    return x, y, fits


def test_the_early_model_keeps_a_learned_cluster_of_anomalies_visible(clustered_fits):
    x, y, fits = clustered_fits
    auc = {weight: roc_auc_score(y, detector.anomaly_score(x)) for weight, detector in fits.items()}
    # Fitted with the cluster in, the final weights rank it as normal (0.42); the pair 0.64 (seeds 1
    # and 2: 0.53 -> 0.76, 0.70 -> 1.00).
    assert auc[0.0] < 0.5 < auc[0.5] - 0.1, auc


def test_each_score_is_the_weighted_mean_of_the_two_models_scores(clustered_fits):
    x, _, fits = clustered_fits
    detector = fits[0.5]
    rows = ((x - detector.mean_) / detector.scale_).astype(np.float32)
    final, early = (score_rows(m, rows) for m in (detector.module_, detector.early_module_))
    share = detector.early_share_
    assert 0 < share["elbo"] < 1 and 0 < share["reconstruction"] < 1
    components = detector.score_components(x)
    np.testing.assert_allclose(
        components["neg_elbo"], (1 - share["elbo"]) * final.neg_elbo + share["elbo"] * early.neg_elbo
    )
    np.testing.assert_allclose(
        components["reconstruction_error"],
        (1 - share["reconstruction"]) * final.reconstruction_error
        + share["reconstruction"] * early.reconstruction_error,
    )
    # explain's parts add up to the combined score less one baseline, as for one model
    gap = -detector.score_samples(x[:50]) - detector.explain(x[:50], shares=False).sum(axis=1).to_numpy()
    assert np.ptp(gap) < 1e-3 * np.abs(gap).max()


def test_the_early_share_gives_the_early_model_early_weight_times_the_final_ones_after_scaling():
    x, _ = _clustered(1)
    # Without held-out rows the spreads are taken over the training rows.
    detector = VAEAnomalyDetector(early_weight=0.7, epochs=20, validation_fraction=0, random_state=0).fit(x)
    rows = ((x - detector.mean_) / detector.scale_).astype(np.float32)
    final, early = (score_rows(m, rows) for m in (detector.module_, detector.early_module_))
    for kind, of in (("elbo", "neg_elbo"), ("reconstruction", "reconstruction_error")):
        share = detector.early_share_[kind]
        ratio = robust_spread(getattr(final, of)) / robust_spread(getattr(early, of))
        assert share / (1 - share) == pytest.approx(0.7 * ratio)


def test_early_weight_zero_scores_with_the_final_weights_alone(clustered_fits):
    x, _, fits = clustered_fits
    detector = fits[0.0]
    assert detector.early_module_ is None and detector.early_share_ is None
    rows = ((x - detector.mean_) / detector.scale_).astype(np.float32)
    np.testing.assert_array_equal(detector.anomaly_score(x), score_rows(detector.module_, rows).neg_elbo)


def test_a_fit_that_ends_before_the_checkpoint_keeps_no_early_model():
    x, _ = _clustered(1)
    detector = VAEAnomalyDetector(epochs=1, random_state=0).fit(x)  # the checkpoint is after epoch 1
    assert detector.early_module_ is None and detector.early_share_ is None
    longer = VAEAnomalyDetector(epochs=5, random_state=0).fit(x)
    assert longer.early_module_ is not None


def test_the_time_series_detector_scores_with_its_final_weights_by_default():
    values = np.sin(np.arange(600) / 5.0)
    assert TimeSeriesVAEDetector(window=16, epochs=5, random_state=0).fit(values).early_module_ is None
    paired = TimeSeriesVAEDetector(window=16, epochs=5, early_weight=0.5, random_state=0).fit(values)
    assert paired.early_module_ is not None
    assert np.isfinite(paired.score_samples(values)).all()
