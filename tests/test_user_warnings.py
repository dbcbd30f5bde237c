"""The package's warnings point at the user's line, however deep the call that raised them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import ShortSeriesWarning, TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.pipelines import timeseries_pipeline
from vae_anomaly.time_index import IrregularSamplingWarning


def _uneven_series() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=400, freq="min").delete(list(range(100, 160)))
    return pd.DataFrame({"v": np.sin(np.arange(len(index)) / 5.0)}, index=index)


def _raised(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


@pytest.mark.parametrize(
    ("call", "category"),
    [
        (lambda: TimeSeriesVAEDetector(window=16, epochs=1).fit(_uneven_series()), IrregularSamplingWarning),
        (lambda: timeseries_pipeline(window=16, epochs=1).fit(_uneven_series()), IrregularSamplingWarning),
        (lambda: VAEAnomalyDetector(epochs=1).fit(np.eye(9)), UserWarning),  # too few rows to hold out
        (
            lambda: TimeSeriesVAEDetector(window=16, epochs=1).fit(np.sin(np.arange(100) / 5.0)),
            ShortSeriesWarning,
        ),
    ],
    ids=["fit", "a Pipeline's fit", "a table's fit", "a short series' fit"],
)
def test_a_warning_from_fit_points_at_the_callers_line(call, category):
    raised = [w for w in _raised(call) if issubclass(w.category, category)]
    assert raised and all(w.filename == __file__ for w in raised), [(w.filename, w.lineno) for w in raised]


def test_a_warning_from_scoring_points_at_the_callers_line():
    series = _uneven_series()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = TimeSeriesVAEDetector(window=16, epochs=1, random_state=0).fit(series)
    raised = [
        w for w in _raised(lambda: detector.score_samples(series)) if w.category is IrregularSamplingWarning
    ]
    assert raised and all(w.filename == __file__ for w in raised)
