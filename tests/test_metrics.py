"""Time-series metrics against hand-computed cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vae_anomaly.metrics import (
    best_f1,
    composite_f1,
    detection_metrics,
    event_f1,
    events_to_flags,
    point_adjusted_f1,
    range_f1,
    timeseries_metrics,
    vus_pr,
    vus_roc,
)


def test_vus_by_hand():
    # One anomaly at t=2; max_buffer=2 averages buffers 0, 1 (both without margin) and 2 (a margin of
    # one point each side, weight sqrt(1/2)).
    labels = np.array([0, 0, 1, 0, 0, 0])
    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.05])
    # Buffers 0 and 1: the anomaly ranks second of six: ROC-AUC 0.8, AP 0.5.
    # Buffer 2: t=3 (weight 0.7071) flagged first: TPR 0.52241 at FPR 0.063036, precision 0.7071; then
    # t=2: TPR 1, precision 0.85355; range ROC-AUC 0.953429, range AP 0.777047.
    assert vus_roc(labels, scores, max_buffer=2) == pytest.approx((0.8 + 0.8 + 0.953429) / 3, abs=1e-6)
    assert vus_pr(labels, scores, max_buffer=2) == pytest.approx((0.5 + 0.5 + 0.777048) / 3, abs=1e-6)


def test_vus_without_buffer_is_the_pointwise_auc_for_a_single_point_anomaly():
    rng = np.random.default_rng(0)
    labels = np.zeros(200, dtype=int)
    labels[120] = 1
    scores = rng.normal(size=200)
    assert vus_roc(labels, scores, max_buffer=0) == pytest.approx(roc_auc_score(labels, scores))
    assert vus_pr(labels, scores, max_buffer=0) == pytest.approx(average_precision_score(labels, scores))


def test_a_perfect_score_gets_full_marks_whatever_the_buffer():
    labels = np.zeros(500, dtype=int)
    labels[100:120] = labels[300:305] = 1
    scores = labels + 0.01 * np.random.default_rng(0).random(500)
    assert vus_pr(labels, scores) == pytest.approx(1.0)
    assert vus_roc(labels, scores) > 0.95


def test_a_detection_just_before_the_segment_earns_partial_credit():
    labels = np.zeros(400, dtype=int)
    labels[200:210] = 1
    near = np.zeros(400)
    near[195] = 1.0
    far = np.zeros(400)
    far[50] = 1.0
    assert vus_pr(labels, near) > vus_pr(labels, far)
    assert average_precision_score(labels, near) == average_precision_score(labels, far)


def test_point_adjustment_is_optimistic_by_hand():
    labels = np.array([0, 1, 1, 1, 0, 0])
    scores = np.array([0.0, 0.9, 0.1, 0.1, 0.5, 0.0])
    # Point-wise, the best threshold is 0.1: precision 3/4, recall 1, F1 6/7. Point-adjusted, 0.9
    # already flags the whole segment with no false positive: F1 1.
    assert best_f1(labels, scores) == pytest.approx(6 / 7)
    assert point_adjusted_f1(labels, scores) == pytest.approx(1.0)


def test_timeseries_metrics_reports_every_metric():
    labels = np.array([0, 1, 1, 1, 0, 0])
    scores = np.array([0.0, 0.9, 0.1, 0.1, 0.5, 0.0])
    metrics = timeseries_metrics(labels, scores, max_buffer=0)
    assert set(metrics) == {"vus_pr", "vus_roc", "pr_auc", "roc_auc", "best_f1", "point_adjusted_f1"}
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "0 \\(normal\\) and 1 \\(anomaly\\) only"),
        ([0, 1], [0.1, 0.2, 0.3], "of one length"),
        ([0, 1, 0], [0.1, np.nan, 0.3], "1 NaN or infinite"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "needs both anomalies"),
    ],
)
def test_bad_labels_or_scores_are_refused(labels, scores, message):
    for metric in (vus_pr, vus_roc, best_f1, point_adjusted_f1):
        with pytest.raises(ValueError, match=message):
            metric(labels, scores)


def test_detection_metrics_by_hand():
    metrics = detection_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [False, True, False, True])
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == pytest.approx((0.5, 0.5, 0.5))


def test_detection_metrics_check_the_flags_shape():
    with pytest.raises(ValueError, match="flagged has shape"):
        detection_metrics([0, 1], [0.1, 0.9], [True])


def test_an_infinite_score_ranks_as_the_most_anomalous():
    labels = np.array([0, 0, 1, 0, 1, 0])
    scores = np.array([0.1, 0.2, np.inf, 0.3, 0.25, 0.0])
    ranked = np.where(np.isinf(scores), 10.0, scores)
    for metric in (vus_pr, vus_roc, best_f1):
        assert metric(labels, scores) == pytest.approx(metric(labels, ranked))
    assert detection_metrics(labels, scores, scores > 0.22)["roc_auc"] == pytest.approx(
        roc_auc_score(labels, ranked)
    )


# Labelled runs [1, 3] and [8, 9]; predicted runs [2, 2], [5, 6] and [11, 11].
EVENT_LABELS = np.array([0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0])
EVENT_PREDICTIONS = np.array([0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1])


def test_event_f1_counts_events_found_and_alarms_that_are_real():
    # One of two labelled events is overlapped; one of three alarms overlaps a label.
    assert event_f1(EVENT_LABELS, EVENT_PREDICTIONS) == pytest.approx(
        {"precision": 1 / 3, "recall": 1 / 2, "f1": 0.4}
    )
    assert event_f1(EVENT_LABELS, np.zeros(12, dtype=int)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_composite_f1_charges_alarms_by_their_length():
    # Event recall 1/2 as above; of the four flagged timestamps only 2 is labelled.
    assert composite_f1(EVENT_LABELS, EVENT_PREDICTIONS) == pytest.approx(
        {"precision": 1 / 4, "recall": 1 / 2, "f1": 1 / 3}
    )
    # Flagging every timestamp: event F1 is perfect, the composite score is not.
    everything = np.ones(12, dtype=int)
    assert event_f1(EVENT_LABELS, everything)["f1"] == 1.0
    assert composite_f1(EVENT_LABELS, everything) == pytest.approx(
        {"precision": 5 / 12, "recall": 1.0, "f1": 10 / 17}
    )
    assert composite_f1(EVENT_LABELS, np.zeros(12, dtype=int)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_range_f1_weighs_overlap_existence_and_cardinality():
    # Recall: [1, 3] is a third covered, [8, 9] not at all; precision: [2, 2] lies wholly in a label.
    assert range_f1(EVENT_LABELS, EVENT_PREDICTIONS) == pytest.approx(
        {"precision": 1 / 3, "recall": 1 / 6, "f1": 2 / 9}
    )
    # Existence: half the reward for being overlapped at all.
    assert range_f1(EVENT_LABELS, EVENT_PREDICTIONS, alpha=0.5)["recall"] == pytest.approx(1 / 3)
    # One label [0, 3] found as two pieces, [0, 0] and [2, 2]: half covered, by two ranges.
    labels, pieces = np.array([1, 1, 1, 1, 0, 0]), np.array([1, 0, 1, 0, 0, 0])
    assert range_f1(labels, pieces)["recall"] == pytest.approx(0.25)
    assert range_f1(labels, pieces, cardinality="one")["recall"] == pytest.approx(0.5)
    assert range_f1(labels, pieces)["precision"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.zeros(4), np.zeros(4), "y_true holds no anomaly"),
        (np.array([0, 1, 2]), np.zeros(3), r"y_true must hold 0 and 1 only, got values \[0 1 2\]"),
        (np.array([0, 1]), np.zeros(3), "y_true has 2 timestamps but y_pred has 3"),
        (np.array([[0, 1]]), np.zeros(2), r"y_true must be 1-D .* got shape \(1, 2\)"),
    ],
)
def test_event_metrics_name_bad_input(y_true, y_pred, message):
    for metric in (event_f1, composite_f1, range_f1):
        with pytest.raises(ValueError, match=message):
            metric(y_true, y_pred)


def test_events_to_flags_marks_events_or_cores():
    index = pd.date_range("2024-01-01", periods=10, freq="h")
    events = pd.DataFrame(
        {"start": [index[1]], "end": [index[5]], "core_start": [index[3]], "core_end": [index[4]]}
    )
    assert events_to_flags(events, index).tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert events_to_flags(events, index, span="core").tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"events' start .* is not in index"):
        events_to_flags(events, index[3:])
