"""VAEAnomalyDetector: the scikit-learn outlier detector around the VAE."""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from vae_anomaly.model import GaussianVAE
from vae_anomaly.persistence import ModelFileError, load_model, save_model
from vae_anomaly.scoring import SampleScores, score_rows
from vae_anomaly.training import TrainingConfig, train_vae

ScoreKind = Literal["elbo", "reconstruction"]
# Tukey's upper fence: contamination="auto" flags training scores above Q3 + 1.5 * IQR.
AUTO_FENCE_IQR_MULTIPLE = 1.5
_MAX_LISTED_PROBLEMS = 10


def _column_label(feature_names: np.ndarray | None, column: int) -> str:
    return repr(str(feature_names[column])) if feature_names is not None else f"{column}"


def _check_numeric_columns(X: Any) -> None:
    """Name every non-numeric DataFrame column instead of failing on the first unparsable value."""
    if not isinstance(X, pd.DataFrame):
        return
    bad = [
        f"{name!r} ({dtype})"
        for name, dtype in X.dtypes.items()
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    ]
    if bad:
        raise ValueError(
            f"X has non-numeric columns: {', '.join(bad)}. Encode them first, e.g. with a "
            "OneHotEncoder in a ColumnTransformer before the detector."
        )


def _check_finite(x: np.ndarray, feature_names: np.ndarray | None) -> None:
    """Raise a ValueError naming each column with NaN or inf values, and the first row of each."""
    not_finite = ~np.isfinite(x)
    if not not_finite.any():
        return
    problems = []
    for column in np.flatnonzero(not_finite.any(axis=0))[:_MAX_LISTED_PROBLEMS]:
        values = x[:, column]
        rows = np.flatnonzero(not_finite[:, column])
        kinds = [kind for kind, mask in (("NaN", np.isnan(values)), ("inf", np.isinf(values))) if mask.any()]
        problems.append(
            f"column {_column_label(feature_names, column)}: {' and '.join(kinds)} in {len(rows)} "
            f"row(s), first at row {rows[0]}"
        )
    raise ValueError(
        f"X contains NaN or inf values, which the VAE cannot score: {'; '.join(problems)}. "
        "Impute or drop them first (e.g. a SimpleImputer in a Pipeline)."
    )


