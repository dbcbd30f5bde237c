"""scikit-learn's own estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from vae_anomaly import VAEAnomalyDetector


# Few epochs keep the ~40 checks fast; they test the API contract, not detection quality.
@parametrize_with_checks([VAEAnomalyDetector(epochs=3, random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
