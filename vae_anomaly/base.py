"""What the VAE detectors share: parameters, input checks, training, thresholds and safe persistence.

The tabular and the time-series detector differ only in how they turn input into rows for the VAE and
how they map row scores back to the input; everything else lives here, once.
"""

from __future__ import annotations

import functools
import os
import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Integral
from typing import Any, ClassVar, Literal, NamedTuple, Self

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from vae_anomaly.callbacks import registered_callbacks
from vae_anomaly.devices import (
    available_cpus,
    choose_threads,
    device_copy,
    resolve_device,
    scoring_workers,
    torch_threads,
)
from vae_anomaly.input_checks import (
    arrow_numbers_as_float,
    check_finite,
    check_float32_range,
    check_numeric_columns,
    has_no_nan,
)
from vae_anomaly.model import GaussianVAE
from vae_anomaly.model_rows import ModelRows
from vae_anomaly.parameters import SHARED_PARAMETER_CONSTRAINTS, with_old_model_defaults
from vae_anomaly.persistence import ModelFileError, SavedModel, load_model, save_model
from vae_anomaly.scaling import (
    STANDARDIZE_BLOCK_ROWS,
    ObservedRows,
    StandardizedRows,
    binary_columns,
    column_std,
    no_binary_features,
)
from vae_anomaly.scoring import (
    SCORE_COMPONENTS,
    SampleScores,
    contribution_shares,
    score_rows,
    scoring_batch_rows,
)
from vae_anomaly.thresholds import offset_from, probability_of_anomaly, robust_spread
from vae_anomaly.training import TrainingConfig, batch_size_for, train_vae

ScoreKind = Literal["elbo", "reconstruction"]


class Samples(NamedTuple):
    """A detector's checked input: its values (float64, NaN where missing; float32 where scoring was
    given float32), the index its outputs carry, and whether no value is missing."""

    values: np.ndarray
    index: pd.Index
    complete: bool


