"""What a detector holds out of training: early stopping validates on it, and its scores, as new data's,
set the threshold (issue 31). A table holds out random rows; a series, blocks of timestamps a window
apart from every training window, since a window shifted by one step is nearly the same window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from vae_anomaly.thresholds import TAIL_MIN_EXCEEDANCES
from vae_anomaly.training import MIN_VALIDATION_ROWS, RowSplit, validation_rows_of
from vae_anomaly.windowing import segment_window_starts

# The fewest scores the threshold is set on: the upper half of them, which its tail is fitted to
# where few are held out, then holds TAIL_MIN_EXCEEDANCES. A table of fewer rows sets it on its own
# training scores, which the model fits (thresholds set that way flagged 77-100% of the clean new
# rows of 10-19-row tables before those cross-fitted; benchmarks/RESULTS.md, issue 31).
MIN_THRESHOLD_ROWS = 2 * TAIL_MIN_EXCEEDANCES

# A table of at least MIN_THRESHOLD_ROWS rows whose validation_fraction comes to fewer than
# training.MIN_VALIDATION_ROWS (under 78 rows at 0.2), too few to validate early stopping on, holds
# none out: it sets its threshold on out-of-fold scores from this many models, each fitted on the
# other folds' rows (``crossfit``), and trains on every row. Set on its own training scores, the
# threshold flagged 77-93% of clean new rows of 10-19-row tables; set on 10-15 held-out rows, 2.7-4.0%
# of 20-50-row ones and, at contamination=0.05, a median 0.9-8.4% of 50-70-row ones (medians of 22
# ADBench sets; benchmarks/RESULTS.md, issue 31).
CROSS_FIT_FOLDS = 5

# A series' validation blocks are this many windows long (each holds window + 1 validation windows),
# at least this many of them, spread evenly over the series (benchmarks/RESULTS.md, issue 31).
BLOCK_WINDOWS = 2
MIN_BLOCKS = 2
# About the shortest series, in windows' length, that holds the blocks and enough training windows.
BLOCK_SERIES_WINDOWS = (BLOCK_WINDOWS + 3) * MIN_BLOCKS


class HeldOut(NamedTuple):
    """The training model rows split into training and validation rows, and the held-out samples.

    ``split`` indexes the model rows the detector trains on; ``samples`` selects, among the detector's
    samples (rows or timestamps), those scored to set the threshold; ``segments``, for a series, are
    the lengths of the separate blocks those timestamps make (each scored as a series of its own).
    """

    split: RowSplit
    samples: np.ndarray
    segments: tuple[int, ...] | None = None


def held_out_rows(n_rows: int, fraction: float, rng: np.random.Generator) -> HeldOut | None:
    """A random ``fraction`` of a table's rows held out of training, to validate on and to set the
    threshold on (None: too few to validate on, see ``cross_fits``).

    Parameters
    ----------
    n_rows : int
        Rows of the table, each one model row.
    fraction : float
        The share to hold out, rounded to whole rows; 0 holds out none.
    rng : numpy.random.Generator
        Picks the rows.

    Returns
    -------
    HeldOut or None
        The split's validation rows are the held-out rows. None when the fraction comes to fewer
        than ``training.MIN_VALIDATION_ROWS`` rows (0 included), or none would be left to train
        (``training.validation_rows_of``: the rule training applies to a random split, so a table
        that holds nothing out also trains on every row).
    """
    n_held = validation_rows_of(n_rows, fraction)
    if not n_held:
        return None
    order = rng.permutation(n_rows)
    validation, train = np.sort(order[:n_held]), np.sort(order[n_held:])
    return HeldOut(RowSplit(train, validation), validation)


def cross_fits(n_rows: int, fraction: float) -> bool:
    """Whether a table of ``n_rows`` sets its threshold on out-of-fold scores (``CROSS_FIT_FOLDS``
    models): its ``fraction`` comes to fewer rows than ``training.MIN_VALIDATION_ROWS`` to hold out,
    but it has ``MIN_THRESHOLD_ROWS`` to score; a ``fraction`` of 0 holds out nothing and cross-fits
    nothing.

    Parameters
    ----------
    n_rows : int
        Rows of the table.
    fraction : float
        ``validation_fraction``.

    Returns
    -------
    bool
    """
    return fraction > 0 and n_rows >= MIN_THRESHOLD_ROWS and round(n_rows * fraction) < MIN_VALIDATION_ROWS


def _blocks(lengths: Sequence[int], length: int, fraction: float) -> list[tuple[int, int]]:
    """[start, end) of each validation block: about ``fraction`` of the timestamps, at least
    ``MIN_BLOCKS`` blocks, centred at even spacing, each moved inside the segment its centre falls in
    (dropped where that segment is shorter than a block or it would overlap the block before)."""
    n_timestamps = int(sum(lengths))
    count = max(MIN_BLOCKS, round(fraction * n_timestamps / length))
    segment_ends = np.cumsum(lengths)
    blocks: list[tuple[int, int]] = []
    for centre in (np.arange(count) + 0.5) * n_timestamps / count:
        segment = int(np.searchsorted(segment_ends, centre, side="right"))
        end = int(segment_ends[segment])
        begin = end - int(lengths[segment])
        start = min(max(int(centre - length / 2), begin), end - length)
        if start >= begin and (not blocks or start >= blocks[-1][1]):
            blocks.append((start, start + length))
    return blocks


def held_out_blocks(
    lengths: Sequence[int], window: int, training_stride: int, fraction: float
) -> HeldOut | None:
    """Blocks of a series held out: the windows inside them validate, and no training window comes
    within a window of them (None: the series is too short for that).

    Parameters
    ----------
    lengths : sequence of int
        Timestamps in each segment of the series (one length for a whole series).
    window : int
        Timestamps per window.
    training_stride : int
        Steps between the training windows' starts, as ``windowing.training_stride`` gives.
    fraction : float
        About this share of the timestamps is held out, in blocks of ``BLOCK_WINDOWS * window``
        timestamps (at least ``MIN_BLOCKS`` of them) spread evenly over the series.

    Returns
    -------
    HeldOut or None
        ``split`` indexes the training windows (``segment_window_starts(lengths, window,
        training_stride)``); ``samples`` are the blocks' timestamps and ``segments`` their lengths.
        None when ``fraction`` is 0, or fewer than ``training.MIN_VALIDATION_ROWS`` windows would
        validate or train: a series shorter than about ``BLOCK_SERIES_WINDOWS`` windows, or segments
        all shorter than a block.
    """
    if fraction <= 0:
        return None
    starts = segment_window_starts(lengths, window, training_stride)
    blocks = _blocks(lengths, BLOCK_WINDOWS * window, fraction)
    if not blocks:
        return None
    block_starts, block_ends = np.array(blocks, dtype=np.int64).T
    # Blocks are sorted, equally long and apart, so the only block a window can come within a window
    # of (or lie in) is the last one that begins less than two windows after (at or before) the
    # window's start: one search per window, not a pass over every window per block.
    reach = np.searchsorted(block_starts - 2 * window, starts, side="left") - 1
    train = (reach < 0) | (starts >= block_ends[reach] + window)
    inside = np.searchsorted(block_starts, starts, side="right") - 1
    validation = (inside >= 0) & (starts + window <= block_ends[inside])
    if validation.sum() < MIN_VALIDATION_ROWS or train.sum() < MIN_VALIDATION_ROWS:
        return None
    samples = np.concatenate([np.arange(start, end) for start, end in blocks])
    split = RowSplit(np.flatnonzero(train), np.flatnonzero(validation))
    return HeldOut(split, samples, tuple(int(length) for length in block_ends - block_starts))
