"""Out-of-fold scores for a table too small to hold rows out of training (issue 31).

A table whose ``validation_fraction`` comes to fewer rows than early stopping validates on (under 78
at 0.2) has too few held-out scores for its threshold; set on the scores of the rows its model had
fitted, the threshold flagged most clean new rows. Instead each row is scored by a copy of the
detector fitted without it: ``CROSS_FIT_FOLDS`` copies, each on the other folds' rows, as the
detector itself fits (its own scaling and settings), holding nothing out. Their events reach no
callback: they are part of the detector's fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from vae_anomaly.callbacks import callbacks_muted
from vae_anomaly.holdout import CROSS_FIT_FOLDS


def cross_fit_folds(values: np.ndarray, seed: int) -> list[np.ndarray]:
    """``CROSS_FIT_FOLDS`` folds of the rows, drawn at random with ``seed``.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
        The training rows (NaN where a value is missing).
    seed : int
        The detector's training seed.

    Returns
    -------
    list of ndarray of int
        Each fold's row positions.
    """
    return np.array_split(np.random.default_rng(seed).permutation(len(values)), CROSS_FIT_FOLDS)


def unfittable_columns(values: np.ndarray, folds: list[np.ndarray]) -> list[int]:
    """The columns that some fold's other rows leave with no observed value (a copy could not fit).

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
        The training rows (NaN where a value is missing).
    folds : list of ndarray of int
        From :func:`cross_fit_folds`.

    Returns
    -------
    list of int
        Their positions, in order.
    """
    observed = ~np.isnan(values)
    unobserved = [~np.delete(observed, fold, axis=0).any(axis=0) for fold in folds]
    return np.flatnonzero(np.any(unobserved, axis=0)).tolist()


def out_of_fold_scores(detector: Any, values: np.ndarray, folds: list[np.ndarray], seed: int) -> np.ndarray:
    """Each row's anomaly score from a copy of ``detector`` fitted on the other folds' rows.

    Parameters
    ----------
    detector : VAEAnomalyDetector
        The detector being fitted; its parameters are copied (``clone``), with ``validation_fraction``
        0 (each copy trains on every row it is given) and a seed of its own.
    values : ndarray of shape (n_rows, n_features)
        The training rows as the detector read them (NaN where a value is missing).
    folds : list of ndarray of int
        From :func:`cross_fit_folds`, every column observed in each fold's other rows
        (:func:`unfittable_columns` empty).
    seed : int
        The detector's training seed: fold k's copy gets ``seed + 1 + k``.

    Returns
    -------
    ndarray of shape (n_rows,)
        The ``score_method`` anomaly scores, higher is more anomalous.
    """
    scores = np.empty(len(values))
    with callbacks_muted():
        for k, fold in enumerate(folds):
            member = clone(detector).set_params(random_state=seed + 1 + k, validation_fraction=0.0)
            member.fit(np.delete(values, fold, axis=0))
            scores[fold] = member.anomaly_score(values[fold])
    return scores
