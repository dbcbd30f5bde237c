"""Metrics and scikit-learn scorers for anomaly labels where 1 means anomaly, for rows and time series;
the event metrics (``event_f1``, ``composite_f1``, ``range_f1``, ``events_to_flags``) live in
``event_metrics``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from vae_anomaly.event_metrics import composite_f1 as composite_f1
from vae_anomaly.event_metrics import event_f1 as event_f1
from vae_anomaly.event_metrics import events_to_flags as events_to_flags
from vae_anomaly.event_metrics import range_f1 as range_f1
from vae_anomaly.event_metrics import runs_of_ones


def _anomaly_scores(estimator: Any, X: Any) -> np.ndarray:
    # score_samples is higher for normal rows; labels are 1 for anomalies, so the score is negated. A row
    # beyond what the model can represent scores -inf there, +inf here: the scorers rank it first.
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
    return float(roc_auc_score(*_checked_labels(y, _anomaly_scores(estimator, X))))


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
    return float(average_precision_score(*_checked_labels(y, _anomaly_scores(estimator, X))))


def check_anomaly_labels(y_true: Any, n_samples: int | None = None) -> np.ndarray:
    """Labels as 1-D 0/1 ints holding both classes, or a ValueError saying what is wrong.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal samples.
    n_samples : int or None, default=None
        The length the labels must have, e.g. the rows of the data they label.

    Returns
    -------
    ndarray of shape (n_samples,), int64
    """
    labels = np.asarray(y_true)
    if labels.ndim != 1 or (n_samples is not None and len(labels) != n_samples):
        wanted = "1-D" if n_samples is None else f"1-D with one label per sample ({n_samples})"
        raise ValueError(f"The labels must be {wanted}, got shape {labels.shape}.")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(
            f"y_true must hold 0 (normal) and 1 (anomaly) only, got values {np.unique(labels)[:10]}."
        )
    labels = labels.astype(np.int64)
    if labels.sum() in (0, len(labels)):
        raise ValueError("y_true needs both anomalies (1) and normal points (0) for these metrics.")
    return labels


def _checked_labels(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as floats of the same length, or a ValueError saying why.

    A score of +inf (a value the model could not represent: the most anomalous) ranks above every
    finite score; NaN and -inf are refused.
    """
    labels = np.asarray(y_true)
    values = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or values.shape != labels.shape:
        raise ValueError(
            f"y_true and scores must be 1-D and of one length, got {labels.shape} and {values.shape}."
        )
    labels = check_anomaly_labels(labels)
    most_anomalous = np.isposinf(values)
    if not np.isfinite(values[~most_anomalous]).all():
        bad = int((~np.isfinite(values) & ~most_anomalous).sum())
        raise ValueError(f"scores contain {bad} NaN or infinite values.")
    if most_anomalous.any():
        finite = values[~most_anomalous]
        ceiling = np.nextafter(finite.max(), np.inf) if finite.size else 0.0
        values = np.where(most_anomalous, ceiling, values)
    return labels, values


