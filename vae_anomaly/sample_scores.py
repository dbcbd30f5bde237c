"""A VAE's per-sample scores (``SampleScores``) and how a final model's and an early checkpoint's
combine: numpy only, so that the torch scorer (``scoring``) and the numpy scorer share them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

# The columns of a detector's ``score_components``, in the order of ``SampleScores.components``.
SCORE_COMPONENTS = ("reconstruction_error", "reconstruction_nll", "kl", "neg_elbo")


class SampleScores(NamedTuple):
    """Scores of each row; larger values are more anomalous.

    Attributes
    ----------
    reconstruction_error : ndarray of shape (n_samples,)
        Mean squared difference between a row's observed values and their reconstruction, in
        standardized units.
    reconstruction_nll : ndarray of shape (n_samples,)
        The ELBO's reconstruction term, -log p(x|z), summed over features.
    kl : ndarray of shape (n_samples,)
        KL(q(z|x) || N(0, I)).
    feature_squared_error : ndarray of shape (n_samples, n_features) or None
        Each feature's part of ``reconstruction_error``: they add up to it. Only computed when asked.
    feature_nll : ndarray of shape (n_samples, n_features) or None
        Each feature's data-dependent part of the reconstruction term, (x - mean)^2 / (2 var) (scaled
        like the term when values are missing): the term less its constant normalizer.
    feature_kl : ndarray of shape (n_samples, n_features) or None
        Each feature's part of the KL term above the KL of the training-mean row, by integrated
        gradients through the encoder (see ``score_rows``).
    """

    reconstruction_error: np.ndarray
    reconstruction_nll: np.ndarray
    kl: np.ndarray
    feature_squared_error: np.ndarray | None = None
    feature_nll: np.ndarray | None = None
    feature_kl: np.ndarray | None = None

    @property
    def neg_elbo(self) -> np.ndarray:
        """Negative evidence lower bound: reconstruction term plus KL divergence."""
        return self.reconstruction_nll + self.kl

    def components(self) -> np.ndarray:
        """The scores as columns, in the order of ``SCORE_COMPONENTS``: shape (n_samples, 4)."""
        return np.column_stack([self.reconstruction_error, self.reconstruction_nll, self.kl, self.neg_elbo])

    def of_kind(self, kind: str) -> np.ndarray:
        """The ``kind`` score of each row: "elbo", the negative ELBO; "reconstruction", the
        reconstruction error.

        Raises
        ------
        ValueError
            For any other ``kind``.
        """
        if kind not in ("elbo", "reconstruction"):
            raise ValueError(f"kind must be 'elbo' or 'reconstruction', got {kind!r}.")
        return self.neg_elbo if kind == "elbo" else self.reconstruction_error

    def feature_parts(self, kind: str) -> np.ndarray:
        """Each feature's part of the ``kind`` score ("elbo" or "reconstruction") of each row.

        For "reconstruction" they add up to the score; for "elbo" to the score less a baseline that
        does not depend on the row's values: the reconstruction term's normalizer and the KL of the
        training-mean row.
        """
        if self.feature_nll is None or self.feature_kl is None or self.feature_squared_error is None:
            raise ValueError("The feature parts were not computed: score with per_feature=True.")
        return self.feature_nll + self.feature_kl if kind == "elbo" else self.feature_squared_error


_RECONSTRUCTION_PARTS = ("reconstruction_error", "feature_squared_error")


def mixed_scores(final: SampleScores, early: SampleScores, early_share: Mapping[str, float]) -> SampleScores:
    """The scores of a model's final weights and of an early checkpoint of them, as one model's.

    Parameters
    ----------
    final, early : SampleScores
        Each model's scores of the same rows.
    early_share : mapping of {"elbo", "reconstruction"} to float in [0, 1)
        The early weights' share of each score kind: every part of the negative ELBO (the
        reconstruction term, the KL term and their feature parts) is ``(1 - share) * final + share *
        early`` with the "elbo" share, the reconstruction error and its feature parts with the
        "reconstruction" share. A weighted mean keeps the scores in their units, the parts adding up
        as they do for one model, so ``explain`` holds as it is.

    Returns
    -------
    SampleScores
    """
    parts = {}
    for name, one, other in zip(SampleScores._fields, final, early, strict=True):
        share = early_share["reconstruction" if name in _RECONSTRUCTION_PARTS else "elbo"]
        parts[name] = None if one is None else (1 - share) * one + share * other
    return SampleScores(**parts)
