"""Fitting from parquet data of any size: ``fit_parquet`` reads it once (``parquet_sample`` for a table,
``series_sample`` for a series), then fits.

``fit_sample`` fits an estimator on a ``TrainingSample`` or a ``SeriesSample``: a VAE detector's
standardization comes from the sample's exact statistics of every row, so it is the one an in-memory
fit of all the rows would have; its threshold is set on rows of the sample held out of training, a
uniform sample of the whole table, or on the timestamps of a series' sampled segments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.batch.files import DEFAULT_BATCH_ROWS
from vae_anomaly.parquet_sample import column_kinds, sample_parquet
from vae_anomaly.score_columns import check_not_output_named
from vae_anomaly.series_sample import SeriesSample, sample_series_parquet
from vae_anomaly.training_sample import TrainingSample

Estimator = TypeVar("Estimator", bound=BaseEstimator)


def fit_sample(estimator: Estimator, sample: TrainingSample | SeriesSample) -> Estimator:
    """Fit an estimator on a training sample: a VAE detector with the sample's exact statistics.

    A ``VAEAnomalyDetector`` takes its standardization from ``sample.statistics``
    (``fit(..., feature_statistics=)``), the one a fit on every row would find, and trains and sets
    its threshold on the sample. Any other estimator, a Pipeline included, fits
    on ``sample.frame`` as it is: the detector at the end of a Pipeline sees transformed features,
    whose statistics the pass did not gather, so they come from the sample (for 262,144 rows a mean
    is within a 500th of a standard deviation of the data's, as a rule). A ``TimeSeriesVAEDetector``
    (or a Pipeline ending in one) fits on a ``SeriesSample``'s segments
    (``fit(..., segments=)``), a bare one with its exact statistics.

    Parameters
    ----------
    estimator : estimator
        Unfitted, or to be refitted.
    sample : TrainingSample or SeriesSample
        From ``sample_parquet`` or ``sample_series_parquet``, or made so elsewhere (e.g. from Spark).

    Returns
    -------
    estimator
        Fitted.

    Raises
    ------
    ValueError
        For a time-series detector given a sample of rows, or any other estimator given a series.
    """
    final = _final_step(estimator)
    series = getattr(final, "scores_whole_series", False)
    if series != isinstance(sample, SeriesSample):
        raise ValueError(
            f"{type(final).__name__} needs its series whole and in order, but a TrainingSample is rows "
            "drawn at random: sample the series with sample_series_parquet."
            if series
            else f"{type(final).__name__} takes rows, but a SeriesSample holds segments of a series: "
            "fit a TimeSeriesVAEDetector on it."
        )
    options = {}
    if series:
        name = f"{estimator.steps[-1][0]}__segments" if isinstance(estimator, Pipeline) else "segments"
        options[name] = sample.segments
    if isinstance(estimator, BaseVAEDetector):
        options["feature_statistics"] = sample.statistics
    return estimator.fit(sample.frame, **options)


def fit_parquet(
    estimator: Estimator,
    source: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
    max_rows: int | Literal["auto"] = "auto",
    max_windows: int | Literal["auto"] = "auto",
    segment_length: int | Literal["auto"] = "auto",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    random_state: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> Estimator:
    """Fit an estimator on parquet data of any size, in bounded memory (``sample_parquet`` or
    ``sample_series_parquet``, then ``fit_sample``).

    Use it where the training data does not fit in memory, or is a folder or glob of parquet files
    that would otherwise have to be read whole: the fitted estimator is the same kind of object, and
    saves and logs as an in-memory fit does. A bare detector reads numeric and boolean columns only,
    and nulls only with ``missing="skip"``; a Pipeline reads any columns. A time-series detector (or
    a Pipeline ending in one) reads one series, in time order, and trains on segments of it drawn
    at random as it streams past; its ``time_column``, if set, must hold the timestamps.

    Parameters
    ----------
    estimator : estimator
        A ``VAEAnomalyDetector`` or ``TimeSeriesVAEDetector``, a Pipeline ending in one (e.g.
        ``pipelines.tabular_pipeline()``), or any scikit-learn estimator.
    source : str or PathLike
        A parquet file, folder (hive-partitioned or not) or glob.
    columns, drop_columns, max_rows, batch_rows, progress
        As :func:`~vae_anomaly.sample_parquet` takes them (``max_rows`` for a table only).
    max_windows, segment_length
        For a series, as :func:`~vae_anomaly.sample_series_parquet` takes them.
    random_state : int, Generator or None, default=None
        Seeds the sample; None takes the estimator's ``random_state`` (a Pipeline's last step's)
        when it is an int, else draws a fresh one.

    Returns
    -------
    estimator
        Fitted.

    Raises
    ------
    ValueError
        For a bare detector, before the pass, if a column it would train on is named as the scores
        (``is_anomaly``, ``anomaly_score``, ...); and as ``sample_parquet`` and the estimator's
        ``fit`` raise.

    Examples
    --------
    >>> from vae_anomaly import VAEAnomalyDetector, fit_parquet
    >>> detector = fit_parquet(
    ...     VAEAnomalyDetector(random_state=0), "lake/day=2026-12-01/", drop_columns=["is_anomaly"]
    ... )  # doctest: +SKIP
    """
    final = _final_step(estimator)
    _check_parameters(estimator, final)
    if isinstance(estimator, BaseVAEDetector):  # it trains on every column it reads: refuse a label now
        check_not_output_named(
            column_kinds(source, columns=columns, drop_columns=drop_columns),
            lambda clashes: f"leave them out with drop_columns={clashes} or choose the columns with columns=",
        )
    if random_state is None and isinstance(seed := final.get_params().get("random_state"), int):
        random_state = seed
    if getattr(final, "scores_whole_series", False):
        return fit_sample(
            estimator,
            sample_series_parquet(
                source,
                window=final.window,
                columns=columns,
                drop_columns=drop_columns,
                time_column=final.time_column,
                max_windows=max_windows,
                segment_length=segment_length,
                batch_rows=batch_rows,
                random_state=random_state,
                progress=progress,
            ),
        )
    bare = isinstance(estimator, BaseVAEDetector)
    sample = sample_parquet(
        source,
        columns=columns,
        drop_columns=drop_columns,
        max_rows=max_rows,
        numeric_only=bare,
        allow_nulls=not bare or get_tags(estimator).input_tags.allow_nan,
        batch_rows=batch_rows,
        random_state=random_state,
        progress=progress,
    )
    return fit_sample(estimator, sample)


def _check_parameters(estimator: BaseEstimator, final: BaseEstimator) -> None:
    """Check the parameters of the estimator (of each of a Pipeline's steps) before the pass over the
    data, as ``fit`` would after it: a bad one then fails in a second, not after reading it all.
    ``final`` is its last step (``_final_step``)."""
    steps = [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    for step in steps:
        if hasattr(step, "_validate_params"):  # scikit-learn's own check at the start of fit
            step._validate_params()
    if isinstance(final, BaseVAEDetector):
        final._check_settings()


def _final_step(estimator: BaseEstimator) -> BaseEstimator:
    """A Pipeline's last step; any other estimator itself."""
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator
