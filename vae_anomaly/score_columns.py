"""The names of the scored table's columns, which every way of serving a model writes (``frames``, the
batch scorer, the numpy scorers, the MLflow model)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

ANOMALY_SCORE = "anomaly_score"
IS_ANOMALY = "is_anomaly"
ANOMALY_PROBABILITY = "anomaly_probability"
CONTRIBUTION_PREFIX = "contribution_"


def check_not_output_named(names: Iterable[str], leave_out: Callable[[list[str]], str]) -> None:
    """Refuse training columns named as the scored table's (``is_anomaly``, ``anomaly_score``, ...).

    Such a column is a label or an earlier run's scores: a model must not learn from it, and scoring
    with the model would have to read it and write it at once. A name also matches after a
    ColumnTransformer's ``step__`` prefix (``numeric__is_anomaly``), as a Pipeline's detector sees
    its input's columns: one rule wherever a model trains, so nothing refused by a fit passes the
    checks before it.

    Parameters
    ----------
    names : iterable of str
        The columns a model is about to train on.
    leave_out : callable
        Given the clashing names, says how to leave them out (it ends the message).

    Raises
    ------
    ValueError
        Naming every clashing column.
    """
    outputs = (ANOMALY_SCORE, IS_ANOMALY, ANOMALY_PROBABILITY)
    clashes = [
        name
        for name in map(str, names)
        if (last := unprefixed(name)) in outputs or last.startswith(CONTRIBUTION_PREFIX)
    ]
    if clashes:
        raise ValueError(
            f"column(s) {clashes} are named as the scores vae-anomaly writes (a label, or an earlier "
            f"run's output), so a model must not train on them; {leave_out(clashes)}"
        )


def unprefixed(name: str) -> str:
    """``name`` without a ColumnTransformer's ``step__`` prefix: the input column a Pipeline's
    detector sees as ``numeric__is_anomaly``.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    return name.rsplit("__", 1)[-1]


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
