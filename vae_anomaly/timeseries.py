"""TimeSeriesVAEDetector: a score for every timestamp of a univariate or multivariate series."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.column_statistics import ColumnStatistics
from vae_anomaly.events import FindsEvents
from vae_anomaly.holdout import BLOCK_SERIES_WINDOWS, HeldOut, held_out_blocks
from vae_anomaly.input_checks import Samples, checked_values
from vae_anomaly.model_rows import SeriesWindows
from vae_anomaly.parameters import detector_parameters, document_shared_parameters
from vae_anomaly.scaling import standardized_arrays
from vae_anomaly.scoring import RowSource
from vae_anomaly.thresholds import offset_over_phases, robust_spread
from vae_anomaly.time_index import report_sampling, split_time_index
from vae_anomaly.training import MIN_VALIDATION_ROWS
from vae_anomaly.user_warnings import ShortSeriesWarning, warn
from vae_anomaly.value_checks import SERIES_NON_FINITE_ADVICE
from vae_anomaly.windowing import (
    WINDOW_RULES,
    WindowRule,
    auto_window,
    check_series_length,
    checked_segments,
    segment_window_starts,
    training_stride,
)


@document_shared_parameters
@detector_parameters
class TimeSeriesVAEDetector(FindsEvents, BaseVAEDetector):
    """Anomaly detector for time series: a VAE over sliding windows, one score per timestamp.

    The series is standardized per channel with the training mean and standard deviation (at least
    ``min_relative_scale`` of the channel's absolute mean; 0/1 flags keep their scale, see
    ``binary_features``), cut into windows of ``window`` timestamps every ``stride`` steps (plus one
    window ending at the last timestamp), and each window, flattened, is one row for the same VAE,
    training loop and scoring as :class:`VAEAnomalyDetector`. Window scores map back to timestamps by
    ``aggregation``. Windows are cut from a strided view of the series and scored in batches, so
    scoring never holds all windows;
    training does hold its windows: every window of the training series (stride 1) up to 65,536 of
    them and 2^25 values (128 MiB as float32), else the smallest stride that keeps within that, at
    most ``stride``.

    Missing values (NaN) are allowed: they enter the encoder as the channel mean in training and as
    ``gap_fill`` says in scoring, and are left out of the ELBO's reconstruction term in both (as
    Donut does); a window's reconstruction NLL is scaled up from its observed points to the whole
    window so windows with and without gaps compare; ``score_components`` says which timestamps had
    them. A window that is mostly missing says little and may score as anomalous: resample long
    outages away. Infinite values raise.

    Parameters
    ----------
    window : int or "auto", default="auto"
        Timestamps per window. "auto" picks by the number of channels: 128 for up to 4 channels (on
        NAB's univariate series 128 beat 64 and 32 by far), 64 for 5 to 8, 32 from 9 on (on the
        multivariate dev series, where a 128-step window of 25 channels is a 3,200-wide input, 32
        beat 128 by far): the longest of the three whose window holds at most 512 values, and 32 when
        none does; halved (down to 8) until it fits in the training series and in each of its
        ``segments``. ``window_`` holds the choice.
    stride : int, default=4
        Steps between consecutive windows when scoring (and the threshold), at most ``window``; every
        timestamp is still scored, by the ``window / stride`` windows that cover it. Stride 4 scores
        four times as fast as stride 1, at a small cost in accuracy (``benchmarks/RESULTS.md``).
        Training takes every window of a series up to a cap (see above): on NAB and the
        multivariate dev series that beat training at stride 4.
    aggregation : {"max", "mean", "last", "min"}, default="max"
        How a timestamp's score comes from the windows covering it: their maximum; their mean; the
        score of the window ending at it (causal, as an online detector); or their minimum. "max"
        had the best VUS-PR and PR-AUC on NAB, then "mean", then "last", then "min"
        (``benchmarks/RESULTS.md``), but it flags every timestamp of a window that saw an anomaly:
        a 10-point burst flags about ``2 * window`` timestamps. "min" flags the timestamps that
        every covering window finds anomalous, which lands on the burst itself (to within
        ``stride``); it ranks NAB's wide labelled windows worse. See
        :func:`vae_anomaly.windowing.window_scores_to_points`.
    time_column : str or None, default=None
        A DataFrame column holding the timestamps; without it a DataFrame's DatetimeIndex is used.
        Timestamps must be sorted and unique; uneven spacing raises an ``IrregularSamplingWarning``.
        Other inputs (arrays, DataFrames without a DatetimeIndex) are taken in row order.
    binary_features : {"keep", "standardize"}, default="keep"
        Channels whose training values are all 0 or 1, both seen (command flags, on/off states).
        "keep" centres them but leaves their scale at 1, so a flip counts one unit; "standardize"
        divides them by their standard deviation like every other channel, which makes a flip of a
        flag that is on in 0.3% of the training rows count 18 standard deviations, and harmless flips
        then outrank real anomalies in the readings. On SMAP's telemetry (a reading and 24 command
        flags) "keep" lifted VUS-PR from 0.33 to 0.46 on one half of the series and from 0.37 to
        0.49 on the other. ``binary_features_`` says which channels were kept.
    early_weight : float, default=0.0
        As for ``VAEAnomalyDetector``: how much a copy of the model after a tenth of the planned
        epochs counts in every score beside the final one. 0 scores with the final weights alone:
        on NAB, 0.5 gave a mean VUS-PR of 0.602 against 0.606 (benchmarks/RESULTS.md).
    %(shared_parameters)s

    Attributes
    ----------
    window_ : int
        The window length in use: ``window``, or the one "auto" picked.
    module_ : GaussianVAE
        The trained torch module (CPU, float32), with ``window_ * n_features_in_`` inputs.
    mean_ : ndarray of shape (n_features_in_,)
        Training mean of each channel, ignoring missing values.
    scale_ : ndarray of shape (n_features_in_,)
        Training standard deviation of each channel, at least ``min_relative_scale`` times its
        absolute mean (1 where it is 0, and for the channels in ``binary_features_``).
    binary_features_ : ndarray of bool, shape (n_features_in_,)
        The channels whose training values are all 0 or 1 (flags) and that
        ``binary_features="keep"`` left at scale 1 (none under "standardize").
    latent_noise_ : ndarray of shape (mc_samples, latent_dim) or None
        The fixed latent draws used for scoring.
    early_module_ : GaussianVAE or None
        The early weights scored beside ``module_`` (``early_weight``); None without them.
    early_share_ : dict of {"elbo", "reconstruction"} to float, or None
        The early module's share of each score: a score is ``(1 - share) * final + share * early``.
    offset_ : float
        Threshold on ``score_samples``: timestamps below it are anomalies.
    anomaly_threshold_ : float
        ``-offset_``: samples whose ``anomaly_score`` is above it are predicted outliers.
    score_scale_ : float
        Robust spread of the training anomaly scores (IQR / 1.349), which ``predict_proba`` scales by.
    history_ : list of dict
        Per-epoch training record.
    sampling_interval_ : pandas.Timedelta or None
        Median spacing of the training timestamps, when they were given.
    segments_ : tuple of int or None
        The lengths of the segments ``fit`` was given (``segments``), None when it was one series.
    n_features_in_ : int
        Number of channels seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Channel names, when X was a DataFrame with string column names.

    See Also
    --------
    VAEAnomalyDetector : The same VAE for independent rows.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    .. [2] H. Xu et al., "Unsupervised Anomaly Detection via Variational Auto-Encoder for Seasonal KPIs
       in Web Applications" (Donut), WWW 2018: the masked ELBO that skips missing points.

    Examples
    --------
    >>> import numpy as np
    >>> from vae_anomaly import TimeSeriesVAEDetector
    >>> series = np.sin(np.arange(2000) * 2 * np.pi / 50)
    >>> detector = TimeSeriesVAEDetector(window=25, epochs=30, random_state=0).fit(series)
    >>> series[1500] += 3.0
    >>> int(np.argmin(detector.score_samples(series))) in range(1490, 1511)
    True
    """

    scores_whole_series: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseVAEDetector._parameter_constraints,
        "window": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "aggregation": [StrOptions(set(WINDOW_RULES))],
        "time_column": [None, str],
    }
    _feature_noun: ClassVar[str] = "Channels"

    window: int | Literal["auto"] = "auto"
    stride: int = 4
    aggregation: WindowRule = "max"
    time_column: str | None = None  # a parameter here; a class attribute of the base
    binary_features: Literal["keep", "standardize"] = "keep"
    early_weight: float = 0.0
    validation_fraction: float = 0.1

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ input
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        feature_statistics: ColumnStatistics | None = None,
        segments: Sequence[int] | None = None,
    ) -> Self:
        """Train the VAE on the windows of the series X and set the outlier threshold.

        Blocks of X a window apart from every training window validate for early stopping (random
        windows where X is too short for them); ``offset_`` is set on the scores of X's timestamps and
        of the blocks' (see ``validation_fraction`` and ``contamination``), each scored with the
        windows at every phase of the ``stride``, since a new series' windows start at its own first
        timestamp, at any phase relative to X's; the threshold is the highest of these.

        Parameters
        ----------
        X : array-like of shape (n_timestamps,) or (n_timestamps, n_channels), or DataFrame
            The training series in time order. A DataFrame records ``feature_names_in_``.
        y : Ignored
            Present for API consistency.
        feature_statistics : ColumnStatistics or None, default=None
            Statistics of every timestamp of a series that X is a sample of
            (``sample_series_parquet`` gathers them): ``mean_``, ``scale_`` and ``binary_features_``
            come from them instead of from X. Their names must be X's channels, in order
            (``x0, x1, ...`` for an array). None fits them on X.
        segments : sequence of int or None, default=None
            X is these many consecutive timestamps of separate stretches of a series, or of separate
            series of the same kind (e.g. one per run of a machine), one after another; they must add
            up to X's length, and each hold at least ``window`` timestamps. No window spans two of
            them, each one's timestamps must be sorted (not the segments among them), and the step
            from one to the next is no sampling step. None: X is one series.

        Returns
        -------
        self
        """
        self._check_settings()  # a bad setting fails before any work
        return self._fit_samples(X, self._read(X, reset=True, segments=segments), feature_statistics)

    def _read(self, X: Any, *, reset: bool, segments: Sequence[int] | None = None) -> Samples:
        """Split off the timestamps and check them, then the values (``checked_values``) and length."""
        if isinstance(X, pd.Series):
            X = X.to_frame()
        n_rows = len(X) if hasattr(X, "__len__") else 0
        lengths = None if segments is None else checked_segments(segments, n_rows)
        segment_starts = None if lengths is None else np.cumsum(lengths[:-1], dtype=np.int64)
        X, index = split_time_index(X, self.time_column, n_rows, segment_starts)
        if isinstance(X, np.ndarray | list | tuple) and np.ndim(X) == 1:
            if not reset and self.n_features_in_ != 1:
                raise ValueError(
                    f"X is 1-D, a univariate series of {len(X)} timestamps, but the detector was fitted "
                    f"on {self.n_features_in_} channels. Reshape your data to "
                    f"(n_timestamps, {self.n_features_in_})."
                )
            X = np.reshape(np.asarray(X), (-1, 1))  # a univariate series
        x, complete = checked_values(self, X, reset=reset, allow_nan=True, advice=SERIES_NON_FINITE_ADVICE)
        if reset:
            within = len(x) if lengths is None else int(min(lengths))  # a window must fit in each segment
            self.window_ = auto_window(x.shape[1], within) if self.window == "auto" else int(self.window)
        if self.stride > self.window_:
            raise ValueError(
                f"stride={self.stride} is larger than window={self.window_}: the timestamps between "
                "two windows would be in none and get no score. Use a stride of at most the window."
            )
        check_series_length(len(x), self.window_)
        if lengths is not None and min(lengths) < self.window_:
            short = int(np.argmin(lengths))
            raise ValueError(
                f"segments[{short}] holds {lengths[short]} timestamps, but window={self.window_} needs "
                f"at least {self.window_} in each segment."
            )
        interval = report_sampling(
            index, None if reset else self.sampling_interval_, segment_starts=segment_starts
        )
        if reset:
            self.sampling_interval_, self.segments_ = interval, lengths
        return Samples(x, index, complete, lengths)

    def _model_rows(
        self,
        samples: Samples,
        standardized: tuple[RowSource, RowSource | None],
        *,
        training: bool = False,
        phase: int = 0,
    ) -> SeriesWindows:
        """The windows every ``stride`` steps of the standardized series (of each of its segments),
        the second one starting at ``phase``; for training, every ``training_stride`` steps (denser
        for short series)."""
        values, observed = standardized_arrays(*standardized)
        lengths = samples.segments or (len(values),)
        stride = (
            training_stride(lengths, self.window_, self.stride, values.shape[1]) if training else self.stride
        )
        return SeriesWindows.cut(values, observed, self.window_, stride, self.aggregation, lengths, phase)

    def _scores_after_fit(
        self, samples: Samples, rows: tuple[RowSource, RowSource | None]
    ) -> Callable[[], np.ndarray]:
        """The timestamps' scores with the windows at each phase of the stride, 0 first: a
        timestamp's score depends on where the windows that hold it start, and a new series is cut
        from its own first timestamp, so the threshold must hold at every phase the windows can take."""
        return self._scores_of([self._model_rows(samples, rows, phase=k) for k in range(self.stride)])

    def _held_out(self, samples: Samples, rng: np.random.Generator) -> HeldOut | None:
        """Blocks of the series a window apart from every training window (``held_out_blocks``), so
        that early stopping sees the model fit its training windows too closely; None where the series
        is too short for them, and then random windows validate (none where there are too few) and the
        threshold comes from the training scores, with a ``ShortSeriesWarning`` that says so."""
        n_timestamps = len(samples.values)
        lengths = samples.segments or (n_timestamps,)
        stride = training_stride(lengths, self.window_, self.stride, samples.values.shape[1])
        held_out = held_out_blocks(lengths, self.window_, stride, self.validation_fraction)
        if held_out is not None or self.validation_fraction == 0:
            return held_out
        n_windows = len(segment_window_starts(lengths, self.window_, stride))
        why = (
            f"too few to hold out validation_fraction={self.validation_fraction} of them (at least "
            f"{MIN_VALIDATION_ROWS} windows) for early stopping, so it trains for every planned epoch"
            if round(n_windows * self.validation_fraction) < MIN_VALIDATION_ROWS
            else f"too short to hold out validation blocks (about {BLOCK_SERIES_WINDOWS} windows' length)"
        )
        warn(
            f"TimeSeriesVAEDetector was fitted on {n_timestamps} timestamps, {n_windows} "
            f"window{'s' * (n_windows != 1)} of {self.window_}: {why}, and its threshold is set on the "
            "training timestamps' scores, which it fits closely: expect more of new, normal data to be "
            "flagged than contamination says. Fit on a longer series, or a shorter window.",
            ShortSeriesWarning,
        )
        return None

    def _held_out_threshold(
        self, held_out_scores: np.ndarray, training_scores: Callable[[], np.ndarray]
    ) -> tuple[float, float]:
        """The highest of the thresholds ``contamination`` sets on the training timestamps' scores and
        on the held-out blocks', at each phase ``_scores_after_fit`` scored; the training scores'
        spread."""
        training = training_scores()
        offset = offset_over_phases([-training, -held_out_scores], self.contamination)
        return offset, robust_spread(training[0])

    # ------------------------------------------------------------ persistence
    def _saved_attributes(self) -> dict[str, Any]:
        interval = self.sampling_interval_
        return {
            **super()._saved_attributes(),
            "sampling_interval_": None if interval is None else str(interval),
            "window_": int(self.window_),
            "segments_": None if self.segments_ is None else list(self.segments_),
        }

    def _module_inputs(self) -> int:
        return int(self.window_ * self.n_features_in_)

    def _restore_attributes(self, attributes: dict[str, Any]) -> None:
        super()._restore_attributes(attributes)
        self.window_ = attributes["window_"]
        interval = attributes["sampling_interval_"]
        self.sampling_interval_ = None if interval is None else pd.Timedelta(interval)
        segments = attributes.get("segments_")  # absent from files saved before segments existed
        self.segments_ = None if segments is None else tuple(segments)
