"""What the batch scorer knows of a model: the model, the input columns it reads and their kinds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sklearn.utils import get_tags

from vae_anomaly.composition import model_parts
from vae_anomaly.loading import load_from


@dataclass(frozen=True)
class BatchModel:
    """A model ready for batch scoring and what it needs from the input.

    Attributes
    ----------
    model : detector or Pipeline ending in one
    columns : list of str
        Input columns the model reads.
    kinds : dict of str to str
        Expected kind of each column: ``"numeric"``, ``"string"``, ``"datetime"``, ``"boolean"`` or
        ``"any"``.
    allows_nulls : bool
        Whether the model takes nulls in its columns.
    whole_files : bool
        Score each file in one piece (time series: windows span batches).
    """

    model: Any
    columns: list[str]
    kinds: dict[str, str]
    allows_nulls: bool
    whole_files: bool


# The class's name until the batch package was split up; kept so that existing imports still work.
ScoringModel = BatchModel


_SIGNATURE_KINDS = {
    "double": "numeric",
    "float": "numeric",
    "long": "numeric",
    "integer": "numeric",
    "string": "string",
    "datetime": "datetime",
    "boolean": "boolean",
}


def prepare_model(model: Any, signature_kinds: dict[str, str] | None = None) -> BatchModel:
    """Describe a fitted detector or Pipeline for batch scoring.

    Parameters
    ----------
    model : fitted detector or Pipeline ending in one, fitted on a DataFrame
    signature_kinds : dict or None
        Column kinds from an MLflow signature, when the model came from MLflow.

    Returns
    -------
    BatchModel

    Raises
    ------
    ValueError
        If the model was fitted without column names, so parquet columns cannot be matched to it.
    """
    parts = model_parts(model)
    detector = parts.detector
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError(
            "The model was fitted on an array without column names, so parquet columns cannot be matched "
            "to its features: fit it on a DataFrame."
        )
    columns = [str(name) for name in names]
    time_column = detector.time_column
    if time_column is not None and time_column not in columns:
        columns.append(time_column)
    bare = parts.preprocessing is None
    kinds = {name: "numeric" if bare else "any" for name in columns}
    if time_column is not None:
        kinds[time_column] = "datetime"
    kinds.update({k: v for k, v in (signature_kinds or {}).items() if k in kinds})
    # A Pipeline's preprocessing may take nulls; a bare detector takes them when its tags say so.
    allows_nulls = not bare or get_tags(detector).input_tags.allow_nan
    return BatchModel(model, columns, kinds, allows_nulls, whole_files=detector.scores_whole_series)


def load_scoring_model(source: str | os.PathLike[str], *, trust_pickle: bool = False) -> BatchModel:
    """Load a model for batch scoring with :func:`vae_anomaly.loading.load_from`, then describe it.

    Parameters
    ----------
    source : str or PathLike
        Where the model is kept; see :func:`vae_anomaly.loading.load_from`.
    trust_pickle : bool, default=False
        Allow a joblib/pickle file (unpickling runs code from it).

    Returns
    -------
    BatchModel
        With the column kinds of the MLflow signature, when the model came from MLflow.
    """
    loaded = load_from(source, trust_pickle=trust_pickle)
    kinds = (
        None
        if loaded.column_types is None
        else {name: _SIGNATURE_KINDS.get(type_name, "any") for name, type_name in loaded.column_types.items()}
    )
    return prepare_model(loaded.model, kinds)


def resolve_model(model: Any, *, trust_pickle: bool = False) -> BatchModel:
    """A model ready for batch scoring, from what a batch function was given.

    Parameters
    ----------
    model : str, PathLike, BatchModel, or fitted detector or Pipeline ending in one
        A BatchModel as it is; a path or URI is loaded (:func:`load_scoring_model`); a fitted model
        is described (:func:`prepare_model`).
    trust_pickle : bool, default=False
        Allow a joblib/pickle model file (unpickling runs code).

    Returns
    -------
    BatchModel
    """
    if isinstance(model, BatchModel):
        return model
    if isinstance(model, str | os.PathLike):
        return load_scoring_model(model, trust_pickle=trust_pickle)
    return prepare_model(model)
