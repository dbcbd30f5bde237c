"""The outlier threshold and the anomaly probability, both set from the training samples' scores."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.special

# Tukey's upper fence: contamination="auto" flags training scores above Q3 + 1.5 * IQR.
AUTO_FENCE_IQR_MULTIPLE = 1.5


def offset_from(training_scores: np.ndarray, contamination: float | Literal["auto"]) -> float:
    """The threshold on ``score_samples`` (higher is more normal) that ``contamination`` asks for.

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
        return float(-(q3 + AUTO_FENCE_IQR_MULTIPLE * (q3 - q1)))
    n_flagged = min(max(1, round(contamination * len(ordered))), len(ordered))
    if n_flagged == len(ordered):
        return float(np.nextafter(ordered[-1], np.inf))
    # Midway between the last flagged and the first kept score: exactly n_flagged rows fall below.
    return float((ordered[n_flagged - 1] + ordered[n_flagged]) / 2)


def robust_spread(scores: np.ndarray) -> float:
    """The spread of training scores as a standard deviation would be for normal data: IQR / 1.349,
    else their standard deviation, else 1 (all equal)."""
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
        The training scores' :func:`robust_spread`.

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    standardized = (np.asarray(anomaly_scores, dtype=np.float64) - threshold) / spread
    return 0.5 * scipy.special.erfc(-standardized / np.sqrt(2.0))
