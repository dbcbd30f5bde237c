"""Autologging: every detector fit in this process logs its parameters, epochs, scores and plots."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

import vae_anomaly
from vae_anomaly.callbacks import FitCallback, register_callback, unregister_callback

TRAINING_SCORE_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
# Logged metric name -> key of the epoch's history_ record.
EPOCH_METRICS = {
    "train_loss": "loss",
    "train_reconstruction": "reconstruction",
    "train_kl": "kl",
    "kl_weight": "beta",
    "learning_rate": "learning_rate",
    # The loss of the rows held out of training for early stopping (validation_fraction): not named
    # validation_*, which the train entry point gives the metrics of its labelled holdout.
    "early_stopping_loss": "validation_loss",
}
# Epoch metrics are written in batches at most this many seconds apart, and when the fit ends.
METRIC_WRITE_SECONDS = 10.0


@dataclass
class _LoggedFit:
    """A fit being logged: its run, whether the logger started that run, and metrics not yet written."""

    run_id: str
    started_run: bool
    pending: list[Metric] = field(default_factory=list)
    last_write: float = field(default_factory=time.monotonic)

    def write(self) -> None:
        """Send the pending metrics in one batch (a sqlite write per epoch would cost more than a
        small epoch)."""
        MlflowClient().log_batch(self.run_id, metrics=self.pending)
        self.pending = []
        self.last_write = time.monotonic()


class _FitsInProgress(threading.local):
    """A list of fits in progress for each thread, made empty the first time the thread looks."""

    def __init__(self) -> None:
        self.fits: list[_LoggedFit | None] = []


class _FitLogger(FitCallback):
    """Logs each fit to the active run; a second fit in the same run goes to a nested child run."""

    def __init__(self, log_without_active_run: bool, log_plots: bool) -> None:
        self.log_without_active_run = log_without_active_run
        self.log_plots = log_plots
        self._runs_with_a_fit: set[str] = set()
        self._lock = threading.Lock()
        # Per thread, as MLflow's active run is: fits running in threads each log to their own run.
        self._per_thread = _FitsInProgress()

    @property
    def _fits(self) -> list[_LoggedFit | None]:
        """This thread's fits in progress, innermost last; None for a fit that is not logged."""
        return self._per_thread.fits

    def on_fit_start(self, detector: Any) -> None:
        active = mlflow.active_run()
        if active is None and not self.log_without_active_run:
            self._fits.append(None)
            return
        with self._lock:
            started = active is None or active.info.run_id in self._runs_with_a_fit
            run = mlflow.start_run(nested=active is not None) if started else active
            self._runs_with_a_fit.add(run.info.run_id)
        self._fits.append(_LoggedFit(run.info.run_id, started))
        # A key the run already has (e.g. an MLproject parameter of the same name) keeps its value:
        # MLflow refuses to change a logged parameter.
        logged = mlflow.get_run(run.info.run_id).data.params
        params = {name: str(value) for name, value in detector.get_params(deep=False).items()}
        mlflow.log_params({name: value for name, value in params.items() if name not in logged})
        mlflow.set_tags(
            {"vae_anomaly.detector": type(detector).__name__, "vae_anomaly.version": vae_anomaly.__version__}
        )

    def on_epoch_end(self, detector: Any, record: dict[str, float]) -> None:
        fit = self._fits[-1]
        if fit is None:
            return
        timestamp, step = int(time.time() * 1000), int(record["epoch"])
        fit.pending.extend(
            Metric(metric, float(record[key]), timestamp, step)
            for metric, key in EPOCH_METRICS.items()
            if key in record
        )
        if time.monotonic() - fit.last_write >= METRIC_WRITE_SECONDS:
            fit.write()

    def on_fit_end(self, detector: Any, X: Any, training_scores: np.ndarray) -> None:
        fit = self._fits.pop()
        if fit is None:
            return
        fit.write()
        mlflow.log_metrics(_training_summary(detector, training_scores))
        if self.log_plots:
            _log_plots(detector, X, training_scores)
        if fit.started_run:
            mlflow.end_run()

    def on_fit_error(self, detector: Any, error: BaseException) -> None:
        fit = self._fits.pop()
        if fit is None:
            return
        fit.write()
        if fit.started_run:
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))


