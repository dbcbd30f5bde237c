"""The detectors every contract test checks, fitted fast, and the check that two are the same model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import seasonal_series

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.base import BaseVAEDetector

DETECTORS = [VAEAnomalyDetector, TimeSeriesVAEDetector]
# Few epochs: these tests are about the contract, not about detection quality.
FAST = {
    VAEAnomalyDetector: dict(epochs=10, mc_samples=4, contamination=0.05, random_state=0),
    TimeSeriesVAEDetector: dict(window=16, epochs=5, mc_samples=4, early_weight=0.5, random_state=0),
}


def frame_for(cls: type) -> pd.DataFrame:
    """A frame for ``cls`` with an index of its own: shuffled row labels, or timestamps."""
    if cls is TimeSeriesVAEDetector:
        index = pd.date_range("2024-01-01", periods=400, freq="5min", name="time")
        return pd.DataFrame(seasonal_series(400, n_channels=2), index=index, columns=["cpu", "mem"])
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 4))
    return pd.DataFrame(values, columns=["a", "b", "c", "d"], index=rng.permutation(1000)[:300])


def fitted_fast(cls: type) -> tuple[BaseVAEDetector, pd.DataFrame]:
    """``cls`` fitted with ``FAST``'s settings on ``frame_for(cls)``, and that frame."""
    data = frame_for(cls)
    return cls(**FAST[cls]).fit(data), data


def assert_same_detector(loaded: BaseVAEDetector, original: BaseVAEDetector, data: pd.DataFrame) -> None:
    """The two score, flag, explain and threshold ``data`` alike and have the same parameters."""
    np.testing.assert_array_equal(loaded.score_samples(data), original.score_samples(data))
    np.testing.assert_array_equal(loaded.predict(data), original.predict(data))
    np.testing.assert_array_equal(loaded.explain(data), original.explain(data))
    np.testing.assert_array_equal(loaded.predict_proba(data), original.predict_proba(data))
    assert loaded.offset_ == original.offset_
    assert list(loaded.feature_names_in_) == list(original.feature_names_in_)
    assert loaded.get_params() == original.get_params()
