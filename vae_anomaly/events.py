"""Anomaly events of a series: its flagged timestamps as runs a person can act on, each with where it
starts and ends, the core that holds the anomalous points themselves, its peak and its top channels.

A run of flagged timestamps is wide: under ``aggregation="max"`` every timestamp of a window that saw
an anomaly is flagged, about ``2 * window`` of them around a single spike. Inside the run each point's
own evidence (its part of the scores of the windows that hold it, as ``explain`` splits them) picks
out the anomaly itself: the *core* is the stretch of points whose evidence is at least halfway from
the run's median to its peak. A run whose cores lie more than a window apart is split, one event per
core; a run that reaches the end of the series (a level shift that never returns) is one event, open
at its end.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from vae_anomaly.model_rows import SeriesWindows
from vae_anomaly.sample_scores import SampleScores
from vae_anomaly.scoring import contribution_shares

# A core point's evidence is at least this share of the way from the run's median to its peak.
CORE_PEAK_SHARE = 0.5
# The columns of an events table that hold timestamps (or positions), then all of its columns but the
# channels'.
EVENT_TIME_COLUMNS = ("start", "end", "peak", "core_start", "core_end")
EVENT_COLUMNS = (
    *EVENT_TIME_COLUMNS,
    "score",
    "probability",
    "n_points",
    "open_ended",
)


def flagged_runs(flags: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """The runs of flagged positions, runs at most ``merge_gap`` unflagged positions apart merged.

    Parameters
    ----------
    flags : ndarray of bool, shape (n_timestamps,)
    merge_gap : int
        The most unflagged positions between two runs that are still one run.

    Returns
    -------
    list of (int, int)
        The first and last position of each run, in order.
    """
    positions = np.flatnonzero(flags)
    if not positions.size:
        return []
    breaks = np.flatnonzero(np.diff(positions) > merge_gap + 1)
    firsts = positions[np.r_[0, breaks + 1]]
    lasts = positions[np.r_[breaks, len(positions) - 1]]
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


@dataclass(frozen=True)
class EventSpan:
    """One event's positions in the series: its extent, its core and its peak (all inclusive)."""

    start: int
    end: int
    core_start: int
    core_end: int
    peak: int
    open_ended: bool


def split_run(evidence: np.ndarray, first: int, window: int, open_ended: bool) -> list[EventSpan]:
    """The events of one run, from its points' own evidence.

    Parameters
    ----------
    evidence : ndarray of shape (n_points,)
        The evidence of each point of the run, positions ``first, first + 1, ...``.
    first : int
        The run's first position.
    window : int
        Cores more than this many positions apart are separate events.
    open_ended : bool
        The run reaches the end of the series: it is one event, its core running to that end.

    Returns
    -------
    list of EventSpan
        In order; together they cover the run, split halfway between consecutive cores.
    """
    # NaN evidence (a value far beyond the training data can give inf - inf) counts as the least.
    evidence = np.where(np.isnan(evidence), -np.inf, evidence)
    peak_value, median = float(evidence.max()), float(np.median(evidence))
    cut = median + CORE_PEAK_SHARE * (peak_value - median)
    if not np.isfinite(cut):  # points beyond what the model represents: they are the core
        cut = peak_value
    above = np.flatnonzero(evidence >= cut)
    cores = [above] if open_ended else np.split(above, np.flatnonzero(np.diff(above) > window) + 1)
    halfway = [(left[-1] + right[0]) // 2 + 1 for left, right in itertools.pairwise(cores)]
    bounds = [0, *halfway, len(evidence)]
    spans = []
    for core, (start, stop) in zip(cores, itertools.pairwise(bounds), strict=True):
        spans.append(
            EventSpan(
                start=first + start,
                end=first + stop - 1,
                core_start=first + int(core[0]),
                core_end=first + (len(evidence) - 1 if open_ended else int(core[-1])),
                peak=first + int(core[np.argmax(evidence[core])]),
                open_ended=open_ended,
            )
        )
    return spans


def top_channel_columns(
    channel_parts: np.ndarray, channel_names: list[str], top_channels: int
) -> dict[str, Any]:
    """The ``top_channels`` channels with the largest shares of an event's evidence, largest first.

    Parameters
    ----------
    channel_parts : ndarray of shape (n_channels,)
        Each channel's evidence summed over the event's core; a negative sum (a channel that made the
        core look more normal) counts as none.
    channel_names : list of str
    top_channels : int

    Returns
    -------
    dict
        ``channel_1, share_1, channel_2, share_2, ...``: names and shares (of 1 over all channels).
    """
    shares = contribution_shares(np.clip(channel_parts, 0.0, None)[None, :])[0]
    order = np.argsort(-shares, kind="stable")[:top_channels]
    columns: dict[str, Any] = {}
    for rank, channel in enumerate(order, start=1):
        columns[f"channel_{rank}"] = channel_names[channel]
        columns[f"share_{rank}"] = float(shares[channel])
    return columns


def check_event_options(merge_gap: Any, top_channels: Any) -> None:
    """Refuse a ``merge_gap`` that is not None or a non-negative integer, or a ``top_channels`` that is
    not a positive integer, naming the value."""
    for name, value, least in (("merge_gap", merge_gap, 0), ("top_channels", top_channels, 1)):
        if value is None and name == "merge_gap":
            continue
        if not isinstance(value, Integral) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}.")