def _training_summary(detector: Any, training_scores: np.ndarray) -> dict[str, float]:
    """Final metrics of a fit: threshold, training-score distribution and share flagged, epochs."""
    summary = {
        "offset": float(detector.offset_),
        "anomaly_threshold": float(detector.anomaly_threshold_),
        "train_flagged_fraction": float(np.mean(training_scores > detector.anomaly_threshold_)),
        "train_score_mean": float(np.mean(training_scores)),
        "train_score_std": float(np.std(training_scores)),
        "train_score_min": float(np.min(training_scores)),
        "train_score_max": float(np.max(training_scores)),
        "epochs_trained": float(len(detector.history_)),
    }
    for name, quantile in TRAINING_SCORE_QUANTILES.items():
        summary[f"train_score_{name}"] = float(np.quantile(training_scores, quantile))
    validation = [record["validation_loss"] for record in detector.history_ if "validation_loss" in record]
    if validation:
        summary["best_early_stopping_loss"] = float(min(validation))
    return summary


def _log_plots(detector: Any, X: Any, training_scores: np.ndarray) -> None:
    # matplotlib loads here, at the first logged fit, not with the tracking package (which the
    # command line imports to resolve a models:/ URI).
    from vae_anomaly import plots

    threshold = detector.anomaly_threshold_
    mlflow.log_figure(plots.loss_curve(detector.history_), "plots/loss_curve.png")
    mlflow.log_figure(plots.score_histogram(training_scores, threshold), "plots/score_histogram.png")
    # Separate segments (fit(..., segments=)) are no one series to draw: read as one, their timestamps
    # may go back in time, and events would span the joins.
    if detector.scores_whole_series and detector.segments_ is None:
        series = detector.feature_frame(X)
        flags = plots.series_with_flags(series, training_scores, threshold)
        mlflow.log_figure(flags, "plots/series_flags.png")
        mlflow.log_figure(plots.series_with_events(series, detector.events(X)), "plots/series_events.png")


_logger: _FitLogger | None = None


def autolog(*, disable: bool = False, log_without_active_run: bool = False, log_plots: bool = True) -> None:
    """Log every later detector fit in this process to MLflow (off until called).

    A fit inside an active run logs there: the detector's parameters; per-epoch ``train_loss``,
    ``train_reconstruction``, ``train_kl``, ``kl_weight``, ``learning_rate`` and
    ``early_stopping_loss`` (the loss of the rows held out for early stopping, ``history_``'s
    ``validation_loss``) with ``step=epoch``; then ``offset``, ``anomaly_threshold``,
    ``best_early_stopping_loss``, the training-score summary (``train_score_mean``, ``_std``,
    ``_min``, ``_p50``, ``_p90``, ``_p99``, ``_max``, ``train_flagged_fraction``: for a table below
    ``contamination``, which the held-out rows' scores set) and the plots
    ``plots/loss_curve.png``, ``plots/score_histogram.png`` and, for time series,
    ``plots/series_flags.png`` and ``plots/series_events.png`` (the training series' anomaly events,
    ``TimeSeriesVAEDetector.events``; these two not for a fit on separate segments). A further fit in the
    same run (a refit, or each candidate of a ``GridSearchCV`` with ``n_jobs=1``) logs to a nested
    child run. Fits in other processes (``n_jobs>1``) are not logged.

    Parameters
    ----------
    disable : bool, default=False
        True turns autologging off again.
    log_without_active_run : bool, default=False
        False: a fit with no active run logs nothing. True: it starts a run of its own and ends it
        when the fit ends (marked FAILED if the fit raised).
    log_plots : bool, default=True
        Log the PNG plots (they cost a second or so per fit).
    """
    global _logger
    if _logger is not None:
        unregister_callback(_logger)
        _logger = None
    if not disable:
        _logger = _FitLogger(log_without_active_run, log_plots)
        register_callback(_logger)
