"""The VAE's rows for a detector's samples, and how results per row map back to the samples.

A table's samples are its rows (``TableRows``); a series' samples are timestamps, and the VAE sees
windows of them (``SeriesWindows``). The detectors' shared code scores either kind the same way:
``rows`` and ``mask`` go to ``scoring.score_rows``, ``to_samples`` maps its results back, and
``explained_parts`` splits each sample's score over its features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vae_anomaly.sample_scores import SampleScores
from vae_anomaly.scoring import RowSource
from vae_anomaly.windowing import (
    WindowRule,
    Windows,
    segment_window_starts,
    window_scores_to_points,
    window_values_to_points,
)

# explained_parts scores this many windows at a time, so its per-point arrays stay bounded for long series.
EXPLAIN_CHUNK_WINDOWS = 65536

RowScorer = Callable[..., SampleScores]


class ModelRows(Protocol):
    """What the VAE scores for a detector's samples, and the way back."""

    rows: RowSource
    mask: RowSource | None

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows and their observed-value mask as whole arrays, as training takes them."""
        ...

    def to_samples(self, values: np.ndarray) -> np.ndarray:
        """Per-row results, of shape (n_rows,) or (n_rows, k), as per-sample results."""
        ...

    def explained_parts(self, score: RowScorer, method: str) -> np.ndarray:
        """Each sample's ``method`` score split over its features, of shape (n_samples, n_features)."""
        ...


def _whole(rows: RowSource, mask: RowSource | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``rows`` and ``mask`` read whole."""
    return rows[:], None if mask is None else mask[:]


@dataclass(frozen=True)
class TableRows:
    """A table's rows, one model row per sample.

    Parameters
    ----------
    rows : RowSource
        Standardized rows: an array, or a source standardizing a slice at a time.
    mask : RowSource or None
        Their observed-value mask; None when nothing is missing.
    """

    rows: RowSource
    mask: RowSource | None

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows and mask as whole arrays."""
        return _whole(self.rows, self.mask)

    def to_samples(self, values: np.ndarray) -> np.ndarray:
        """``values`` as they are: a row is a sample."""
        return values

    def explained_parts(self, score: RowScorer, method: str) -> np.ndarray:
        """The features' parts of each row's score, from one scoring pass."""
        return score(self.rows, per_feature=True, mask=self.mask).feature_parts(method)


@dataclass(frozen=True)
class SeriesWindows:
    """The windows of a standardized series every ``stride`` steps, and the timestamps they cover.

    Parameters
    ----------
    rows : Windows
        The windows, each ``window * n_channels`` values.
    mask : Windows or None
        Their observed-value mask; None when nothing is missing.
    starts : ndarray of int
        Each window's first timestamp.
    window : int
        Timestamps per window.
    n_timestamps : int
        Length of the series.
    aggregation : str
        How the scores of the windows holding a timestamp become its score
        (:func:`vae_anomaly.windowing.window_scores_to_points`).
    """

    rows: Windows
    mask: Windows | None
    starts: np.ndarray
    window: int
    n_timestamps: int
    aggregation: WindowRule

    @classmethod
    def cut(
        cls,
        standardized: np.ndarray,
        observed: np.ndarray | None,
        window: int,
        stride: int,
        aggregation: WindowRule,
        lengths: Sequence[int] | None = None,
        phase: int = 0,
    ) -> SeriesWindows:
        """The windows every ``stride`` steps of a standardized series and of its observed-value mask.

        Parameters
        ----------
        standardized : ndarray of shape (n_timestamps, n_channels), float32
        observed : ndarray of the same shape, or None when nothing is missing
        window, stride : int
        aggregation : str
        lengths : sequence of int or None, default=None
            The series' segments, whose windows never span two
            (:func:`~vae_anomaly.windowing.segment_window_starts`); None: it is one series.
        phase : int, default=0
            Where the second window of each segment starts (:func:`~vae_anomaly.windowing.window_starts`).

        Returns
        -------
        SeriesWindows
        """
        starts = segment_window_starts(
            [len(standardized)] if lengths is None else lengths, window, stride, phase
        )
        mask = None if observed is None else Windows(observed, window, starts)
        return cls(
            Windows(standardized, window, starts), mask, starts, window, len(standardized), aggregation
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The windows and their mask as whole arrays."""
        return _whole(self.rows, self.mask)

    def to_samples(self, values: np.ndarray) -> np.ndarray:
        """Per-window results as per-timestamp results, by ``aggregation``."""
        return window_scores_to_points(values, self.starts, self.window, self.n_timestamps, self.aggregation)

    def around(self, first: int, last: int) -> tuple[int, SeriesWindows]:
        """The windows that hold any of timestamps ``first..last``, as a series of their own.

        Returns
        -------
        offset : int
            The timestamp where that series starts: the first of these windows' start.
        windows : SeriesWindows
            Their timestamps counted from ``offset``. A point of ``first..last`` is held by the same
            windows here as in the whole series, so its ``explained_parts`` are the same.
        """
        chosen = slice(
            int(np.searchsorted(self.starts, first - self.window + 1)),
            int(np.searchsorted(self.starts, last, side="right")),
        )
        starts = self.starts[chosen]
        offset = int(starts[0])
        windows = SeriesWindows(
            self.rows.select(chosen),
            None if self.mask is None else self.mask.select(chosen),
            starts - offset,
            self.window,
            int(starts[-1]) + self.window - offset,
            self.aggregation,
        )
        return offset, windows

    def explained_parts(self, score: RowScorer, method: str) -> np.ndarray:
        """Each point's part of its windows' scores, averaged over the windows that hold it."""
        n_features = self.rows.n_channels
        sums = np.zeros((self.n_timestamps, n_features))
        counts = np.zeros(self.n_timestamps)
        for first in range(0, len(self.starts), EXPLAIN_CHUNK_WINDOWS):
            chunk = slice(first, first + EXPLAIN_CHUNK_WINDOWS)
            scores = score(
                self.rows[chunk], per_feature=True, mask=None if self.mask is None else self.mask[chunk]
            )
            point_values = scores.feature_parts(method).reshape(-1, self.window, n_features)
            chunk_sums, chunk_counts = window_values_to_points(
                point_values, self.starts[chunk], self.n_timestamps
            )
            sums += chunk_sums
            counts += chunk_counts
        return sums / counts[:, None]