def detection_metrics(y_true: Any, scores: Any, flagged: Any) -> dict[str, float]:
    """How well scores rank and flags catch labelled anomalies: the metrics logged by evaluation.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal samples.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous).
    flagged : array-like of shape (n_samples,), bool
        The detector's flags at its threshold (from ``contamination``).

    Returns
    -------
    dict
        Keys ``roc_auc``, ``pr_auc`` (average precision), and ``precision``, ``recall`` and ``f1`` of
        the flags.
    """
    labels, values = _checked_labels(y_true, scores)
    flags = np.asarray(flagged, dtype=bool)
    if flags.shape != labels.shape:
        raise ValueError(f"flagged has shape {flags.shape}, but y_true has shape {labels.shape}.")
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, flags.astype(np.int64), average="binary", zero_division=0.0
    )
    return {
        "roc_auc": float(roc_auc_score(labels, values)),
        "pr_auc": float(average_precision_score(labels, values)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def best_f1(y_true: Any, scores: Any) -> float:
    """Highest point-wise F1 over all thresholds on ``scores`` (higher = more anomalous).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal points.
    scores : array-like of shape (n_samples,)
        Anomaly scores, e.g. ``detector.anomaly_score(X)``.

    Returns
    -------
    float
    """
    labels, values = _checked_labels(y_true, scores)
    precision, recall, _ = precision_recall_curve(labels, values)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    return float(f1.max())


def point_adjusted_f1(y_true: Any, scores: Any) -> float:
    """Highest F1 over thresholds after point adjustment: one hit in an anomalous segment detects all of it.

    Point adjustment (Xu et al., 2018) counts every point of a labelled anomaly segment as found once
    any point in it crosses the threshold. It is reported because much of the literature uses it, but
    it is known to be optimistic: a random score that touches each long segment once can reach a high
    point-adjusted F1 (Kim et al., AAAI 2022). Prefer :func:`vus_pr` or :func:`best_f1` to compare
    detectors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal points.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous).

    Returns
    -------
    float
    """
    labels, values = _checked_labels(y_true, scores)
    starts, ends = runs_of_ones(labels)
    # A segment is wholly detected from the threshold of its highest score down.
    segment_peaks = np.array([values[s : e + 1].max() for s, e in zip(starts, ends, strict=True)])
    segment_sizes = ends - starts + 1
    thresholds = np.unique(values)
    normal_scores = np.sort(values[labels == 0])
    false_positives = len(normal_scores) - np.searchsorted(normal_scores, thresholds, side="left")
    by_peak = np.argsort(segment_peaks)
    sizes_from_top = np.cumsum(segment_sizes[by_peak][::-1])[::-1]
    first_detected = np.searchsorted(segment_peaks[by_peak], thresholds, side="left")
    true_positives = np.r_[sizes_from_top, 0][first_detected]
    f1 = 2 * true_positives / (2 * true_positives + false_positives + (labels.sum() - true_positives))
    return float(f1.max())


def _buffered_labels(labels: np.ndarray, starts: np.ndarray, ends: np.ndarray, buffer: int) -> np.ndarray:
    """Labels with a soft margin of buffer // 2 points each side of a segment, sqrt(1 - distance / buffer)."""
    soft = labels.astype(np.float64)
    half = buffer // 2
    if half == 0:
        return soft
    distance = np.arange(1, half + 1)
    weight = np.sqrt(1 - distance / buffer)
    for start, end in zip(starts, ends, strict=True):
        before = start - distance
        after = end + distance
        np.add.at(soft, before[before >= 0], weight[before >= 0])
        np.add.at(soft, after[after < len(soft)], weight[after < len(soft)])
    return np.minimum(soft, 1.0)


def _merged_ranges(starts: np.ndarray, ends: np.ndarray, half: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments widened by ``half`` each side, clipped to the series, overlapping ones merged."""
    wide_starts, wide_ends = np.maximum(starts - half, 0), np.minimum(ends + half, n - 1)
    new_range = np.r_[True, wide_ends[:-1] < wide_starts[1:]]
    return wide_starts[new_range], np.maximum.reduceat(wide_ends, np.flatnonzero(new_range))


def _range_curves(
    labels: np.ndarray, values: np.ndarray, max_buffer: int, n_thresholds: int
) -> tuple[float, float]:
    """Mean range-ROC-AUC and range-PR-AUC over buffers 0..max_buffer: VUS-ROC and VUS-PR."""
    n = len(labels)
    starts, ends = runs_of_ones(labels)
    n_positive = labels.sum()
    order = np.argsort(-values, kind="stable")
    descending = values[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    # Thresholds at n_thresholds evenly spaced ranks of the sorted scores; a point is flagged when its
    # score is at least the threshold, so ties are flagged together.
    thresholds = descending[np.linspace(0, n - 1, n_thresholds).astype(np.int64)]
    n_flagged = n - np.searchsorted(np.sort(values), thresholds, side="left")
    flagged_positive = np.cumsum(labels[order])[n_flagged - 1]
    roc_areas, pr_areas = [], []
    for buffer in range(max_buffer + 1):
        soft = _buffered_labels(labels, starts, ends, buffer)
        true_positive = np.cumsum(soft[order])[n_flagged - 1]
        # Buffer points count half towards the positives, so recall is neither inflated nor deflated.
        positives = n_positive + (true_positive - flagged_positive) / 2
        recall = np.minimum(true_positive / positives, 1.0)
        range_starts, range_ends = _merged_ranges(starts, ends, buffer // 2, n)
        first_flagged = np.array(
            [rank[s : e + 1].min() for s, e in zip(range_starts, range_ends, strict=True)]
        )
        existence = (first_flagged[None, :] < n_flagged[:, None]).mean(axis=1)
        tpr = np.r_[0.0, recall * existence, 1.0]
        fpr = np.r_[0.0, (n_flagged - true_positive) / (n - positives), 1.0]
        precision = true_positive / n_flagged
        roc_areas.append(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
        pr_areas.append(float(np.sum(np.diff(tpr[:-1]) * precision)))
    return float(np.mean(roc_areas)), float(np.mean(pr_areas))


def vus_roc(y_true: Any, scores: Any, max_buffer: int = 100, n_thresholds: int = 250) -> float:
    """Volume under the range-aware ROC surface (VUS-ROC), as in TSB-AD.

    Range-AUC (Paparrizos et al., "Volume Under the Surface", VLDB 2022) gives each labelled anomaly
    segment a soft margin of ``buffer // 2`` points each side, weighted sqrt(1 - distance / buffer),
    so a detection just before or after a segment earns partial credit; its true-positive rate is
    recall times the share of segments hit at all (existence reward). VUS averages the range-AUC over
    buffers 0, 1, ..., ``max_buffer``, which removes the choice of one buffer. Thresholds and formulas
    follow the reference implementation in TSB-AD (``RangeAUC_volume_opt``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal points, in time order.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous).
    max_buffer : int, default=100
        Largest buffer; TSB-AD uses 100 or the series' period.
    n_thresholds : int, default=250
        Thresholds taken at evenly spaced ranks of the sorted scores.

    Returns
    -------
    float

    References
    ----------
    .. [1] J. Paparrizos, P. Boniol, T. Palpanas, R. S. Tsay, A. Elmore and M. J. Franklin, "Volume
       Under the Surface: A New Accuracy Evaluation Measure for Time-Series Anomaly Detection",
       PVLDB 15(11), 2022.
    """
    labels, values = _checked_labels(y_true, scores)
    return _range_curves(labels, values, max_buffer, n_thresholds)[0]


def vus_pr(y_true: Any, scores: Any, max_buffer: int = 100, n_thresholds: int = 250) -> float:
    """Volume under the range-aware precision-recall surface (VUS-PR), TSB-AD's recommended metric.

    Precision at a threshold is the soft true positives over the flagged points; the area under the
    range-PR curve is averaged over buffers 0..``max_buffer``, as for :func:`vus_roc`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal points, in time order.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous).
    max_buffer : int, default=100
        Largest buffer.
    n_thresholds : int, default=250
        Thresholds taken at evenly spaced ranks of the sorted scores.

    Returns
    -------
    float

    References
    ----------
    .. [1] J. Paparrizos, P. Boniol, T. Palpanas, R. S. Tsay, A. Elmore and M. J. Franklin, "Volume
       Under the Surface: A New Accuracy Evaluation Measure for Time-Series Anomaly Detection",
       PVLDB 15(11), 2022.
    """
    labels, values = _checked_labels(y_true, scores)
    return _range_curves(labels, values, max_buffer, n_thresholds)[1]


def timeseries_metrics(y_true: Any, scores: Any, max_buffer: int = 100) -> dict[str, float]:
    """All time-series metrics at once: VUS-PR, VUS-ROC, PR-AUC, ROC-AUC, best F1 and point-adjusted F1.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal points, in time order.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous).
    max_buffer : int, default=100
        Largest buffer of the VUS metrics.

    Returns
    -------
    dict
        Keys ``vus_pr``, ``vus_roc``, ``pr_auc``, ``roc_auc``, ``best_f1``, ``point_adjusted_f1``.
    """
    labels, values = _checked_labels(y_true, scores)
    volume_roc, volume_pr = _range_curves(labels, values, max_buffer, 250)
    return {
        "vus_pr": volume_pr,
        "vus_roc": volume_roc,
        "pr_auc": float(average_precision_score(labels, values)),
        "roc_auc": float(roc_auc_score(labels, values)),
        "best_f1": best_f1(labels, values),
        "point_adjusted_f1": point_adjusted_f1(labels, values),
    }
