"""The names of the scored table's columns, which every way of serving a model writes (``frames``, the
batch scorer, the numpy scorers, the MLflow model)."""

from __future__ import annotations

import numpy as np
import pandas as pd

ANOMALY_SCORE = "anomaly_score"
IS_ANOMALY = "is_anomaly"
ANOMALY_PROBABILITY = "anomaly_probability"
CONTRIBUTION_PREFIX = "contribution_"


def scored_frame(scores: np.ndarray, threshold: float, index: pd.Index) -> pd.DataFrame:
    """The scored table: ``anomaly_score`` and ``is_anomaly`` (the score is above ``threshold``).

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Anomaly scores, higher is more anomalous.
    threshold : float
        A detector's ``anomaly_threshold_``.
    index : Index
        The input's index, which the table keeps.

    Returns
    -------
    DataFrame
    """
    return pd.DataFrame({ANOMALY_SCORE: scores, IS_ANOMALY: scores > threshold}, index=index)
