"""DetectorPipeline: a scikit-learn Pipeline ending in a VAE detector, with the detector's ``explain``,
``events``, ``save`` and ``load`` over the whole pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import pandas as pd
from sklearn.pipeline import Pipeline

from vae_anomaly.bundle import load_bundle, save_bundle
from vae_anomaly.frames import event_frame, explained_by_input_column


class DetectorPipeline(Pipeline):
    """A Pipeline whose last step is a ``VAEAnomalyDetector`` or ``TimeSeriesVAEDetector``.

    It is a scikit-learn ``Pipeline`` in every way (``clone``, ``set_params``, ``GridSearchCV``,
    ``fit``, ``predict``, ``score_samples``, ...), and adds what the detector offers for the
    pipeline's own input: ``explain`` per input column, ``events`` for a series, and ``save`` /
    ``load`` as a bundle folder (JSON, safetensors and skops; no pickle). ``pipelines.tabular_pipeline``
    and ``pipelines.timeseries_pipeline`` return one.

    Parameters
    ----------
    steps : list of (str, estimator)
        As for ``Pipeline``; the last must be a VAE detector.
    memory, transform_input, verbose
        As for ``Pipeline``.
    """

    def explain(self, X: Any, *, shares: bool = True) -> pd.DataFrame:
        """How much each input column adds to each row's anomaly score.

        The detector's ``explain`` of the features the preprocessing makes, each feature's part added
        into the input column it is made from (the one-hot levels of ``region`` into ``region``), as
        the MLflow model's ``params={"contributions": True}`` gives them.

        Parameters
        ----------
        X : DataFrame
            Input as ``fit`` took it.
        shares : bool, default=True
            Shares of each row's total (rows sum to 1), or the parts in the score's units.

        Returns
        -------
        DataFrame
            One column per input column that makes features, indexed like ``X``.
        """
        return explained_by_input_column(self, X, shares=shares)

    def events(self, X: Any, **options: Any) -> pd.DataFrame:
        """The anomaly events of a series: ``TimeSeriesVAEDetector.events`` of the features the
        preprocessing makes, at ``X``'s timestamps (see :func:`vae_anomaly.frames.event_frame`).

        Parameters
        ----------
        X : DataFrame
            A series as ``fit`` took it.
        **options
            ``merge_gap``, ``top_channels`` and ``scores``, as for ``TimeSeriesVAEDetector.events``.

        Returns
        -------
        DataFrame
            One row per event.
        """
        return event_frame(self, X, **options)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted pipeline to the folder ``path`` (:func:`vae_anomaly.bundle.save_bundle`).

        Parameters
        ----------
        path : str or PathLike

        Returns
        -------
        Path
            The folder written.
        """
        return save_bundle(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Load a pipeline saved by ``save`` (or by ``save_bundle``).

        Parameters
        ----------
        path : str or PathLike

        Returns
        -------
        DetectorPipeline

        Raises
        ------
        TypeError
            If the folder holds a bare detector: load it with its class's ``load``.
        """
        loaded = load_bundle(path)
        if not isinstance(loaded, Pipeline):
            raise TypeError(
                f"{path} holds a bare {type(loaded).__name__}, not a pipeline: load it with "
                f"{type(loaded).__name__}.load."
            )
        return cls(loaded.steps)
