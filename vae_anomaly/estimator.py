"""VAEAnomalyDetector: the scikit-learn outlier detector around the VAE for tabular rows."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import _fit_context
from sklearn.utils.validation import check_is_fitted

from vae_anomaly.base import (
    BaseVAEDetector,
    ScoreKind,
    contribution_shares,
    document_shared_parameters,
)
from vae_anomaly.scoring import SCORE_COMPONENTS, SampleScores, score_rows


@document_shared_parameters
class VAEAnomalyDetector(BaseVAEDetector):
    """Unsupervised anomaly detector scoring rows with a variational autoencoder.

    The VAE has an MLP encoder to a diagonal Gaussian q(z|x), the reparameterization trick, and an MLP
    decoder to a Gaussian p(x|z) with a learned per-feature variance. It is trained by minimising the
    negative ELBO (reconstruction NLL + beta * KL(q(z|x) || N(0, I))) with KL warm-up and early
    stopping. Each row then gets two anomaly scores: its negative ELBO and its reconstruction error.
    Inputs are standardized with the training mean and standard deviation.

    Parameters
    ----------
    %(shared_parameters)s

    Attributes
    ----------
    module_ : GaussianVAE
        The trained torch module (CPU, float32).
    mean_ : ndarray of shape (n_features_in_,)
        Training mean of each feature.
    scale_ : ndarray of shape (n_features_in_,)
        Training standard deviation of each feature (1 for constant features).
    latent_noise_ : ndarray of shape (mc_samples, latent_dim) or None
        Fixed latent draws used for scoring when ``mc_samples`` is set.
    offset_ : float
        ``decision_function`` is ``score_samples - offset_``.
    anomaly_threshold_ : float
        ``-offset_``: samples whose ``anomaly_score`` is above it are predicted outliers.
    history_ : list of dict
        Per-epoch training record: loss, reconstruction, kl, beta, learning_rate, validation_loss.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X had string column names.

    See Also
    --------
    sklearn.ensemble.IsolationForest : Tree-based outlier detector with the same API.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from vae_anomaly import VAEAnomalyDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 4))
    >>> detector = VAEAnomalyDetector(epochs=20, random_state=0).fit(X)
    >>> detector.predict([[0.0, 0.0, 0.0, 0.0], [9.0, -9.0, 9.0, -9.0]])
    array([ 1, -1])
    """

    def __init__(
        self,
        *,
        latent_dim: int = 8,
        hidden_dims: tuple[int, ...] = (64, 32),
        beta: float = 1.0,
        kl_warmup_epochs: int = 10,
        epochs: int | Literal["auto"] = "auto",
        batch_size: int = 512,
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int = 30,
        score_method: ScoreKind = "elbo",
        mc_samples: int | None = None,
        contamination: float | Literal["auto"] = "auto",
        device: str = "auto",
        scoring_device: str = "auto",
        n_threads: int | Literal["auto"] = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            latent_dim=latent_dim,
            hidden_dims=hidden_dims,
            beta=beta,
            kl_warmup_epochs=kl_warmup_epochs,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            validation_fraction=validation_fraction,
            patience=patience,
            score_method=score_method,
            mc_samples=mc_samples,
            contamination=contamination,
            device=device,
            scoring_device=scoring_device,
            n_threads=n_threads,
            random_state=random_state,
            verbose=verbose,
        )

    # ------------------------------------------------------------------ input
    def _validate_input(self, X: Any, *, reset: bool) -> np.ndarray:
        """X's rows as float64: numeric, finite, with the columns seen in fit."""
        return self._checked_values(
            X,
            reset=reset,
            allow_nan=False,
            advice="Impute or drop them first (e.g. a SimpleImputer in a Pipeline).",
        )

    def _standardize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> VAEAnomalyDetector:
        """Train the VAE on the rows of X and set the outlier threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, numeric and finite. A DataFrame records ``feature_names_in_``.
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : VAEAnomalyDetector
        """
        self._hidden_dims()  # a bad hidden_dims fails before any work
        x = self._validate_input(X, reset=True)
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self._fit_and_threshold(
            X,
            self._standardize(x).astype(np.float32),
            None,
            lambda: self._select(self._score_validated(x), self.score_method),
        )
        return self

    # ---------------------------------------------------------------- scoring
    def _score(self, X: Any, per_feature: bool = False) -> SampleScores:
        check_is_fitted(self, "module_")
        return self._score_validated(self._validate_input(X, reset=False), per_feature)

    def _score_validated(self, x: np.ndarray, per_feature: bool = False) -> SampleScores:
        with self._scoring_module() as module:
            return score_rows(module, self._standardize(x), self.latent_noise_, per_feature)

    def anomaly_score(self, X: Any, kind: ScoreKind | None = None) -> np.ndarray:
        """Anomaly score of each row: higher is more anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        kind : {"elbo", "reconstruction"} or None, default=None
            "elbo": the per-sample negative ELBO; "reconstruction": the mean squared reconstruction
            error in standardized units. None uses ``score_method``.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return self._select(self._score(X), self.score_method if kind is None else kind)

    def _index(self, X: Any, n_rows: int) -> pd.Index:
        return X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(n_rows)

    def _values_and_index(self, X: Any) -> tuple[np.ndarray, pd.Index]:
        x = self._validate_input(X, reset=False)
        return x, self._index(X, len(x))

    def score_components(self, X: Any) -> pd.DataFrame:
        """Both anomaly scores and the parts of the negative ELBO, one row per input row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score; a DataFrame's index is kept.

        Returns
        -------
        DataFrame
            Columns ``reconstruction_error`` (mean squared error, standardized units),
            ``reconstruction_nll`` (-log p(x|z)), ``kl`` (KL(q(z|x) || N(0, I))) and ``neg_elbo``
            (``reconstruction_nll + kl``).
        """
        scores = self._score(X)
        return pd.DataFrame(
            scores.components(), columns=list(SCORE_COMPONENTS), index=self._index(X, len(scores.kl))
        )

    def explain(self, X: Any) -> pd.DataFrame:
        """Each feature's share of each row's reconstruction term: which features make a row anomalous.

        The share of feature j is (x_j - mean_j)^2 / var_j over its sum across features, where mean and
        var are the decoder's Gaussian for that row. Each row sums to 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to explain; a DataFrame's index is kept.

        Returns
        -------
        DataFrame of shape (n_samples, n_features)
            Columns are ``feature_names_in_`` when fitted on a DataFrame, else ``x0, x1, ...``.
        """
        shares = contribution_shares(self._score(X, per_feature=True).feature_contributions)
        return pd.DataFrame(shares, columns=self._feature_names(), index=self._index(X, len(shares)))
