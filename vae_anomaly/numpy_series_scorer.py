"""A saved series detector scored with numpy alone, missing points included.

``vae-anomaly score`` of a small series spent 3 s importing torch and scikit-learn for a fraction of a
second of work (benchmarks/RESULTS.md, issue 33). ``NumpySeriesScorer`` scores a series as
``TimeSeriesVAEDetector.anomaly_score`` does: split off and check its timestamps, standardize it, cut
its windows every ``stride`` steps (and one ending at its last timestamp), score each window with the
saved modules (``NumpyScoringPass``) and give each timestamp a score by ``aggregation``. A missing
point (NaN) is left out of its windows' reconstruction terms and enters the encoder as the detector's
``gap_fill`` says (refilled from each module's reconstruction, or at the channel mean), as the
detector scores it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vae_anomaly.numpy_vae import NumpyScorer, SavedScoring, module_input
from vae_anomaly.time_index import report_sampling, split_time_index
from vae_anomaly.value_checks import SERIES_NON_FINITE_ADVICE, check_finite
from vae_anomaly.windowing import (
    WindowRule,
    Windows,
    check_series_length,
    window_scores_to_points,
    window_starts,
)


class NumpySeriesScorer(NumpyScorer):
    """A saved ``TimeSeriesVAEDetector``'s ``anomaly_score`` and flags, computed with numpy.

    Build it with :func:`vae_anomaly.numpy_scorer.load_numpy_scorer`.

    Parameters
    ----------
    saved : SavedScoring
        As for :class:`~vae_anomaly.numpy_vae.NumpyScorer`; the features are the channels.
    window, stride : int
        ``window_`` and ``stride``.
    aggregation : {"last", "mean", "max", "min"}
        How the windows' scores become each timestamp's.
    time_column : str or None
        The column that holds the timestamps; None: the frame's DatetimeIndex, if any.
    sampling_interval : Timedelta or None
        ``sampling_interval_``: a series spaced otherwise is scored with an
        ``IrregularSamplingWarning``, as by the detector.

    Attributes
    ----------
    multiply_adds_per_row : int
        The work of scoring one timestamp: a window's pass over every module, per ``stride`` steps.
    """

    def __init__(
        self,
        saved: SavedScoring,
        *,
        window: int,
        stride: int,
        aggregation: WindowRule,
        time_column: str | None,
        sampling_interval: pd.Timedelta | None,
    ) -> None:
        super().__init__(saved)
        self.window, self.stride, self.aggregation = window, stride, aggregation
        self.time_column, self.sampling_interval = time_column, sampling_interval
        self.multiply_adds_per_row = math.ceil(saved.scoring_pass.multiply_adds_per_row / stride)

    def anomaly_score(self, frame: pd.DataFrame) -> np.ndarray:
        """The detector's ``anomaly_score`` of each timestamp: higher is more anomalous.

        Parameters
        ----------
        frame : DataFrame
            The channels, ``feature_names`` in that order, and the time column where the detector
            has one; missing points (NaN) allowed.

        Returns
        -------
        ndarray of shape (n_timestamps,), float64

        Raises
        ------
        ValueError
            If the columns are not the detector's, the timestamps are missing, unsorted or repeated,
            a value is infinite, or the series is shorter than a window.
        """
        values, index = split_time_index(frame, self.time_column, len(frame))
        self._check_columns(values)
        x = values.to_numpy(dtype=np.float64)
        check_finite(x, np.asarray(self.feature_names), allow_nan=True, advice=SERIES_NON_FINITE_ADVICE)
        check_series_length(len(x), self.window)
        report_sampling(index, self.sampling_interval)
        starts = window_starts(len(x), self.window, self.stride)
        missing = np.isnan(x)
        complete = not missing.any()
        windows = Windows(module_input(x, self._mean, self._scale, complete), self.window, starts)
        observed = None if complete else Windows(~missing, self.window, starts).__getitem__
        window_scores = self._scores_in_passes(len(windows), windows.__getitem__, observed)
        return window_scores_to_points(window_scores, starts, self.window, len(x), self.aggregation)
