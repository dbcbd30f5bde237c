"""VAEAnomalyDetector: the scikit-learn outlier detector around the VAE for tabular rows."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import _fit_context
from sklearn.utils.validation import check_is_fitted, validate_data

from vae_anomaly.base import (
    BaseVAEDetector,
    ScoreKind,
    check_finite,
    check_numeric_columns,
    contribution_shares,
)
from vae_anomaly.scoring import SampleScores, score_rows


class VAEAnomalyDetector(BaseVAEDetector):
    """Unsupervised anomaly detector scoring rows with a variational autoencoder.

    The VAE has an MLP encoder to a diagonal Gaussian q(z|x), the reparameterization trick, and an MLP
    decoder to a Gaussian p(x|z) with a learned per-feature variance. It is trained by minimising the
    negative ELBO (reconstruction NLL + beta * KL(q(z|x) || N(0, I))) with KL warm-up and early
    stopping. Each row then gets two anomaly scores: its negative ELBO and its reconstruction error.
    Inputs are standardized with the training mean and standard deviation.

    Parameters
    ----------
    latent_dim : int, default=8
        Dimension of the latent code z.
    hidden_dims : tuple of int, default=(64, 32)
        Hidden layer widths of the encoder; the decoder mirrors them.
    beta : float, default=1.0
        Weight of the KL term in the training loss.
    kl_warmup_epochs : int, default=10
        Epochs over which the KL weight ramps linearly from beta / kl_warmup_epochs to beta.
    epochs : int or "auto", default="auto"
        Maximum number of passes over the training rows. "auto" trains for about 1,250 optimiser
        steps: ceil(1250 / batches per epoch) epochs, at least 10 and at most 500.
    batch_size : int, default=512
        Rows per optimisation step; smaller training sets use one batch of all rows.
    learning_rate : float, default=1e-2
        Initial AdamW learning rate; it decays along a cosine to zero over the planned epochs.
    weight_decay : float, default=1e-5
        AdamW weight decay.
    validation_fraction : float, default=0.1
        Share of the training rows held out for early stopping. With fewer than 16 held-out rows (or 0)
        there is no early stopping and all rows train for ``epochs``.
    patience : int, default=30
        Epochs without a lower validation loss before training stops; the best epoch's weights are kept.
    score_method : {"elbo", "reconstruction"}, default="elbo"
        Score behind ``score_samples``: the negative ELBO or the reconstruction error.
    mc_samples : int or None, default=None
        None scores at the posterior mean. An int averages the reconstruction terms over that many
        draws of z; the draws are fixed at fit, shared by all rows, so scores stay deterministic.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``. A float flags that fraction of the training rows. "auto" flags training rows
        whose anomaly score lies above Tukey's upper fence, Q3 + 1.5 * IQR of the training scores.
    device : str, default="auto"
        Training device: "auto" picks CUDA, then MPS, then CPU; or any torch device string. CUDA trains
        under bf16 autocast. The fitted model is kept, scored and pickled on the CPU in float32.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split, shuffling and noise; an int makes fits repeatable.
    verbose : int, default=0
        1 shows a progress bar over epochs with the current losses.

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
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.score_method = score_method
        self.mc_samples = mc_samples
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ input
    def _validate_input(self, X: Any, *, reset: bool) -> np.ndarray:
        """The one place input is checked: numeric columns, names, shape, then finiteness."""
        check_numeric_columns(X)
        x = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        check_finite(
            x,
            getattr(self, "feature_names_in_", None),
            allow_nan=False,
            advice="Impute or drop them first (e.g. a SimpleImputer in a Pipeline).",
        )
        return x

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
        return score_rows(self.module_, self._standardize(x), self.latent_noise_, per_feature)

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
            {
                "reconstruction_error": scores.reconstruction_error,
                "reconstruction_nll": scores.reconstruction_nll,
                "kl": scores.kl,
                "neg_elbo": scores.neg_elbo,
            },
            index=self._index(X, len(scores.kl)),
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
