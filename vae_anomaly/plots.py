"""Figures of a fitted detector: its training curves, its score distribution, a series with its flags.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot, so nothing depends on a
display or on pyplot's global state; save it with ``figure.savefig(path)`` or ``mlflow.log_figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# A series plot draws at most this many channels, so a wide table still gives a readable figure.
MAX_PLOTTED_CHANNELS = 6


def loss_curve(history: Sequence[dict[str, float]]) -> Figure:
    """Training and validation loss (negative ELBO) per epoch, with the KL weight's warm-up.

    Parameters
    ----------
    history : sequence of dict
        A detector's ``history_``.

    Returns
    -------
    Figure
    """
    frame = pd.DataFrame(list(history))
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(frame["epoch"], frame["loss"], label="training loss")
    if "validation_loss" in frame:
        axes.plot(frame["epoch"], frame["validation_loss"], label="validation loss")
    axes.set(xlabel="epoch", ylabel="negative ELBO per sample", title="VAE training")
    beta_axes = axes.twinx()
    beta_axes.plot(frame["epoch"], frame["beta"], color="grey", linestyle=":", label="KL weight")
    beta_axes.set_ylabel("KL weight (beta)")
    lines = axes.get_legend_handles_labels()
    beta_lines = beta_axes.get_legend_handles_labels()
    axes.legend(lines[0] + beta_lines[0], lines[1] + beta_lines[1], loc="upper right")
    return figure


def score_histogram(anomaly_scores: np.ndarray, threshold: float) -> Figure:
    """Histogram of anomaly scores with the threshold above which samples are flagged.

    Parameters
    ----------
    anomaly_scores : ndarray of shape (n_samples,)
        Scores from ``anomaly_score``: higher is more anomalous.
    threshold : float
        The detector's ``anomaly_threshold_``.

    Returns
    -------
    Figure
    """
    n_flagged = int((anomaly_scores > threshold).sum())
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.hist(anomaly_scores, bins=100, color="tab:blue")
    axes.axvline(threshold, color="tab:red", label=f"threshold: {n_flagged} of {len(anomaly_scores)} flagged")
    axes.set_yscale("log")
    axes.set(xlabel="anomaly score", ylabel="samples", title="Anomaly scores")
    axes.legend()
    return figure


def series_with_flags(series: pd.DataFrame, anomaly_scores: np.ndarray, threshold: float) -> Figure:
    """Each channel of a series with its flagged timestamps marked, above the anomaly score.

    Parameters
    ----------
    series : DataFrame of shape (n_timestamps, n_channels)
        The series; its index (timestamps or positions) is the x axis. Only the first
        ``MAX_PLOTTED_CHANNELS`` channels are drawn.
    anomaly_scores : ndarray of shape (n_timestamps,)
        The score of each timestamp.
    threshold : float
        The detector's ``anomaly_threshold_``.

    Returns
    -------
    Figure
    """
    channels = list(series.columns[:MAX_PLOTTED_CHANNELS])
    flagged = anomaly_scores > threshold
    figure = Figure(figsize=(10, 1.8 * (len(channels) + 1)), layout="constrained")
    all_axes = figure.subplots(len(channels) + 1, 1, sharex=True, squeeze=False)[:, 0]
    for axes, channel in zip(all_axes[:-1], channels, strict=True):
        values = series[channel]
        axes.plot(series.index, values, linewidth=0.7)
        axes.scatter(series.index[flagged], values[flagged], color="tab:red", s=6, zorder=3)
        axes.set_ylabel(str(channel))
    score_axes = all_axes[-1]
    score_axes.plot(series.index, anomaly_scores, color="black", linewidth=0.7)
    score_axes.axhline(threshold, color="tab:red", linestyle="--")
    score_axes.set_ylabel("anomaly score")
    figure.suptitle(f"{int(flagged.sum())} of {len(flagged)} timestamps flagged (red)")
    return figure


def series_with_events(series: pd.DataFrame, events: pd.DataFrame) -> Figure:
    """Each channel of a series with its anomaly events shaded, their cores darker, a line at each peak
    and the top channel named above it.

    Parameters
    ----------
    series : DataFrame of shape (n_timestamps, n_channels)
        The series; its index (timestamps or positions) is the x axis. Only the first
        ``MAX_PLOTTED_CHANNELS`` channels are drawn.
    events : DataFrame
        ``TimeSeriesVAEDetector.events`` of this series.

    Returns
    -------
    Figure
    """
    channels = list(series.columns[:MAX_PLOTTED_CHANNELS])
    figure = Figure(figsize=(10, 1.8 * len(channels) + 0.6), layout="constrained")
    all_axes = figure.subplots(len(channels), 1, sharex=True, squeeze=False)[:, 0]
    for axes, channel in zip(all_axes, channels, strict=True):
        axes.plot(series.index, series[channel], linewidth=0.7)
        axes.set_ylabel(str(channel))
        for event in events.itertuples():
            axes.axvspan(event.start, event.end, color="tab:red", alpha=0.12, linewidth=0)
            axes.axvspan(event.core_start, event.core_end, color="tab:red", alpha=0.45, linewidth=0)
            axes.axvline(event.peak, color="tab:red", linewidth=0.8)  # a one-point core has no width
    for event in events.itertuples():
        all_axes[0].annotate(
            f"{event.channel_1} ({event.share_1:.0%})",
            xy=(event.peak, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
            color="tab:red",
        )
    open_ended = " (the last runs to the end)" if len(events) and events["open_ended"].iloc[-1] else ""
    figure.suptitle(f"{len(events)} anomaly events{open_ended}: spans light, cores dark, peaks lines")
    return figure
