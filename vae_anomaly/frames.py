"""The scored table: what the MLflow model and the batch scorer return for a DataFrame of input.

``score_frame`` is the one place that turns a model's scores into output columns, so every way of
serving a model gives the same table; ``event_frame`` is the same for a series' anomaly events.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vae_anomaly.composition import model_parts
from vae_anomaly.events import EVENT_TIME_COLUMNS
from vae_anomaly.input_columns import feature_sources
from vae_anomaly.score_columns import ANOMALY_PROBABILITY, CONTRIBUTION_PREFIX, scored_frame


def score_frame(
    model: Any, frame: pd.DataFrame, *, contributions: bool = False, probability: bool = False
) -> pd.DataFrame:
    """Score each row (or timestamp) of ``frame``: anomaly score, flag, and optionally why.

    Parameters
    ----------
    model : fitted VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one
    frame : DataFrame
        Input as the model's ``fit`` took it.
    contributions : bool, default=False
        Add one ``contribution_<column>`` column per input column: its share of the row's anomaly
        score, from the detector's ``explain``. For a Pipeline the shares of the features its
        preprocessing makes from one input column (e.g. the one-hot levels of ``region``) are added
        up into that column's share.
    probability : bool, default=False
        Add ``anomaly_probability``, the detector's ``predict_proba`` of an anomaly.

    Returns
    -------
    DataFrame
        Indexed like ``frame``: ``anomaly_score`` (float64, higher = more anomalous) and
        ``is_anomaly`` (bool, the score is above the detector's ``anomaly_threshold_``), then the
        probability and the contributions when asked for.
    """
    parts = model_parts(model)
    detector, features = parts.detector, parts.features(frame)
    scores = detector.anomaly_score(features)
    output = scored_frame(scores, detector.anomaly_threshold_, frame.index)
    if probability:
        output[ANOMALY_PROBABILITY] = detector.probability_of_anomaly(scores)
    if contributions:
        shares = explained_by_input_column(model, frame, features=features)
        output = pd.concat([output, shares.add_prefix(CONTRIBUTION_PREFIX)], axis=1)
    return output


def explained_by_input_column(
    model: Any, frame: pd.DataFrame, *, shares: bool = True, features: Any = None
) -> pd.DataFrame:
    """The detector's ``explain`` of ``frame``, per input column of the model, indexed like ``frame``.

    Parameters
    ----------
    model : fitted detector or Pipeline ending in one
    frame : DataFrame
        Input as the model's ``fit`` took it.
    shares : bool, default=True
        As for the detector's ``explain``.
    features : object or None, default=None
        ``frame`` through the model's preprocessing, if already computed.

    Returns
    -------
    DataFrame
        For a Pipeline the parts of the features made from one input column are added up into it
        (:func:`by_input_column`); for a bare detector its ``explain`` as it is.
    """
    parts = model_parts(model)
    features = parts.features(frame) if features is None else features
    explained = parts.detector.explain(features, shares=shares).set_axis(frame.index)
    if parts.preprocessing is None:
        return explained
    input_columns = [str(name) for name in model.feature_names_in_]
    return by_input_column(explained, parts.preprocessing, input_columns)


def event_frame(model: Any, frame: pd.DataFrame, *, positions: bool = False, **options: Any) -> pd.DataFrame:
    """The anomaly events of the series in ``frame``: ``TimeSeriesVAEDetector.events``' table.

    Parameters
    ----------
    model : fitted TimeSeriesVAEDetector or Pipeline ending in one
    frame : DataFrame
        A series as the model's ``fit`` took it.
    positions : bool, default=False
        Give the events' timestamps as row positions of ``frame`` (0 for its first row).
    **options
        ``merge_gap``, ``top_channels`` and ``scores``, as for ``TimeSeriesVAEDetector.events``.

    Returns
    -------
    DataFrame
        One row per event. Where the detector saw no timestamps of its own (a Pipeline's
        preprocessing gave it an array), its positions are turned into ``frame``'s index.

    Raises
    ------
    TypeError
        If the model's detector finds no events (a ``VAEAnomalyDetector`` scores independent rows).
    """
    parts = model_parts(model)
    detector = parts.detector
    if not detector.scores_whole_series:
        raise TypeError(
            f"Events are runs of flagged timestamps of a series; this model's detector is a "
            f"{type(detector).__name__}, which scores independent rows. Use a TimeSeriesVAEDetector."
        )
    features = parts.features(frame)
    events = detector.events(features, **options)  # type: ignore[attr-defined]
    times = detector.feature_frame(features).index if positions else None
    for name in EVENT_TIME_COLUMNS:
        if times is not None:
            events[name] = times.get_indexer(events[name])
        elif not isinstance(features, pd.DataFrame | pd.Series):
            events[name] = frame.index[events[name].to_numpy(dtype=int)]
    return events


def by_input_column(parts: pd.DataFrame, preprocessing: Any, input_columns: list[str]) -> pd.DataFrame:
    """Add up the parts of the features made from one input column, e.g. its one-hot levels.

    Which input column a feature is made from is read from the fitted transformers
    (:func:`vae_anomaly.input_columns.feature_sources`): a ColumnTransformer's column lists, a
    OneHotEncoder's categories, one feature per column for scalers and imputers. Where a transformer
    does not say, a feature belongs to the input column it is named after, as scikit-learn's
    transformers name their outputs (``numeric__cpu_pct``, ``categorical__region_eu-west``), the
    longest such column winning; a feature that matches none keeps its own name.

    Parameters
    ----------
    parts : DataFrame
        One column per feature the detector sees, e.g. its ``explain``.
    preprocessing : fitted transformer
        What makes those features from the input, e.g. a Pipeline's steps before its detector.
    input_columns : list of str
        The Pipeline's input columns (``feature_names_in_``).

    Returns
    -------
    DataFrame
        One column per input column that has features, in input order, then the unmatched ones.
    """
    sources = feature_sources(preprocessing, input_columns)
    if len(sources) != parts.shape[1]:
        sources = [None] * parts.shape[1]

    def named_owner(feature: str) -> str:
        bare = feature.split("__", 1)[-1]
        matches = [c for c in input_columns if bare == c or bare.startswith(f"{c}_") or feature == c]
        return max(matches, key=len) if matches else feature

    owners = [
        source if source is not None else named_owner(str(feature))
        for source, feature in zip(sources, parts.columns, strict=True)
    ]
    grouped = parts.T.groupby(owners, sort=False).sum().T
    order = [c for c in input_columns if c in grouped.columns]
    return grouped[order + [c for c in grouped.columns if c not in order]]
