"""Metrics over anomaly events, not points: is each labelled anomaly found, and is each alarm real?

Both take the labels and the predictions as 0/1 per timestamp, in time order; a run of 1s is one
event (``events_to_flags`` turns ``TimeSeriesVAEDetector.events`` into such flags). They are
re-exported by ``vae_anomaly.metrics``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd


def runs_of_ones(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index (inclusive) of each run of 1s in a 0/1 array.

    Parameters
    ----------
    flags : ndarray of shape (n,), 0/1

    Returns
    -------
    starts, ends : ndarray of int
    """
    edges = np.diff(np.r_[0, flags, 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def _runs(flags: np.ndarray) -> np.ndarray:
    """The runs of 1s as rows ``(first, last)`` of an (n_runs, 2) array."""
    return np.column_stack(runs_of_ones(flags))


def _checked_flags(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """The labels and the predictions as int64 arrays, or a ValueError naming what is wrong with them."""
    arrays = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one 0/1 per timestamp), got shape {array.shape}.")
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must hold 0 and 1 only, got values {np.unique(array)[:10]}.")
        arrays.append(array.astype(np.int64))
    if len(arrays[0]) != len(arrays[1]):
        raise ValueError(f"y_true has {len(arrays[0])} timestamps but y_pred has {len(arrays[1])}.")
    if not arrays[0].any():
        raise ValueError("y_true holds no anomaly (no 1): there is no event to find.")
    return arrays[0], arrays[1]


def _checked_runs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """The labelled and the predicted runs, or a ValueError naming what is wrong with the inputs."""
    labels, predictions = _checked_flags(y_true, y_pred)
    return _runs(labels), _runs(predictions)


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _overlap_counts(runs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each run, how many of ``others`` share at least one timestamp with it."""
    if not len(others):
        return np.zeros(len(runs), dtype=np.int64)
    # others are sorted and disjoint: those starting at or before a run's end, less those ending before it.
    return np.searchsorted(others[:, 0], runs[:, 1], side="right") - np.searchsorted(
        others[:, 1], runs[:, 0], side="left"
    )


def _event_recall(labelled: np.ndarray, predicted: np.ndarray) -> float:
    """The share of the labelled runs that a predicted run overlaps."""
    return float(np.mean(_overlap_counts(labelled, predicted) > 0))


def event_f1(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Event-wise precision, recall and F1: an event is found if any alarm overlaps it.

    Recall is the share of labelled events (runs of 1s in ``y_true``) that at least one predicted
    event (a run of 1s in ``y_pred``) overlaps; precision is the share of predicted events that
    overlap at least one labelled event. Unlike point-wise F1 a long labelled window counts once,
    and unlike point adjustment every false alarm counts. But an alarm that never ends counts once
    too: flagging every timestamp scores 1. Read it beside :func:`composite_f1` or
    :func:`range_f1`, or the share of unlabelled timestamps flagged.

    Parameters
    ----------
    y_true : array-like of shape (n_timestamps,)
        1 inside labelled anomalies, else 0; at least one 1.
    y_pred : array-like of shape (n_timestamps,)
        1 inside predicted events, else 0.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (precision is 0 without any predicted event).
    """
    labelled, predicted = _checked_runs(y_true, y_pred)
    recall = _event_recall(labelled, predicted)
    precision = float(np.mean(_overlap_counts(predicted, labelled) > 0)) if len(predicted) else 0.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def composite_f1(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Point-wise precision with event-wise recall, and their F1 (Garg et al.'s composite F-score).

    Recall is :func:`event_f1`'s: the share of labelled events that an alarm overlaps. Precision is
    the share of flagged timestamps that are labelled, so flagging what is normal costs by its
    length: flagging every timestamp scores the labelled share as precision, where
    :func:`event_f1` gives it 1.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_timestamps,)
        The labels and the predictions, as for :func:`event_f1`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (precision is 0 without any flagged timestamp).

    References
    ----------
    .. [1] A. Garg, W. Zhang, J. Samaran, R. Savitha and C.-S. Foo, "An Evaluation of Anomaly
       Detection and Diagnosis in Multivariate Time Series", IEEE Transactions on Neural Networks
       and Learning Systems, 2021.
    """
    labels, predictions = _checked_flags(y_true, y_pred)
    recall = _event_recall(_runs(labels), _runs(predictions))
    flagged = int(predictions.sum())
    precision = float((labels & predictions).sum() / flagged) if flagged else 0.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def _range_scores(
    runs: np.ndarray, others: np.ndarray, alpha: float, cardinality: Literal["one", "reciprocal"]
) -> np.ndarray:
    """Tatbul et al.'s score of each run against ``others``, with the flat positional bias."""
    scores = np.zeros(len(runs))
    counts = _overlap_counts(runs, others)
    for k, (first, last) in enumerate(runs):
        if counts[k] == 0:
            continue
        ends = np.minimum(others[:, 1], last) - np.maximum(others[:, 0], first) + 1
        overlap = float(np.clip(ends, 0, None).sum()) / (last - first + 1)
        factor = 1.0 if cardinality == "one" else 1.0 / counts[k]
        scores[k] = alpha + (1 - alpha) * overlap * factor
    return scores


def range_f1(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.0,
    cardinality: Literal["one", "reciprocal"] = "reciprocal",
) -> dict[str, float]:
    """Range-based precision, recall and F1 (Tatbul et al., NeurIPS 2018), with the flat positional bias.

    Each labelled range R gets ``alpha`` for being overlapped at all (existence) plus ``1 - alpha``
    times the share of its timestamps that predicted ranges cover, times the cardinality factor (1,
    or 1 / the number of predicted ranges that overlap it: one anomaly reported as many pieces counts
    less); recall is the mean over labelled ranges. Precision is the same for each predicted range
    against the labels, without the existence reward (as in the paper). A range that nothing
    overlaps scores 0.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_timestamps,)
        The labels and the predictions, as for :func:`event_f1`.
    alpha : float in [0, 1], default=0.0
        Weight of the existence reward in recall.
    cardinality : {"one", "reciprocal"}, default="reciprocal"
        The cardinality factor.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (precision is 0 without any predicted range).

    References
    ----------
    .. [1] N. Tatbul, T. J. Lee, S. Zdonik, M. Alam and J. Gottschlich, "Precision and Recall for Time
       Series", NeurIPS 2018.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha!r}.")
    if cardinality not in ("one", "reciprocal"):
        raise ValueError(f"cardinality must be 'one' or 'reciprocal', got {cardinality!r}.")
    labelled, predicted = _checked_runs(y_true, y_pred)
    recall = float(_range_scores(labelled, predicted, alpha, cardinality).mean())
    precision = float(_range_scores(predicted, labelled, 0.0, cardinality).mean()) if len(predicted) else 0.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def events_to_flags(events: pd.DataFrame, index: Any, span: Literal["event", "core"] = "event") -> np.ndarray:
    """0/1 per timestamp of ``index``: 1 inside the events of ``TimeSeriesVAEDetector.events``.

    Parameters
    ----------
    events : DataFrame
        The table ``events`` returned for a series with this index.
    index : pandas.Index or int
        The series' timestamps (``X.index``), or its length when ``events`` holds positions.
    span : {"event", "core"}, default="event"
        Mark each event from ``start`` to ``end``, or only its core (``core_start`` to ``core_end``).

    Returns
    -------
    ndarray of shape (n_timestamps,), int64
    """
    if span not in ("event", "core"):
        raise ValueError(f"span must be 'event' or 'core', got {span!r}.")
    times = pd.RangeIndex(index) if isinstance(index, int) else pd.Index(index)
    first, last = ("start", "end") if span == "event" else ("core_start", "core_end")
    flags = np.zeros(len(times), dtype=np.int64)
    for name in (first, last):
        missing = ~pd.Index(events[name]).isin(times)
        if missing.any():
            value = events[name].iloc[int(np.argmax(missing))]
            raise ValueError(f"events' {name} {value!r} is not in index.")
    for start, end in zip(times.get_indexer(events[first]), times.get_indexer(events[last]), strict=True):
        flags[start : end + 1] = 1
    return flags
