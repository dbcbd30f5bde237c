"""Missing values: refused by default with the way to skip them, left out of the scores and the
explanations when skipped, and hidden in training as Donut hides them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from vae_anomaly import VAEAnomalyDetector


@pytest.fixture(scope="module")
def with_gaps(planted):
    """The planted rows with one value missing in 100 normal rows, and a detector that skips gaps."""
    x, y = planted
    rng = np.random.default_rng(1)
    gapped = rng.choice(np.flatnonzero(y == 0), 100, replace=False)
    x = x.copy()
    x[gapped, rng.integers(0, x.shape[1], len(gapped))] = np.nan
    return x, y, gapped, VAEAnomalyDetector(missing="skip", random_state=0).fit(x)


def test_scores_do_not_depend_on_the_memory_layout_of_x():
    x = np.random.default_rng(0).normal(size=(20_000, 32))
    x[::100, 3] = np.nan
    detector = VAEAnomalyDetector(missing="skip", epochs=1, random_state=0).fit(x)
    row_major = detector.score_components(np.ascontiguousarray(x))
    column_major = detector.score_components(np.asfortranarray(x))  # as pandas hands its columns over
    pd.testing.assert_frame_equal(column_major, row_major, check_exact=True)


def test_missing_values_are_refused_by_default_with_the_way_to_skip_them(planted):
    x = planted[0].copy()
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"column 2: NaN in 1 row\(s\), first at row 3.*missing='skip'"):
        VAEAnomalyDetector(epochs=1).fit(x)


def test_rows_with_a_missing_value_are_not_flagged_for_it(with_gaps):
    x, y, gapped, detector = with_gaps
    flagged = detector.predict(x) == -1
    complete_normal = np.setdiff1d(np.flatnonzero(y == 0), gapped)
    assert flagged[gapped].mean() <= max(0.05, 2 * flagged[complete_normal].mean())
    assert roc_auc_score(y, detector.anomaly_score(x)) > 0.95


def test_a_missing_value_has_no_part_in_the_explanation(with_gaps):
    x, _, gapped, detector = with_gaps
    shares = detector.explain(x[gapped]).to_numpy()
    assert (shares[np.isnan(x[gapped])] == 0).all()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_the_explanation_of_a_row_with_a_gap_leaves_the_same_baseline(with_gaps):
    x, _, gapped, detector = with_gaps
    residual = detector.anomaly_score(x) - detector.explain(x, shares=False).to_numpy().sum(axis=1)
    complete = np.setdiff1d(np.arange(len(x)), gapped)
    # The decoder's normalizer counts every feature, observed or not, so the baseline is one number.
    assert abs(residual[gapped].mean() - residual[complete].mean()) < 1e-3 * detector.anomaly_score(x).std()
    assert residual.std() < 1e-3 * detector.anomaly_score(x).std()


def test_score_components_count_the_missing_values(with_gaps):
    x, _, _, detector = with_gaps
    components = detector.score_components(x)
    np.testing.assert_array_equal(components["missing"], np.isnan(x).sum(axis=1))
    assert np.isfinite(components.drop(columns="missing").to_numpy()).all()


def test_infinite_values_are_refused_even_when_missing_values_are_skipped(planted):
    x = planted[0].copy()
    x[5, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinite values.*column 1: inf in 1 row\(s\), first at row 5"):
        VAEAnomalyDetector(missing="skip", epochs=1).fit(x)


def test_a_column_with_no_observed_value_is_named(planted_frame):
    frame = planted_frame.assign(f5=np.nan)
    with pytest.raises(ValueError, match=r"Columns \['f5'\] have no observed values"):
        VAEAnomalyDetector(missing="skip", epochs=1).fit(frame)


def _correlated(n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows where d = a + b and f = c - e, plus 1% noise on d."""
    a, b, c, e = rng.normal(size=(4, n_rows))
    return np.column_stack([a, b, a + b + 0.01 * rng.normal(size=n_rows), c, e, c - e])


@pytest.fixture(scope="module")
def correlated_fits() -> tuple[np.ndarray, dict[object, VAEAnomalyDetector]]:
    """New rows where d = a + b, and detectors fitted with the defaults and with neither hidden values
    in training nor refilled gaps in scoring."""
    rng = np.random.default_rng(0)
    train, new = _correlated(3000, rng), _correlated(1000, rng)
    fits = {
        injection: VAEAnomalyDetector(
            missing="skip",
            gap_injection=injection,
            gap_fill="reconstruction" if injection else "mean",
            random_state=0,
        ).fit(train)
        for injection in ("auto", 0.0)
    }
    return new, fits


@pytest.mark.parametrize("blanked", [0, 2], ids=["a", "d"])
def test_a_gap_in_a_correlated_feature_is_not_flagged_for_itself(correlated_fits, blanked):
    new, fits = correlated_fits
    gapped = new.copy()
    gapped[:, blanked] = np.nan
    flagged = {
        injection: ((detector.predict(gapped) == -1).mean(), (detector.predict(new) == -1).mean())
        for injection, detector in fits.items()
    }
    with_gap, complete = flagged["auto"]
    # The threshold aims at 0.5% of new rows, so these are counts of a few rows in 1,000: within a
    # percentage point of the complete rows' rate (benchmarks/missing.py over seeds 0-2: 0.2% and 0.3%
    # with a gap against 0.4% complete; seed 0 here: 0.9% for a, 0.4% complete).
    assert with_gap <= min(0.02, complete + 0.01), flagged
    # The encoder that never saw a gap is misled by the column mean.
    assert flagged[0.0][0] > 0.3, flagged


def test_hidden_values_are_marked_missing_and_set_to_the_mean():
    from vae_anomaly.model import hide_values

    batch = torch.arange(1.0, 7.0).reshape(2, 3)
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    keep = torch.tensor([[True, True, False], [False, True, True]])
    hidden, hidden_mask = hide_values(batch * mask, mask, keep)
    np.testing.assert_array_equal(hidden_mask, [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(hidden, [[1, 0, 0], [0, 5, 6]])
    np.testing.assert_array_equal(hide_values(batch, None, keep)[1], keep.float())


def test_a_row_with_no_observed_value_is_refused_by_name(with_gaps):
    x, _, _, detector = with_gaps
    empty = x[:12].copy()
    empty[[3, 8]] = np.nan
    message = r"2 row\(s\) with no observed value, every feature missing \(row 3, 8\)"
    with pytest.raises(ValueError, match=message):
        detector.score_samples(empty)
    with pytest.raises(ValueError, match=message):
        VAEAnomalyDetector(missing="skip", epochs=1).fit(np.vstack([empty, x]))