def checked_scores(scores: Any, n_timestamps: int) -> np.ndarray:
    """Given anomaly scores as float64, refused unless one per timestamp and none NaN.

    Parameters
    ----------
    scores : array-like of shape (n_timestamps,)
        ``anomaly_score`` of the series (+inf where a score overflowed, as the detector gives it).
    n_timestamps : int
        The series' length.

    Returns
    -------
    ndarray of shape (n_timestamps,), float64

    Raises
    ------
    ValueError
        Naming both lengths or the first position of a NaN, or saying that a value is not a number.
    """
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"scores must be numbers, one per timestamp: {error}") from None
    if values.shape != (n_timestamps,):
        raise ValueError(f"scores has shape {values.shape}, but X has {n_timestamps} timestamps.")
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        raise ValueError(f"scores holds NaN at position {missing[0]}; give anomaly_score(X) as it is.")
    return values


def empty_event_table(n_channel_columns: int) -> pd.DataFrame:
    """An event table without events: the columns ``events`` returns, no rows."""
    names = [*EVENT_COLUMNS]
    for rank in range(1, n_channel_columns + 1):
        names += [f"channel_{rank}", f"share_{rank}"]
    return pd.DataFrame(columns=names)


class FindsEvents:
    """``events`` for the time-series detector, over its scoring (``_scored_rows``, ``_row_scorer``)."""

    window_: int
    score_method: str
    anomaly_threshold_: float
    _scored_rows: Callable[[Any], tuple[Any, SeriesWindows]]
    _row_scorer: Callable[[], AbstractContextManager[Callable[..., SampleScores]]]
    _feature_names: Callable[[], list[str]]
    probability_of_anomaly: Callable[[np.ndarray], np.ndarray]

    def events(
        self, X: Any, *, merge_gap: int | None = None, top_channels: int = 3, scores: Any = None
    ) -> pd.DataFrame:
        """The anomaly events of a series: one row per run of timestamps that ``predict`` flags.

        Runs at most ``merge_gap`` timestamps apart are one run. Inside a run each timestamp's own
        evidence is its part of the scores of the windows that hold it, summed over channels (as
        ``explain(X, shares=False)`` gives it); the run's *core* is the stretch of timestamps whose
        evidence is at least halfway from the run's median to its peak, and a run whose cores lie more
        than ``window_`` apart is split into one event per core, halfway between them. A run that
        reaches the last timestamp (a level shift that never returns) is one event, ``open_ended``,
        its core running to that end. The scores are those of ``anomaly_score``; the per-timestamp
        flags those of ``predict``, which are unchanged.

        Parameters
        ----------
        X : array-like of shape (n_timestamps, n_channels), or DataFrame or Series
            A series as ``fit`` takes it, at least ``window_`` long.
        merge_gap : int or None, default=None
            The most unflagged timestamps between two runs that are still one event; None is
            ``window_``.
        top_channels : int, default=3
            How many channels to name per event (at most the number of channels).
        scores : array-like of shape (n_timestamps,) or None, default=None
            ``anomaly_score(X)``, where it is already at hand (the ``anomaly_score`` column that
            ``predict`` of the logged MLflow model or a batch scoring run wrote for X): X is then not
            scored again, and only the windows around flagged runs are, for their evidence. None
            scores X.

        Returns
        -------
        DataFrame
            One row per event, in time order, with columns:

            - ``start``, ``end``: the first and last timestamp of the event's run (X's timestamps, or
              positions when X has none);
            - ``peak``: the timestamp with the strongest evidence;
            - ``core_start``, ``core_end``: the core, where the anomalous points themselves lie;
            - ``score``: the highest ``anomaly_score`` in the event; ``probability``: its
              ``predict_proba`` anomaly probability;
            - ``n_points``: how many of the event's timestamps are flagged;
            - ``open_ended``: True when the event runs to the last timestamp of X;
            - ``channel_1``, ``share_1``, ...: the channels with the largest shares of the core's
              evidence, and those shares (of 1 over all channels), largest first.

            No rows when nothing is flagged.
        """
        check_event_options(merge_gap, top_channels)
        samples, rows = self._scored_rows(X)
        if scores is not None:
            scores = checked_scores(scores, len(samples.index))
        names = self._feature_names()
        n_channel_columns = min(top_channels, len(names))
        records = []
        with self._row_scorer() as score:
            if scores is None:
                scores = rows.to_samples(score(rows.rows, mask=rows.mask).of_kind(self.score_method))
            flags = scores > self.anomaly_threshold_
            for first, last in flagged_runs(flags, self.window_ if merge_gap is None else merge_gap):
                offset, around = rows.around(first, last)
                parts = around.explained_parts(score, self.score_method)[first - offset : last + 1 - offset]
                for span in split_run(parts.sum(axis=1), first, self.window_, last == len(flags) - 1):
                    extent = slice(span.start, span.end + 1)
                    highest = float(scores[extent].max())
                    core_parts = parts[span.core_start - first : span.core_end + 1 - first].sum(axis=0)
                    records.append(
                        {
                            "start": samples.index[span.start],
                            "end": samples.index[span.end],
                            "peak": samples.index[span.peak],
                            "core_start": samples.index[span.core_start],
                            "core_end": samples.index[span.core_end],
                            "score": highest,
                            "probability": float(self.probability_of_anomaly(np.array([highest]))[0]),
                            "n_points": int(flags[extent].sum()),
                            "open_ended": span.open_ended,
                            **top_channel_columns(core_parts, names, n_channel_columns),
                        }
                    )
        return pd.DataFrame.from_records(records) if records else empty_event_table(n_channel_columns)