class BaseVAEDetector(OutlierMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the VAE detectors; not for direct use.

    It declares, validates and stores the parameters both detectors share (``SHARED_PARAMETERS_DOC``
    documents them); a subclass lists them in its own ``__init__`` signature, as scikit-learn needs,
    forwards them here, turns input into standardized rows, and implements ``anomaly_score``.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = SHARED_PARAMETER_CONSTRAINTS
    #: The share of values ``gap_injection="auto"`` hides in training where missing values are taken.
    _auto_gap_injection: ClassVar[float] = 0.0
    # The dtype the fitted module is kept and scored in.
    _module_dtype: ClassVar[torch.dtype] = torch.float32
    #: Whether a sample's score depends on the samples around it, as a timestamp's does on its
    #: neighbours: such a detector must be given a whole series at once, never pieces of it.
    scores_whole_series: ClassVar[bool] = False
    #: The DataFrame column that holds the timestamps, if the detector reads one (a parameter of the
    #: time-series detector); None when timestamps, if any, come from the index.
    time_column: str | None = None
    #: What error messages call the features: "Columns" of a table, "Channels" of a series.
    _feature_noun: ClassVar[str] = "Features"
    #: What scaling does to features of 0s and 1s: "keep" or "standardize" (a parameter of each
    #: detector, whose defaults differ).
    binary_features: Literal["keep", "standardize"]

    def __init__(
        self,
        *,
        min_relative_scale: float = 0.01,
        latent_dim: int = 8,
        hidden_dims: tuple[int, ...] = (64, 32),
        beta: float = 1.0,
        kl_warmup_epochs: int = 10,
        epochs: int | Literal["auto"] = "auto",
        batch_size: int | Literal["auto"] = "auto",
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-5,
        gap_injection: float | Literal["auto"] = "auto",
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
        self.min_relative_scale = min_relative_scale
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.gap_injection = gap_injection
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.score_method = score_method
        self.mc_samples = mc_samples
        self.contamination = contamination
        self.device = device
        self.scoring_device = scoring_device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A detector pickled before a parameter existed was fitted with the behaviour it now turns on.
        super().__setstate__(with_old_model_defaults(state))

    def _feature_names(self) -> list[str]:
        """Column names for outputs: ``feature_names_in_`` when fitted on names, else x0, x1, ..."""
        names = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return [str(name) for name in names]

    def _checked_values(
        self, X: Any, *, reset: bool, allow_nan: bool, advice: str
    ) -> tuple[np.ndarray, bool]:
        """The one place input values are checked: numeric columns, names and shape, then finiteness,
        and in training (``reset``) that values fit float32.

        ``advice`` ends the error message about non-finite values. Returns X as float64, or for scoring
        as float32 when it is float32 (scoring standardizes a block of rows at a time in float64, so
        the scores are the same, and a float32 X of 2M x 32 rows is not copied into 512 MB first), and
        whether it is complete: where NaN is refused it holds none, and no pass is needed to know.
        """
        check_numeric_columns(X)
        X = arrow_numbers_as_float(X)
        if not reset:
            self._check_column_order(X)
        dtype = np.float64 if reset else (np.float64, np.float32)
        x = validate_data(self, X, reset=reset, dtype=dtype, ensure_all_finite=False)
        names = getattr(self, "feature_names_in_", None)
        check_finite(x, names, allow_nan=allow_nan, advice=advice)
        if reset:  # scoring takes any finite value: one beyond float32 scores as the most anomalous
            check_float32_range(x, names)
        return x, not allow_nan or has_no_nan(x)

    def _fit_scaling(self, samples: Samples) -> None:
        """Set ``mean_``, ``scale_`` and ``binary_features_`` from each feature's observed values (NaN is
        missing); a feature with none is refused, named as ``_feature_noun`` says."""
        x, complete = samples.values, samples.complete
        # nanmean/nanstd copy X; without NaN the plain reductions give the same numbers 9x faster.
        seen = np.ones(x.shape[1], dtype=bool) if complete else ~np.isnan(x).all(axis=0)
        if not seen.all():
            empty = [name for name, kept in zip(self._feature_names(), seen, strict=True) if not kept]
            raise ValueError(
                f"{self._feature_noun} {empty} have no observed values in X; drop them or fill them."
            )
        self.mean_ = x.mean(axis=0) if complete else np.nanmean(x, axis=0)
        scale = column_std(x, self.mean_) if complete else np.nanstd(x, axis=0)
        floored = np.maximum(scale, self.min_relative_scale * np.abs(self.mean_))
        keep = self.binary_features == "keep"
        self.binary_features_ = binary_columns(x) if keep else no_binary_features(x.shape[1])
        self.scale_ = np.where((scale > 0) & ~self.binary_features_, floored, 1.0)

    def _row_sources(self, samples: Samples) -> tuple[StandardizedRows, ObservedRows | None]:
        """The samples standardized in float32 and their observed-value mask (None when nothing is
        missing), both read a slice of rows at a time, as scoring takes them."""
        rows = StandardizedRows(samples.values, self.mean_, self.scale_, samples.complete)
        return rows, None if samples.complete else ObservedRows(samples.values)

    def _standardized(self, samples: Samples) -> tuple[np.ndarray, np.ndarray | None]:
        """The samples standardized in float32, missing values at the feature mean (0), and the
        observed-value mask as float32 (None when nothing is missing), as whole arrays."""
        source, observed = self._row_sources(samples)
        rows = np.empty(samples.values.shape, dtype=np.float32)
        # In blocks of rows, so that the float64 temporaries stay small and in cache.
        for start in range(0, len(rows), STANDARDIZE_BLOCK_ROWS):
            block = slice(start, start + STANDARDIZE_BLOCK_ROWS)
            rows[block] = source[block]
        return rows, None if observed is None else observed[:]

    def _check_column_order(self, X: Any) -> None:
        """Name the columns of a DataFrame that has the fitted columns in another order."""
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None or not isinstance(X, pd.DataFrame):
            return
        given = [str(name) for name in X.columns]
        expected = [str(name) for name in fitted]
        if given != expected and sorted(given) == sorted(expected):
            moved = [name for name, want in zip(given, expected, strict=True) if name != want]
            raise ValueError(
                f"X has the columns {type(self).__name__} was fitted on, but the feature names must be in "
                f"the same order as in fit: got {given}, expected {expected} ({moved} moved). Reorder "
                "them, e.g. X[detector.feature_names_in_]."
            )

    def _check_settings(self) -> None:
        """Check what the parameter constraints cannot before any work: hidden_dims, both devices, and
        n_threads against the CPUs the process may use (more are not used, with a warning)."""
        self._hidden_dims()
        resolve_device(self.device)
        resolve_device(self.scoring_device)
        cpus = available_cpus()
        if self.n_threads != "auto" and self.n_threads > cpus:
            warnings.warn(
                f"n_threads={self.n_threads} is more than the {cpus} CPU(s) this process may use; "
                f"{type(self).__name__} uses {cpus}.",
                UserWarning,
                stacklevel=3,
            )

    def _hidden_dims(self) -> tuple[int, ...]:
        dims = tuple(self.hidden_dims)
        if not all(isinstance(d, Integral) and not isinstance(d, bool) and d > 0 for d in dims):
            raise ValueError(f"hidden_dims must be positive integers, got {self.hidden_dims!r}.")
        return tuple(int(d) for d in dims)

    def _new_module(self, n_inputs: int, generator: torch.Generator) -> GaussianVAE:
        return GaussianVAE(n_inputs, self._hidden_dims(), self.latent_dim, generator)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> Self:
        """Train the VAE on X's samples and set the outlier threshold from their scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or DataFrame
            Training samples: rows of a table (``VAEAnomalyDetector``), or a series in time order,
            shape (n_timestamps,) or (n_timestamps, n_channels) (``TimeSeriesVAEDetector``). A
            DataFrame records ``feature_names_in_``.
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self
        """
        self._check_settings()  # a bad setting fails before any work
        samples = self._read(X, reset=True)
        self._fit_scaling(samples)
        standardized = self._standardized(samples)
        scored = self._model_rows(samples, standardized)
        self._fit_and_threshold(
            X,
            *self._model_rows(samples, standardized, training=True).arrays(),
            lambda: scored.to_samples(self._select(self._score_rows(scored), self.score_method)),
        )
        return self

    def _fit_and_threshold(
        self,
        X: Any,
        rows: np.ndarray,
        mask: np.ndarray | None,
        training_anomaly_scores: Callable[[], np.ndarray],
    ) -> None:
        """Train on ``rows``, set ``offset_`` from the training samples' scores and tell the callbacks.

        ``X`` is the raw training input, passed on to the callbacks; ``training_anomaly_scores`` scores
        the training samples once the module is fitted.
        """
        callbacks = registered_callbacks()
        for callback in callbacks:
            callback.on_fit_start(self)

        def epoch_ended(record: dict[str, float]) -> None:
            for callback in callbacks:
                callback.on_epoch_end(self, record)

        try:
            self._fit_vae(rows, mask, epoch_ended)
            scores = training_anomaly_scores()
            self.offset_ = offset_from(-scores, self.contamination)
            self.score_scale_ = robust_spread(scores)
        except BaseException as error:
            for callback in callbacks:
                callback.on_fit_error(self, error)
            raise
        for callback in callbacks:
            callback.on_fit_end(self, X, scores)

    def _fit_vae(
        self, rows: np.ndarray, mask: np.ndarray | None, on_epoch_end: Callable[[dict[str, float]], None]
    ) -> None:
        """Train the VAE on standardized float32 ``rows``; sets module_, history_ and latent_noise_."""
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
        module = self._new_module(rows.shape[1], generator)
        config = self._training_config()
        work = batch_size_for(config, len(rows)) * module.multiply_adds_per_row()
        with torch_threads(choose_threads(self.n_threads, work)):
            self.history_ = train_vae(module, rows, config, seed, mask, on_epoch_end)
        self.module_ = module.to(self._module_dtype)
        self.latent_noise_ = (
            None
            if self.mc_samples is None
            else torch.randn(
                self.mc_samples, self.latent_dim, generator=generator, dtype=torch.float64
            ).numpy()
        )

    def _training_config(self) -> TrainingConfig:
        """The training settings among this detector's parameters."""
        settings = {name: getattr(self, name) for name in TrainingConfig.__dataclass_fields__}
        return TrainingConfig(**{**settings, "gap_injection": self._gap_injection_rate()})

    def _gap_injection_rate(self) -> float:
        """``gap_injection`` as a share: "auto" gives ``_auto_gap_injection`` where the detector takes
        missing values, else 0."""
        if self.gap_injection != "auto":
            return float(self.gap_injection)
        return self._auto_gap_injection if self.__sklearn_tags__().input_tags.allow_nan else 0.0

    # ------------------------------------------------------------- the hooks
    @abstractmethod
    def _read(self, X: Any, *, reset: bool) -> Samples:
        """X's checked values and the index its outputs carry; ``reset`` in ``fit`` (which sets
        ``n_features_in_`` and what else the detector learns of its input's shape)."""

    @abstractmethod
    def _model_rows(
        self,
        samples: Samples,
        standardized: tuple[np.ndarray, np.ndarray | None] | None = None,
        *,
        training: bool = False,
    ) -> ModelRows:
        """The rows the VAE scores for ``samples`` (for ``training``: the rows it trains on), from their
        ``standardized`` arrays (``_standardized``) where given; the way back to the samples with them."""

    # ---------------------------------------------------------------- scoring
    def feature_frame(self, X: Any) -> pd.DataFrame:
        """X as the detector reads it: one float column per feature, indexed like its outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input as ``fit`` takes it.

        Returns
        -------
        DataFrame of shape (n_samples, n_features_in_)
            Columns are the feature names (``x0, x1, ...`` without names); the index is X's index, or
            for a series its timestamps.
        """
        check_is_fitted(self, "n_features_in_")
        samples = self._read(X, reset=False)
        return pd.DataFrame(samples.values, columns=self._feature_names(), index=samples.index)

    def _scored_rows(self, X: Any) -> tuple[Samples, ModelRows]:
        """X read for scoring, and the model rows of its samples."""
        check_is_fitted(self, "module_")
        samples = self._read(X, reset=False)
        return samples, self._model_rows(samples)

    def _score_rows(self, rows: ModelRows) -> SampleScores:
        with self._row_scorer() as score:
            return score(rows.rows, mask=rows.mask)

    @contextmanager
    def _row_scorer(self) -> Iterator[Callable[..., SampleScores]]:
        """``score_rows`` with the fitted module on the scoring device (``scoring_device``), its latent
        draws and its scoring workers; torch's threads are set inside the block."""
        device = resolve_device(self.scoring_device)
        module = self.module_ if device.type == "cpu" else device_copy(self.module_, device)
        work = scoring_batch_rows(self.module_.n_features, device) * self.module_.multiply_adds_per_row()
        workers = scoring_workers(self.n_threads, work) if device.type == "cpu" else 1
        with torch_threads(choose_threads(self.n_threads, work)):
            yield functools.partial(score_rows, module, latent_noise=self.latent_noise_, workers=workers)

    @staticmethod
    def _select(scores: SampleScores, kind: str) -> np.ndarray:
        if kind not in ("elbo", "reconstruction"):
            raise ValueError(f"kind must be 'elbo' or 'reconstruction', got {kind!r}.")
        return scores.neg_elbo if kind == "elbo" else scores.reconstruction_error

    @property
    def anomaly_threshold_(self) -> float:
        """Samples whose ``anomaly_score`` is above this are predicted outliers (it is ``-offset_``)."""
        check_is_fitted(self, "offset_")
        return -self.offset_

    def anomaly_score(self, X: Any, kind: ScoreKind | None = None) -> np.ndarray:
        """Anomaly score of each sample (row, or timestamp of a series): higher is more anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or DataFrame
            Samples to score; a series in time order, at least ``window`` long.
        kind : {"elbo", "reconstruction"} or None, default=None
            "elbo": the negative ELBO; "reconstruction": the mean squared reconstruction error over
            the observed values, in standardized units. For a series, of the windows holding each
            timestamp, combined by ``aggregation``. None uses ``score_method``.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        _, rows = self._scored_rows(X)
        return rows.to_samples(
            self._select(self._score_rows(rows), self.score_method if kind is None else kind)
        )

    def score_components(self, X: Any) -> pd.DataFrame:
        """Both anomaly scores and the parts of the negative ELBO, one row per sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or DataFrame
            Samples to score; a DataFrame's index (a series' timestamps) is kept.

        Returns
        -------
        DataFrame
            Columns ``reconstruction_error`` (mean squared error over the observed features,
            standardized units), ``reconstruction_nll`` (-log p(x|z), scaled to all features when some
            are missing), ``kl`` (KL(q(z|x) || N(0, I))), ``neg_elbo`` (``reconstruction_nll + kl``)
            and ``missing`` (how many of the sample's features were missing). For a series each
            window-level column is mapped to timestamps by ``aggregation``.
        """
        samples, rows = self._scored_rows(X)
        components = rows.to_samples(self._score_rows(rows).components())
        frame = pd.DataFrame(components, columns=list(SCORE_COMPONENTS), index=samples.index)
        frame["missing"] = np.isnan(samples.values).sum(axis=1)
        return frame

    def explain(self, X: Any, *, shares: bool = True) -> pd.DataFrame:
        """How much each feature (a series' channel) adds to each sample's anomaly score.

        For ``score_method="elbo"`` feature j's part is its reconstruction term, (x_j - mean_j)^2 /
        (2 var_j) under the decoder's Gaussian for the row, plus its part of the KL term, found by
        integrated gradients through the encoder along the line from the training-mean row to the row.
        The parts add up to the row's negative ELBO less a baseline that does not depend on the row's
        values (the decoder's normalizing constant and the KL of the training-mean row), up to the
        integration's small error: no part of what makes a row anomalous is left out, not even when
        the KL term is most of the score. For ``score_method="reconstruction"`` the parts are the
        features' squared errors over the number of observed features, which add up to the score.
        A series' window is split over its points and channels so, and a point's part is averaged
        over the windows that hold it. A missing value has no part; a sample with nothing observed
        gets all zeros.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or DataFrame
            Samples to explain; a DataFrame's index (a series' timestamps) is kept.
        shares : bool, default=True
            True: each part as a share of the sample's total, summing to 1. A feature that pulls the
            code towards the prior's centre, making it look more normal, gets a negative share; a
            sample whose parts add up to 0 or less gets equal shares. False: the parts in the score's
            own units.

        Returns
        -------
        DataFrame of shape (n_samples, n_features)
            Columns are ``feature_names_in_`` when fitted on a DataFrame, else ``x0, x1, ...``.
        """
        samples, rows = self._scored_rows(X)
        with self._row_scorer() as score:
            parts = rows.explained_parts(score, self.score_method)
        if shares:
            parts = contribution_shares(parts, (~np.isnan(samples.values)).any(axis=1))
        return pd.DataFrame(parts, columns=self._feature_names(), index=samples.index)

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
        ``anomaly_threshold_`` and ``scale`` the robust spread of the training scores (their IQR /
        1.349), Gaussian scaling as in Kriegel et al. (2011). It is 0.5 at the threshold, so it is
        above 0.5 exactly for the samples ``predict`` flags, and it grows with the score. Without
        labels it is calibrated to the training scores, not to how often a flagged sample really is
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

    # ------------------------------------------------------------ persistence
    def _saved_attributes(self) -> dict[str, Any]:
        """Fitted attributes besides the weights, as JSON values; subclasses add their own."""
        attributes: dict[str, Any] = {
            "n_features_in_": int(self.n_features_in_),
            "offset_": float(self.offset_),
            "score_scale_": float(self.score_scale_),
            "history_": self.history_,
        }
        if hasattr(self, "feature_names_in_"):
            attributes["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        return attributes

    def _restore_attributes(self, attributes: dict[str, Any]) -> None:
        """Set what ``_saved_attributes`` wrote; subclasses restore their own too."""
        self.n_features_in_ = attributes["n_features_in_"]
        self.offset_ = attributes["offset_"]
        self.score_scale_ = attributes["score_scale_"]
        self.history_ = attributes["history_"]
        if "feature_names_in_" in attributes:
            self.feature_names_in_ = np.asarray(attributes["feature_names_in_"], dtype=object)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted detector to a folder: a JSON config plus safetensors weights, no pickle.

        Parameters
        ----------
        path : str or PathLike
            Folder to write, atomically: an existing model folder there is replaced only once the new
            one is complete, and a path holding anything else is refused (``FileExistsError``).
        """
        check_is_fitted(self, "module_")
        params = self.get_params()
        params["hidden_dims"] = list(self._hidden_dims())
        if not isinstance(params["random_state"], Integral):
            params["random_state"] = None  # a RandomState instance is not JSON; the fit is done anyway
        attributes = {**self._saved_attributes(), "module_inputs": self.module_.to_x_mean.out_features}
        tensors = {f"module.{name}": t for name, t in self.module_.state_dict().items()}
        tensors["mean_"] = torch.from_numpy(self.mean_)
        tensors["scale_"] = torch.from_numpy(self.scale_)
        tensors["binary_features_"] = torch.from_numpy(self.binary_features_)
        if self.latent_noise_ is not None:
            tensors["latent_noise_"] = torch.from_numpy(self.latent_noise_)
        save_model(path, type(self).__name__, params, attributes, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Load a detector written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike
            Folder written by ``save``.

        Returns
        -------
        detector
            The fitted detector, on the CPU, of the class ``load`` was called on.

        Raises
        ------
        ModelFileError
            If the folder is missing, tampered with, corrupted, from a newer format version or holds
            another kind of detector.
        """
        saved: SavedModel = load_model(path, cls.__name__)
        try:
            params = with_old_model_defaults(saved.params)
            detector = cls(**{**params, "hidden_dims": tuple(params["hidden_dims"])})
            detector._validate_params()
            # Every weight is overwritten by the saved state below, so the generator's seed is moot.
            module = detector._new_module(saved.attributes["module_inputs"], torch.Generator())
            prefix = "module."
            module.to(cls._module_dtype).load_state_dict(
                {k[len(prefix) :]: v for k, v in saved.tensors.items() if k.startswith(prefix)}
            )
            detector._restore_attributes(saved.attributes)
        except (TypeError, ValueError, KeyError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid {cls.__name__}: {error}") from error
        detector.module_ = module.eval()
        detector.mean_ = saved.tensors["mean_"].numpy()
        detector.scale_ = saved.tensors["scale_"].numpy()
        binary = saved.tensors.get("binary_features_")  # absent from models saved before it existed
        arrays = {"scale_": detector.scale_, "binary_features_": None if binary is None else binary.numpy()}
        detector.binary_features_ = with_old_model_defaults(arrays)["binary_features_"]
        noise = saved.tensors.get("latent_noise_")
        detector.latent_noise_ = None if noise is None else noise.numpy()
        detector._check_loaded_shapes(path)
        return detector

    def _module_inputs(self) -> int:
        """How many inputs the fitted module takes: one per feature (a series' windows: more)."""
        return int(self.n_features_in_)

    def _check_loaded_shapes(self, path: str | os.PathLike[str]) -> None:
        """Refuse a loaded model whose arrays do not fit its config, naming the array: they would
        fail at scoring with a broadcasting error, far from the cause."""
        n_features = int(self.n_features_in_)
        expected = {
            "mean_": (n_features,),
            "scale_": (n_features,),
            "binary_features_": (n_features,),
            "module inputs": (self._module_inputs(),),
        }
        found = {
            "mean_": self.mean_.shape,
            "scale_": self.scale_.shape,
            "binary_features_": self.binary_features_.shape,
            "module inputs": (self.module_.n_features,),
        }
        if self.latent_noise_ is not None:
            expected["latent_noise_"] = (self.mc_samples, self.latent_dim)
            found["latent_noise_"] = self.latent_noise_.shape
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            expected["feature_names_in_"], found["feature_names_in_"] = (n_features,), names.shape
        wrong = [
            f"{name} has shape {found[name]}, expected {shape}"
            for name, shape in expected.items()
            if found[name] != shape
        ]
        if wrong:
            raise ModelFileError(
                f"{path} does not describe a valid {type(self).__name__} with {n_features} features: "
                f"{'; '.join(wrong)}. Save the model again from the fitted detector."
            )
