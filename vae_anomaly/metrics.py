"""Metrics and scikit-learn scorers for anomaly labels where 1 means anomaly."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _anomaly_scores(estimator: Any, X: Any) -> np.ndarray:
    # score_samples is higher for normal rows; labels are 1 for anomalies, so the score is negated.
    return -np.asarray(estimator.score_samples(X), dtype=np.float64)


def anomaly_roc_auc_scorer(estimator: Any, X: Any, y: Any) -> float:
    """ROC-AUC of an outlier detector against labels where 1 = anomaly and 0 = normal.

    Use it as ``scoring=anomaly_roc_auc_scorer`` in ``GridSearchCV`` or ``cross_val_score``:
    ``scoring="roc_auc"`` ranks by ``decision_function``, which is high for *normal* rows, so with
    1 = anomaly labels it inverts the AUC and selects the worst model.

    Parameters
    ----------
    estimator : fitted outlier detector or Pipeline ending in one
        Anything with ``score_samples`` (higher = more normal).
    X : array-like of shape (n_samples, n_features)
        Rows to score.
    y : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal rows.

    Returns
    -------
    float
    """
    return float(roc_auc_score(y, _anomaly_scores(estimator, X)))


def anomaly_average_precision_scorer(estimator: Any, X: Any, y: Any) -> float:
    """Average precision (PR-AUC) of an outlier detector against labels where 1 = anomaly.

    Parameters
    ----------
    estimator : fitted outlier detector or Pipeline ending in one
        Anything with ``score_samples`` (higher = more normal).
    X : array-like of shape (n_samples, n_features)
        Rows to score.
    y : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal rows.

    Returns
    -------
    float
    """
    return float(average_precision_score(y, _anomaly_scores(estimator, X)))