class VAEAnomalyDetector(OutlierMixin, BaseEstimator):
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
        under bf16 autocast. The fitted model is kept, scored and pickled on the CPU in float64.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split, shuffling and noise; an int makes fits repeatable.
    verbose : int, default=0
        1 shows a progress bar over epochs with the current losses.

    Attributes
    ----------
    module_ : GaussianVAE
        The trained torch module (CPU, float64).
    mean_ : ndarray of shape (n_features_in_,)
        Training mean of each feature.
    scale_ : ndarray of shape (n_features_in_,)
        Training standard deviation of each feature (1 for constant features).
    latent_noise_ : ndarray of shape (mc_samples, latent_dim) or None
        Fixed latent draws used for scoring when ``mc_samples`` is set.
    offset_ : float
        ``decision_function`` is ``score_samples - offset_``.
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

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_dims": ["array-like"],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "score_method": [StrOptions({"elbo", "reconstruction"})],
        "mc_samples": [None, Interval(Integral, 1, None, closed="left")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

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
        _check_numeric_columns(X)
        x = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        _check_finite(x, getattr(self, "feature_names_in_", None))
        return x

    def _standardize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    def _hidden_dims(self) -> tuple[int, ...]:
        dims = tuple(self.hidden_dims)
        if not all(isinstance(d, Integral) and not isinstance(d, bool) and d > 0 for d in dims):
            raise ValueError(f"hidden_dims must be positive integers, got {self.hidden_dims!r}.")
        return tuple(int(d) for d in dims)

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
        hidden_dims = self._hidden_dims()
        x = self._validate_input(X, reset=True)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        generator = torch.Generator().manual_seed(seed)
        module = GaussianVAE(self.n_features_in_, hidden_dims, self.latent_dim, generator)
        config = TrainingConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            beta=self.beta,
            kl_warmup_epochs=self.kl_warmup_epochs,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            weight_decay=self.weight_decay,
            device=self.device,
            verbose=self.verbose,
        )
        self.history_ = train_vae(module, self._standardize(x).astype(np.float32), config, seed)
        self.module_ = module.double()
        self.latent_noise_ = (
            None
            if self.mc_samples is None
            else torch.randn(
                self.mc_samples, self.latent_dim, generator=generator, dtype=torch.float64
            ).numpy()
        )
        self.offset_ = self._offset_from(-self._select(self._score_validated(x), self.score_method))
        return self

    def _offset_from(self, training_scores: np.ndarray) -> float:
        """Threshold on ``score_samples`` per ``contamination`` (see the class docstring)."""
        ordered = np.sort(training_scores)
        if self.contamination == "auto":
            q1, q3 = np.percentile(-ordered, [25, 75])
            return float(-(q3 + AUTO_FENCE_IQR_MULTIPLE * (q3 - q1)))
        n_flagged = min(max(1, round(self.contamination * len(ordered))), len(ordered))
        if n_flagged == len(ordered):
            return float(np.nextafter(ordered[-1], np.inf))
        # Midway between the last flagged and the first kept score: exactly n_flagged rows fall below.
        return float((ordered[n_flagged - 1] + ordered[n_flagged]) / 2)

    # ---------------------------------------------------------------- scoring
    def _score(self, X: Any, per_feature: bool = False) -> SampleScores:
        check_is_fitted(self, "module_")
        return self._score_validated(self._validate_input(X, reset=False), per_feature)

    def _score_validated(self, x: np.ndarray, per_feature: bool = False) -> SampleScores:
        return score_rows(self.module_, self._standardize(x), self.latent_noise_, per_feature)

    @staticmethod
    def _select(scores: SampleScores, kind: str) -> np.ndarray:
        if kind not in ("elbo", "reconstruction"):
            raise ValueError(f"kind must be 'elbo' or 'reconstruction', got {kind!r}.")
        return scores.neg_elbo if kind == "elbo" else scores.reconstruction_error

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

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality score of each row: higher is more normal (the negated ``anomaly_score``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

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
            Rows to score.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """Label each row +1 (inlier) or -1 (outlier).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        ndarray of shape (n_samples,), int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

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
        contributions = self._score(X, per_feature=True).feature_contributions
        totals = contributions.sum(axis=1, keepdims=True)
        shares = np.divide(
            contributions,
            totals,
            out=np.full_like(contributions, 1.0 / self.n_features_in_),
            where=totals > 0,
        )
        columns = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return pd.DataFrame(shares, columns=list(columns), index=self._index(X, len(shares)))

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted detector to a folder: a JSON config plus safetensors weights, no pickle.

        Parameters
        ----------
        path : str or PathLike
            Folder to write; created if absent.
        """
        check_is_fitted(self, "module_")
        params = self.get_params()
        params["hidden_dims"] = list(self._hidden_dims())
        if not isinstance(params["random_state"], Integral):
            params["random_state"] = None  # a RandomState instance is not JSON; the fit is done anyway
        attributes = {
            "n_features_in_": int(self.n_features_in_),
            "offset_": float(self.offset_),
            "history_": self.history_,
        }
        if hasattr(self, "feature_names_in_"):
            attributes["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        tensors = {f"module.{name}": t for name, t in self.module_.state_dict().items()}
        tensors["mean_"] = torch.from_numpy(self.mean_)
        tensors["scale_"] = torch.from_numpy(self.scale_)
        if self.latent_noise_ is not None:
            tensors["latent_noise_"] = torch.from_numpy(self.latent_noise_)
        save_model(path, type(self).__name__, params, attributes, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VAEAnomalyDetector:
        """Load a detector written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike
            Folder written by ``save``.

        Returns
        -------
        VAEAnomalyDetector
            The fitted detector, on the CPU.

        Raises
        ------
        ModelFileError
            If the folder is missing, tampered with, corrupted or from a newer format version.
        """
        saved = load_model(path, cls.__name__)
        try:
            detector = cls(**{**saved.params, "hidden_dims": tuple(saved.params["hidden_dims"])})
            detector._validate_params()
            module = GaussianVAE(
                saved.attributes["n_features_in_"],
                detector._hidden_dims(),
                detector.latent_dim,
                torch.Generator(),  # every weight is overwritten by the saved state below
            ).double()
            prefix = "module."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in saved.tensors.items() if k.startswith(prefix)}
            )
        except (TypeError, ValueError, KeyError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid {cls.__name__}: {error}") from error
        detector.module_ = module.eval()
        detector.mean_ = saved.tensors["mean_"].numpy()
        detector.scale_ = saved.tensors["scale_"].numpy()
        noise = saved.tensors.get("latent_noise_")
        detector.latent_noise_ = None if noise is None else noise.numpy()
        detector.n_features_in_ = saved.attributes["n_features_in_"]
        detector.offset_ = saved.attributes["offset_"]
        detector.history_ = saved.attributes["history_"]
        if "feature_names_in_" in saved.attributes:
            detector.feature_names_in_ = np.asarray(saved.attributes["feature_names_in_"], dtype=object)
        return detector
