"""The rows a table detector holds out of training: early stopping validates on them, and their scores,
as new data's, set the threshold (issue 31)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vae_anomaly.training import MIN_VALIDATION_ROWS, RowSplit


class HeldOut(NamedTuple):
    """The training model rows split into training and validation rows, and the held-out samples.

    ``split`` indexes the model rows the detector trains on; ``samples`` selects, among the detector's
    samples (rows or timestamps), those scored to set the threshold.
    """

    split: RowSplit
    samples: np.ndarray


def held_out_rows(n_rows: int, fraction: float, rng: np.random.Generator) -> HeldOut | None:
    """A random ``fraction`` of a table's rows held out (None: too few to hold out).

    Parameters
    ----------
    n_rows : int
        Rows of the table, each one model row.
    fraction : float
        The share to hold out, rounded to whole rows.
    rng : numpy.random.Generator
        Picks the rows.

    Returns
    -------
    HeldOut or None
        None when fewer than ``training.MIN_VALIDATION_ROWS`` would be held out (the count below which
        training draws no validation rows of its own either), or none would be left to train.
    """
    n_held = round(n_rows * fraction)
    if n_held < MIN_VALIDATION_ROWS or n_held >= n_rows:
        return None
    order = rng.permutation(n_rows)
    validation, train = np.sort(order[:n_held]), np.sort(order[n_held:])
    return HeldOut(RowSplit(train, validation), validation)
