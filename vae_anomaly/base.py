"""The base of both VAE detectors: the estimator API written once over two hooks.

``fit``, ``anomaly_score``, ``score_components``, ``explain`` and ``feature_frame`` are defined here;
``predict``, ``decision_function`` and ``predict_proba`` come from ``thresholds``, training from
``fitting``, ``save``/``load`` from ``saving``. A detector says only how it reads its input
(``_read``: checked values, the index of its outputs, whether anything is missing) and which rows the
VAE sees for it (``_model_rows``: a table's rows, a series' windows; ``model_rows``), which also map
the rows' results back to its samples.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from vae_anomaly.column_statistics import ColumnStatistics
from vae_anomaly.fitting import TrainsVAE
from vae_anomaly.holdout import HeldOut
from vae_anomaly.input_checks import Samples
from vae_anomaly.model_rows import ModelRows
from vae_anomaly.parameters import (
    SHARED_PARAMETER_CONSTRAINTS,
    detector_parameters,
    with_old_model_defaults,
)
from vae_anomaly.sample_scores import SCORE_COMPONENTS, SampleScores
from vae_anomaly.saving import SavedDetector
from vae_anomaly.scaling import (
    ObservedRows,
    StandardizedRows,
    fit_scaling,
    scaling_from_statistics,
    standardized_arrays,
)
from vae_anomaly.scoring import (
    RowSource,
    contribution_shares,
    fitted_scorer,
)
from vae_anomaly.thresholds import ThresholdedScores

ScoreKind = Literal["elbo", "reconstruction"]


@detector_parameters
class BaseVAEDetector(
    ThresholdedScores, SavedDetector, TrainsVAE, OutlierMixin, BaseEstimator, metaclass=ABCMeta
):
    """Base class of the VAE detectors; not for direct use.

    It declares and validates the parameters both detectors share (``SHARED_PARAMETERS_DOC`` documents
    them) as fields of ``detector_parameters``, which writes each detector's ``__init__`` from them: a
    subclass declares only its own parameters (or a shared one's other default) and fills the hooks
    ``_read`` and ``_model_rows``.

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
    time_column: ClassVar[str | None] = None
    #: What error messages call the features: "Columns" of a table, "Channels" of a series.
    _feature_noun: ClassVar[str] = "Features"

    min_relative_scale: float = 0.01
    latent_dim: int = 8
    hidden_dims: tuple[int, ...] = (64, 32)
    beta: float = 1.0
    kl_warmup_epochs: int = 10
    epochs: int | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    learning_rate: float = 1e-2
    weight_decay: float = 1e-5
    gap_injection: float | Literal["auto"] = "auto"
    gap_fill: Literal["reconstruction", "mean"] = "reconstruction"
    validation_fraction: float = 0.2
    patience: int = 30
    score_method: ScoreKind = "elbo"
    mc_samples: int | None = None
    contamination: float | Literal["auto"] = "auto"
    device: str = "auto"
    scoring_device: str = "auto"
    n_threads: int | Literal["auto"] = "auto"
    random_state: int | np.random.RandomState | None = None
    verbose: int = 0
    #: What scaling does to features of 0s and 1s, and the weight of the early checkpoint's scores:
    #: parameters of each detector, whose defaults differ (the time-series detector declares its own).
    binary_features: Literal["keep", "standardize"] = "standardize"
    early_weight: float = 0.5

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A detector pickled before a parameter existed was fitted with the behaviour it now turns on.
        super().__setstate__(with_old_model_defaults(state))

    def _feature_names(self) -> list[str]:
        """Column names for outputs: ``feature_names_in_`` when fitted on names, else x0, x1, ..."""
        names = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return [str(name) for name in names]

    def _fit_scaling(self, samples: Samples, statistics: ColumnStatistics | None = None) -> None:
        """Set ``mean_``, ``scale_`` and ``binary_features_`` from the samples, or from ``statistics``
        of the whole training set (see :func:`scaling.fit_scaling`)."""
        rules = {
            "min_relative_scale": self.min_relative_scale,
            "keep_binary": self.binary_features == "keep",
            "empty_features": lambda seen: (
                f"{self._feature_noun} {np.asarray(self._feature_names())[~seen].tolist()}"
            ),
        }
        if statistics is None:
            scaling = fit_scaling(samples.values, samples.complete, **rules)
        else:
            names = tuple(self._feature_names())
            if statistics.names != names:
                raise ValueError(
                    f"feature_statistics describe the {self._feature_noun.lower()} "
                    f"{list(statistics.names)}, but X has {list(names)}."
                )
            scaling = scaling_from_statistics(statistics, **rules)
        self.mean_, self.scale_, self.binary_features_ = scaling

    def _row_sources(self, samples: Samples) -> tuple[StandardizedRows, ObservedRows | None]:
        """The samples standardized in float32 and their observed-value mask (None when nothing is
        missing), both read a slice of rows at a time, as scoring takes them."""
        rows = StandardizedRows(samples.values, self.mean_, self.scale_, samples.complete)
        return rows, None if samples.complete else ObservedRows(samples.values)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, *, feature_statistics: ColumnStatistics | None = None) -> Self:
        """Train the VAE on X's samples and set the outlier threshold.

        ``VAEAnomalyDetector`` holds ``validation_fraction`` of the rows out of training, at random:
        early stopping validates on them, and ``offset_`` is set so that ``contamination`` of new rows
        like them would be flagged. The rows the model trained on score lower than new ones (it has
        fitted them), so ``predict`` and ``fit_predict`` on the training rows flag fewer of them than
        ``contamination`` says. ``TimeSeriesVAEDetector`` validates on blocks of the series held out
        a window apart from training (random windows where the series is too short for them) and
        sets ``offset_`` by the highest of the rule on the training timestamps' and on the blocks'
        scores, at every phase of the windows' stride (see ``validation_fraction`` and
        ``contamination``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or DataFrame
            Training samples: rows of a table (``VAEAnomalyDetector``), or a series in time order,
            shape (n_timestamps,) or (n_timestamps, n_channels) (``TimeSeriesVAEDetector``). A
            DataFrame records ``feature_names_in_``; a column named as the scores (``is_anomaly``,
            ``anomaly_score``, ``anomaly_probability``, ``contribution_*``, also after a
            ColumnTransformer's ``step__`` prefix) is refused with a ValueError.
        y : Ignored
            Present for API consistency.
        feature_statistics : ColumnStatistics or None, default=None
            Statistics of every row of a training set that X is a sample of (``sample_parquet``
            gathers them): the standardization (``mean_``, ``scale_``, ``binary_features_``) comes
            from them instead of from X. Their names must be X's features, in order (``x0, x1, ...``
            for an array). None fits it on X.

        Returns
        -------
        self
        """
        self._check_settings()  # a bad setting fails before any work
        return self._fit_samples(X, self._read(X, reset=True), feature_statistics)

    def _fit_samples(self, X: Any, samples: Samples, feature_statistics: ColumnStatistics | None) -> Self:
        """``fit`` once X is read: scaling, training, threshold."""
        self._fit_scaling(samples, feature_statistics)
        standardized = standardized_arrays(*self._row_sources(samples))
        training = self._model_rows(samples, standardized, training=True)
        seed = self._training_seed()
        held_out = self._held_out(samples, np.random.default_rng(seed))
        if held_out is not None:
            part = held_out.samples
            kept = Samples(samples.values[part], samples.index[part], samples.complete, held_out.segments)
            rows, mask = standardized  # whole arrays: the held-out rows are already standardized
            kept_rows = (rows[part], None if mask is None else mask[part])
            threshold_from = (held_out.split, self._scores_after_fit(kept, kept_rows))
        else:
            threshold_from = self._out_of_fold(samples, seed)
        self._fit_and_threshold(
            X,
            *training.arrays(),
            seed,
            self._scores_after_fit(samples, standardized),
            threshold_from,
        )
        return self

    def _scores_after_fit(
        self, samples: Samples, rows: tuple[RowSource, RowSource | None]
    ) -> Callable[[], np.ndarray]:
        """A function giving the ``score_method`` scores of ``samples`` (whose standardized ``rows``
        these are) once the module is fitted, of shape (n_phases, n_samples): row 0 the scores
        ``anomaly_score`` gives, and a row for each other way the detector could cut the samples into
        model rows (none for a table; a series' other window phases), at each of which the threshold
        must hold."""
        return self._scores_of([self._model_rows(samples, rows)])

    def _scores_of(self, phases: list[ModelRows]) -> Callable[[], np.ndarray]:
        """``_scores_after_fit`` of the model rows of each phase."""
        return lambda: np.stack(
            [rows.to_samples(self._score_rows(rows).of_kind(self.score_method)) for rows in phases]
        )

    # ------------------------------------------------------------- the hooks
    @abstractmethod
    def _read(self, X: Any, *, reset: bool) -> Samples:
        """X's checked values and the index its outputs carry; ``reset`` in ``fit`` (which sets
        ``n_features_in_`` and what else the detector learns of its input's shape)."""

    @abstractmethod
    def _held_out(self, samples: Samples, rng: np.random.Generator) -> HeldOut | None:
        """The samples held out of training (``validation_fraction`` of them) and the split of the
        training model rows it makes; None when there are too few to hold out. ``rng`` draws them."""

    def _out_of_fold(self, samples: Samples, seed: int) -> tuple[None, Callable[[], np.ndarray]] | None:
        """Where nothing is held out, scores of the training samples from models that did not fit
        them, to set the threshold on (the module then trains on every sample): none by default."""
        return None

    @abstractmethod
    def _model_rows(
        self, samples: Samples, standardized: tuple[RowSource, RowSource | None], *, training: bool = False
    ) -> ModelRows:
        """The rows the VAE scores for ``samples`` (for ``training``: the rows it trains on), from the
        samples ``standardized`` and their observed-value mask (None: nothing missing): whole arrays in
        ``fit``, sources read a slice at a time in scoring. The rows also map results back to samples."""

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
        return samples, self._model_rows(samples, self._row_sources(samples))

    def _score_rows(self, rows: ModelRows) -> SampleScores:
        with self._row_scorer() as score:
            return score(rows.rows, mask=rows.mask)

    def _row_scorer(self) -> AbstractContextManager[Callable[..., SampleScores]]:
        """``score_rows`` with the fitted module (and its early checkpoint, if kept) on the scoring
        device, as :func:`scoring.fitted_scorer` sets it up."""
        return fitted_scorer(
            self.module_,
            self.early_module_,
            self.early_share_,
            latent_noise=self.latent_noise_,
            device=self.scoring_device,
            n_threads=self.n_threads,
            refill_gaps=self._refills_gaps,
        )

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
        return rows.to_samples(self._score_rows(rows).of_kind(self.score_method if kind is None else kind))

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
