"""The scored table: what the MLflow model and the batch scorer return for a DataFrame of input.

``score_frame`` is the one place that turns a model's scores into output columns, so every way of
serving a model gives the same table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from vae_anomaly.bundle import final_detector

ANOMALY_SCORE = "anomaly_score"
IS_ANOMALY = "is_anomaly"
CONTRIBUTION_PREFIX = "contribution_"


def score_frame(model: Any, frame: pd.DataFrame, *, contributions: bool = False) -> pd.DataFrame:
    """Score each row (or timestamp) of ``frame``: anomaly score, flag, and optionally why.

    Parameters
    ----------
    model : fitted VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one
    frame : DataFrame
        Input as the model's ``fit`` took it.
    contributions : bool, default=False
        Add one ``contribution_<feature>`` column per feature the detector sees (after a Pipeline's
        preprocessing): that feature's share of the reconstruction term, from ``explain``.

    Returns
    -------
    DataFrame
        Indexed like ``frame``: ``anomaly_score`` (float64, higher = more anomalous) and
        ``is_anomaly`` (bool, the score is above the detector's ``anomaly_threshold_``), then the
        contributions.
    """
    detector = final_detector(model)
    features = model[:-1].transform(frame) if isinstance(model, Pipeline) else frame
    scores = detector.anomaly_score(features)
    output = pd.DataFrame(
        {ANOMALY_SCORE: scores, IS_ANOMALY: scores > detector.anomaly_threshold_}, index=frame.index
    )
    if contributions:
        shares = detector.explain(features).add_prefix(CONTRIBUTION_PREFIX)
        output = pd.concat([output, shares.set_axis(frame.index)], axis=1)
    return output
