"""The outlier threshold and the anomaly probability, both set from the scores of samples held out of
training (or, where none were, of the training samples), and the methods a detector answers with them
(``ThresholdedScores``: ``predict``, ``decision_function``, ``predict_proba``, ...)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import scipy.special
from sklearn.utils.validation import check_is_fitted

# Tukey's upper fence: contamination="auto" flags training scores above Q3 + 1.5 * IQR, where the
# threshold is set on the training samples' scores (offset_from).
AUTO_FENCE_IQR_MULTIPLE = 1.5
# contamination="auto" flags the anomaly scores that this share of samples like the held-out ones
# would exceed: the false-alarm rate on clean new data (benchmarks/RESULTS.md, issue 31).
AUTO_FALSE_ALARM_RATE = 0.005
# Where fewer than this many held-out scores are expected above the threshold, their empirical
# quantile is mostly noise, so the threshold is extrapolated from an exponential tail fitted to the
# highest TAIL_SHARE of them (at least TAIL_MIN_EXCEEDANCES scores): peaks over a threshold, as SPOT
# (Siffer et al., KDD 2017) does, with the generalized Pareto's shape fixed at 0, which few points can
# estimate.
TAIL_MIN_EXCEEDANCES = 5
TAIL_SHARE = 0.1
# Where not even one held-out score is expected above the threshold (rate x scores < 1), it lies past
# every score the held-out samples give, where their tail's shape is unseen; it is then extrapolated
# from a Pareto tail (an exponential tail of the log of the excess over the median), which assumes the
# heavier tail: new rows of small, wide tables lie farther out than an exponential tail of 20-40
# held-out scores reaches (benchmarks/RESULTS.md, issue 31). Its shape, estimated from 5-20 scores, can
# put the threshold thousands of times the held-out scores' spread past them (38,863x on one draw of a
# 200-row table), so it lies at most PARETO_MAX_REACH times the highest score's excess over the median
# above the median. Measured at 3, 5 and 10 on the halves of the dev tables: 3 left a set over 3% of
# clean new rows on each half, 5 and 10 none; 10, farther from that edge, is the one kept.
PARETO_MAX_REACH = 10.0
# Scores are sums of float32 terms, alike to about this relative precision for samples that differ by
# rounding alone. A threshold that falls on tied scores with no spread (a constant training series)
# lies this far above them, so that a rounding difference (another device, a refilled gap) does not
# cross it.
TIE_MARGIN = 1e-5


def _above_ties(threshold: float) -> float:
    return threshold + TIE_MARGIN * max(1.0, abs(threshold))


def anomaly_threshold_from(held_out_scores: np.ndarray, contamination: float | Literal["auto"]) -> float:
    """The anomaly score that a share ``contamination`` of new samples like ``held_out_scores`` exceed.

    With at least ``TAIL_MIN_EXCEEDANCES`` scores expected above it, it is their empirical quantile.
    Otherwise it is extrapolated: u, the empirical quantile of the highest ``TAIL_SHARE`` (at least
    ``TAIL_MIN_EXCEEDANCES`` scores, at most half), plus c * lambda * log(share / rate), where lambda
    is the mean excess of the scores above u (an exponential tail) and c >= 1 makes the rate hold on
    average over the draw of the held-out scores (``_predictive_tail_factor``). Where fewer than one
    score is expected above it (past the highest), the same is done on the log of the scores' excess
    over their median, a Pareto tail, which lies farther out than the exponential one on light tails,
    though at most ``PARETO_MAX_REACH`` times the highest score's excess over the median above it.

    Parameters
    ----------
    held_out_scores : ndarray of shape (n_samples,)
        ``anomaly_score`` of samples the model did not train on.
    contamination : float in (0, 0.5] or "auto"
        The share of such samples to flag; "auto" is ``AUTO_FALSE_ALARM_RATE``.

    Returns
    -------
    float
        Samples whose ``anomaly_score`` is above it are outliers.
    """
    scores = np.sort(np.asarray(held_out_scores, dtype=np.float64))
    rate = AUTO_FALSE_ALARM_RATE if contamination == "auto" else float(contamination)
    share = min(max(TAIL_SHARE, TAIL_MIN_EXCEEDANCES / len(scores)), 0.5)
    if rate * len(scores) >= TAIL_MIN_EXCEEDANCES or rate >= share:
        threshold = float(np.quantile(scores, 1.0 - rate))
        return _above_ties(threshold) if threshold == scores[-1] else threshold
    base = float(np.quantile(scores, 1.0 - share))
    tail = scores[scores > base]
    if not tail.size:
        return _above_ties(base)
    factor = _predictive_tail_factor(tail.size, float(np.log(share / rate)))
    median = float(np.median(scores))
    if rate * len(scores) < 1.0 and base > median:  # past the highest score: the heavier tail
        log_excess = np.log(tail - median) - np.log(base - median)
        most = PARETO_MAX_REACH * (scores[-1] - median)
        # On the log scale, so that a shape far too heavy reaches the bound without overflowing exp.
        log_reach = min(float(log_excess.mean()) * factor, float(np.log(most / (base - median))))
        return median + (base - median) * float(np.exp(log_reach))
    return base + float((tail - base).mean()) * factor


def _predictive_tail_factor(n_excesses: int, log_ratio: float) -> float:
    """How many mean excesses above the tail's base the threshold lies, c * L with L = log(share /
    rate), so that new samples exceed it at the asked rate on average over the draw of the held-out
    scores, not only under the fitted tail.

    With the n excesses exponential of mean lambda, their mean m is Gamma(n, lambda / n); a new tail
    sample exceeds base + c * m * L with probability exp(-c * m * L / lambda), whose mean over m is
    (1 + c * L / n) ** -n. Setting it to exp(-L) gives c * L = n (exp(L / n) - 1), so c > 1: the
    plug-in threshold (c = 1) flags more than the rate on average, most where few scores lie in the
    tail (c = 1.47 for 26 held-out scores at the "auto" rate; 1.02 for 800).
    """
    return n_excesses * float(np.expm1(log_ratio / n_excesses))


def offset_from(training_scores: np.ndarray, contamination: float | Literal["auto"]) -> float:
    """The threshold on ``score_samples`` (higher is more normal) that ``contamination`` asks for, set
    on the training samples' own scores: where nothing was held out of training (see
    :func:`anomaly_threshold_from` for held-out scores).

    Parameters
    ----------
    training_scores : ndarray of shape (n_samples,)
        ``score_samples`` of the training samples.
    contamination : float in (0, 0.5] or "auto"
        A float flags that fraction of them (at least one); "auto" flags the anomaly scores above
        Tukey's upper fence, Q3 + 1.5 * IQR.

    Returns
    -------
    float
        Samples whose ``score_samples`` is below it are outliers.
    """
    ordered = np.sort(training_scores)
    if contamination == "auto":
        q1, q3 = np.percentile(-ordered, [25, 75])
        return float(-(q3 + AUTO_FENCE_IQR_MULTIPLE * (q3 - q1) if q3 > q1 else _above_ties(float(q3))))
    n_flagged = min(max(1, round(contamination * len(ordered))), len(ordered))
    if n_flagged == len(ordered):
        return float(np.nextafter(ordered[-1], np.inf))
    # Midway between the last flagged and the first kept score: exactly n_flagged rows fall below.
    return float((ordered[n_flagged - 1] + ordered[n_flagged]) / 2)


def offset_over_phases(score_sets: Iterable[np.ndarray], contamination: float | Literal["auto"]) -> float:
    """The lowest :func:`offset_from` over sets of samples' scores, each scored with the model rows
    cut at one or more phases (e.g. a series' windows started at each step of the stride): the
    highest threshold, which holds for every set at whichever phase new data is cut.

    Parameters
    ----------
    score_sets : iterable of ndarray of shape (n_phases, n_samples)
        ``score_samples`` of each set of samples (e.g. the training samples), a row per phase.
    contamination : float in (0, 0.5] or "auto"
        As for :func:`offset_from`.

    Returns
    -------
    float
    """
    return min(offset_from(scores, contamination) for rows in score_sets for scores in rows)


def robust_spread(scores: np.ndarray) -> float:
    """The spread of scores as a standard deviation would be for normal data: IQR / 1.349, else their
    standard deviation, else 1 (all equal)."""
    finite = scores[np.isfinite(scores)]
    q1, q3 = np.percentile(finite, [25, 75]) if finite.size else (0.0, 0.0)
    for spread in ((q3 - q1) / 1.349, float(np.std(finite)) if finite.size else 0.0):
        if spread > 0:
            return float(spread)
    return 1.0


def probability_of_anomaly(anomaly_scores: np.ndarray, threshold: float, spread: float) -> np.ndarray:
    """Phi((s - threshold) / spread): 0.5 at the threshold, growing with the anomaly score s.

    Parameters
    ----------
    anomaly_scores : ndarray of shape (n_samples,)
    threshold : float
        The anomaly score above which samples are flagged.
    spread : float
        A detector's ``score_scale_``: the :func:`robust_spread` of a table's held-out scores (else
        its training scores), of a series' training scores.

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    standardized = (np.asarray(anomaly_scores, dtype=np.float64) - threshold) / spread
    return 0.5 * scipy.special.erfc(-standardized / np.sqrt(2.0))


class ThresholdedScores:
    """``score_samples``, ``decision_function``, ``predict`` and ``predict_proba`` of a detector, from its
    ``anomaly_score``, its fitted ``offset_`` (minus :func:`anomaly_threshold_from`) and ``score_scale_``
    (see :func:`robust_spread`)."""

    offset_: float
    score_scale_: float

    @abstractmethod
    def anomaly_score(self, X: Any, kind: Any = None) -> np.ndarray:
        """Anomaly score of each sample: higher is more anomalous."""

    @property
    def anomaly_threshold_(self) -> float:
        """Samples whose ``anomaly_score`` is above this are predicted outliers (it is ``-offset_``)."""
        check_is_fitted(self, "offset_")
        return -self.offset_

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality score of each sample: higher is more normal (the negated ``anomaly_score``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """Label each sample +1 (inlier) or -1 (outlier).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to label: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples,), int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability that each sample is normal (column 0) and anomalous (column 1).

        The anomaly probability is Phi((s - t) / scale): s is the sample's ``anomaly_score``, t the
        ``anomaly_threshold_`` and ``scale`` the robust spread of the held-out samples' scores (their
        IQR / 1.349), Gaussian scaling as in Kriegel et al. (2011). It is 0.5 at the threshold, so it
        is above 0.5 exactly for the samples ``predict`` flags, and it grows with the score. Without
        labels it is calibrated to the held-out scores, not to how often a flagged sample really is
        an anomaly; with labels, check it (``sklearn.calibration.calibration_curve``) or recalibrate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples, 2), float64
            Rows sum to 1.

        References
        ----------
        .. [1] H.-P. Kriegel, P. Kroger, E. Schubert and A. Zimek, "Interpreting and Unifying Outlier
           Scores", SDM 2011.
        """
        outlier = self.probability_of_anomaly(self.anomaly_score(X))
        return np.column_stack([1.0 - outlier, outlier])

    def probability_of_anomaly(self, anomaly_scores: np.ndarray) -> np.ndarray:
        """The anomaly probability of ``predict_proba`` for scores already computed.

        Parameters
        ----------
        anomaly_scores : ndarray of shape (n_samples,)
            Scores from ``anomaly_score`` (the ``score_method`` kind).

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self, "score_scale_")
        return probability_of_anomaly(anomaly_scores, self.anomaly_threshold_, self.score_scale_)
