"""Hooks around a detector's fit, so that tracking (or a user) can watch training without reaching inside.

A callback registered here receives the events of every detector fit in this process until it is
unregistered. ``vae_anomaly.tracking.autolog`` registers one that logs to MLflow. Each fit calls the
callbacks registered when it began, on its own thread, with itself as the detector: fits running in
threads at once each hear only their own events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


class FitCallback:
    """Receives the events of a detector's fit; subclass it and override the hooks you need.

    Every hook is called on the thread that runs ``fit``. An exception raised by a hook propagates out of
    ``fit``.
    """

    def on_fit_start(self, detector: Any) -> None:
        """Called once the input is validated, before training starts.

        Parameters
        ----------
        detector : BaseVAEDetector
            The detector being fitted; its parameters are set, its fitted attributes not yet.
        """

    def on_epoch_end(self, detector: Any, record: dict[str, float]) -> None:
        """Called after each training epoch.

        Parameters
        ----------
        detector : BaseVAEDetector
            The detector being fitted.
        record : dict of str to float
            The epoch's entry of ``history_``: ``epoch`` (1-based), ``loss``, ``reconstruction``,
            ``kl``, ``beta``, ``learning_rate`` and, with a validation split, ``validation_loss``.
        """

    def on_fit_end(self, detector: Any, X: Any, training_scores: np.ndarray) -> None:
        """Called when the fit succeeded: the detector is fitted and ``offset_`` set.

        Parameters
        ----------
        detector : BaseVAEDetector
            The fitted detector.
        X : array-like
            The training input, as passed to ``fit``.
        training_scores : ndarray of shape (n_samples,)
            ``anomaly_score`` of each training sample (row, or timestamp for time series).
        """

    def on_fit_error(self, detector: Any, error: BaseException) -> None:
        """Called when training or thresholding raised; the error propagates after the hooks ran.

        Parameters
        ----------
        detector : BaseVAEDetector
            The detector whose fit failed.
        error : BaseException
            What was raised.
        """


_registered: list[FitCallback] = []
_registry_lock = threading.Lock()
_muted = threading.local()  # .depth: how many callbacks_muted blocks this thread is inside


def register_callback(callback: FitCallback) -> None:
    """Send the events of every later fit in this process to ``callback`` (once, however often called).

    Parameters
    ----------
    callback : FitCallback
    """
    with _registry_lock:
        if callback not in _registered:
            _registered.append(callback)


def unregister_callback(callback: FitCallback) -> None:
    """Stop sending fit events to ``callback``; a callback that is not registered is ignored.

    Parameters
    ----------
    callback : FitCallback
    """
    with _registry_lock:
        if callback in _registered:
            _registered.remove(callback)


def registered_callbacks() -> tuple[FitCallback, ...]:
    """The callbacks that receive fit events, in registration order; none on a thread inside
    :func:`callbacks_muted`.

    Returns
    -------
    tuple of FitCallback
    """
    if getattr(_muted, "depth", 0):
        return ()
    with _registry_lock:
        return tuple(_registered)


@contextmanager
def callbacks_muted() -> Iterator[None]:
    """Within it, fits on this thread send no events: a detector's own helper fits (e.g. the
    cross-fitted models of a small table's threshold) are part of its fit, not fits of their own.
    Other threads' fits are not affected."""
    _muted.depth = getattr(_muted, "depth", 0) + 1
    try:
        yield
    finally:
        _muted.depth -= 1
