"""What the batch scorer knows of a model: how to score a frame, the input columns it reads and their kinds.

A saved detector (or a Pipeline whose preprocessing plan was saved with it) that is to score a small
input on the CPU is read by a numpy scorer (``numpy_scorer``), which needs neither torch nor
scikit-learn; every other model is loaded with them (and so is a Pipeline for input its plan does
not take exactly as scikit-learn would).
So this module imports them only where such a model is loaded or described.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from vae_anomaly.batch.inputs import input_files, parquet_rows
from vae_anomaly.model_location import ModelLocation, locate_model
from vae_anomaly.numpy_scorer import NumpyPipelineScorer, NumpyTableScorer, load_numpy_scorer
from vae_anomaly.numpy_series_scorer import NumpySeriesScorer
from vae_anomaly.time_index import with_time_column

# The numpy scorer takes an input whose scoring is at most this many multiply-adds (the default
# 4-feature detector: about 180,000 rows). Above it, torch's faster scoring repays its start-up
# (benchmarks/RESULTS.md, issue 33).
NUMPY_SCORING_MAX_WORK = 2 * 10**9
# ... and of at most this many files: counting the rows of more (their footers, on a network file
# system tens of milliseconds each) would cost what the numpy scorer saves.
NUMPY_SCORING_MAX_FILES = 256


@dataclass(frozen=True)
class BatchModel:
    """A model ready for batch scoring and what it needs from the input.

    Attributes
    ----------
    model : detector, Pipeline ending in one, or a numpy scorer of a saved one
        (``NumpyTableScorer``, ``NumpySeriesScorer``, ``NumpyPipelineScorer``)
    columns : list of str
        Input columns the model reads.
    kinds : dict of str to str
        Expected kind of each column: ``"numeric"``, ``"string"``, ``"datetime"``, ``"boolean"`` or
        ``"any"``.
    allows_nulls : bool
        Whether the model takes nulls in its columns.
    whole_files : bool
        Score each file in one piece (time series: windows span batches).
    score : callable
        Scores a frame of the input columns: ``frames.score_frame`` of the model (``anomaly_score``
        and ``is_anomaly``, indexed like the frame).
    """

    model: Any
    columns: list[str]
    kinds: dict[str, str]
    allows_nulls: bool
    whole_files: bool
    score: Callable[[pd.DataFrame], pd.DataFrame]


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


def _columns_and_kinds(
    names: Any, bare: bool, time_column: str | None, signature_kinds: dict[str, str] | None
) -> tuple[list[str], dict[str, str]]:
    """The input columns a model reads (its feature ``names``, then its time column where that is not
    one of them) and each one's expected kind: numeric for a bare detector's features, any for a
    Pipeline's (its preprocessing reads them), datetime for a time column, then what an MLflow
    signature says."""
    columns = with_time_column(names, time_column)
    kinds = {name: "numeric" if bare else "any" for name in columns}
    if time_column is not None:
        kinds[time_column] = "datetime"
    kinds.update({k: v for k, v in (signature_kinds or {}).items() if k in kinds})
    return columns, kinds


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
    from sklearn.utils import get_tags

    from vae_anomaly.composition import model_parts
    from vae_anomaly.frames import score_frame

    parts = model_parts(model)
    detector = parts.detector
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError(
            "The model was fitted on an array without column names, so parquet columns cannot be matched "
            "to its features: fit it on a DataFrame."
        )
    bare = parts.preprocessing is None
    columns, kinds = _columns_and_kinds(names, bare, detector.time_column, signature_kinds)
    # A Pipeline's preprocessing may take nulls; a bare detector takes them when its tags say so.
    allows_nulls = not bare or get_tags(detector).input_tags.allow_nan
    return BatchModel(
        model,
        columns,
        kinds,
        allows_nulls,
        whole_files=detector.scores_whole_series,
        score=lambda frame: score_frame(model, frame),
    )


def _numpy_model(
    scorer: NumpyTableScorer | NumpySeriesScorer | NumpyPipelineScorer,
    signature_kinds: dict[str, str] | None,
    torch_model: Callable[[], BatchModel],
) -> BatchModel:
    """A BatchModel of a numpy scorer: a bare table detector's columns, nulls where it skips them, row
    by row; a series detector's channels and time column, each file whole; a Pipeline's input
    columns, as its detector scores. Input a Pipeline's plan does not transform exactly as
    scikit-learn is scored by the Pipeline itself (``torch_model``, loaded at the first such input)."""
    if isinstance(scorer, NumpyTableScorer):
        columns, kinds = _columns_and_kinds(scorer.feature_names, True, None, signature_kinds)
        return BatchModel(
            scorer, columns, kinds, scorer.skips_missing, whole_files=False, score=scorer.score_frame
        )
    if isinstance(scorer, NumpySeriesScorer):
        columns, kinds = _columns_and_kinds(scorer.feature_names, True, scorer.time_column, signature_kinds)
        return BatchModel(
            scorer, columns, kinds, allows_nulls=True, whole_files=True, score=scorer.score_frame
        )
    columns, kinds = _columns_and_kinds(scorer.feature_names, False, scorer.time_column, signature_kinds)
    with_torch = functools.cache(torch_model)

    def score(frame: pd.DataFrame) -> pd.DataFrame:
        return scorer.score_frame(frame) if scorer.takes(frame) else with_torch().score(frame)

    whole_files = isinstance(scorer.detector, NumpySeriesScorer)
    return BatchModel(scorer, columns, kinds, allows_nulls=True, whole_files=whole_files, score=score)


def _small_run_scorer(
    location: ModelLocation, device: str | None, input_path: str | os.PathLike[str]
) -> NumpyTableScorer | NumpySeriesScorer | NumpyPipelineScorer | None:
    """The numpy scorer of a saved folder, where it can score the model and the input is small work."""
    scorer = None if location.kind != "folder" else load_numpy_scorer(location.path, device)
    if scorer is None:
        return None
    most_rows = NUMPY_SCORING_MAX_WORK // scorer.multiply_adds_per_row
    files = input_files(input_path)[1]
    if len(files) > NUMPY_SCORING_MAX_FILES or parquet_rows(files, stop_above=most_rows) > most_rows:
        return None
    return scorer


def _signature_kinds(location: ModelLocation) -> dict[str, str] | None:
    types = location.column_types
    return None if types is None else {name: _SIGNATURE_KINDS.get(t, "any") for name, t in types.items()}


def load_scoring_model(
    source: str | os.PathLike[str],
    *,
    trust_pickle: bool = False,
    device: str | None = None,
    input_path: str | os.PathLike[str] | None = None,
) -> BatchModel:
    """Load a model for batch scoring, then describe it.

    Parameters
    ----------
    source : str or PathLike
        Where the model is kept; see :func:`vae_anomaly.loading.load_from`.
    trust_pickle : bool, default=False
        Allow a joblib/pickle file (unpickling runs code).
    device : str or None, default=None
        Where its forward passes run (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); None
        keeps the model's ``scoring_device``.
    input_path : str or PathLike or None, default=None
        The input it is to score. A saved detector (or Pipeline with a preprocessing plan) that can
        score it on the CPU in at most ``NUMPY_SCORING_MAX_WORK`` multiply-adds, from at most
        ``NUMPY_SCORING_MAX_FILES`` files, is read by a numpy scorer
        (:func:`vae_anomaly.numpy_scorer.load_numpy_scorer`), which starts in a fraction of the time
        torch takes to import; its scores agree with the model's to about 1e-6 relative (input a
        Pipeline's plan does not take is scored by the Pipeline, loaded with torch when the first
        such input comes). None always loads the model with torch.

    Returns
    -------
    BatchModel
        With the column kinds of the MLflow signature, when the model came from MLflow.

    Raises
    ------
    ValueError
        If the model cannot be loaded, or ``device`` is one torch does not have.
    """
    location = locate_model(source)
    kinds = _signature_kinds(location)
    scorer = None if input_path is None else _small_run_scorer(location, device, input_path)
    if scorer is not None:
        return _numpy_model(scorer, kinds, lambda: _torch_model(location, trust_pickle, device, kinds))
    return _torch_model(location, trust_pickle, device, kinds)


def _torch_model(
    location: ModelLocation, trust_pickle: bool, device: str | None, kinds: dict[str, str] | None
) -> BatchModel:
    """The model at ``location`` loaded with torch (and scikit-learn), to score on ``device``."""
    from vae_anomaly.composition import model_parts
    from vae_anomaly.devices import resolve_device
    from vae_anomaly.loading import load_located

    model = load_located(location, trust_pickle=trust_pickle).model
    if device is not None:
        resolve_device(device)  # a device torch lacks fails here, not in every file
        model_parts(model).detector.set_params(scoring_device=device)
    return prepare_model(model, kinds)


def resolve_model(
    model: Any, *, trust_pickle: bool = False, input_path: str | os.PathLike[str] | None = None
) -> BatchModel:
    """A model ready for batch scoring, from what a batch function was given.

    Parameters
    ----------
    model : str, PathLike, BatchModel, or fitted detector or Pipeline ending in one
        A BatchModel as it is; a path or URI is loaded (:func:`load_scoring_model`); a fitted model
        is described (:func:`prepare_model`).
    trust_pickle : bool, default=False
        Allow a joblib/pickle model file (unpickling runs code).
    input_path : str or PathLike or None, default=None
        The input a loaded model is to score (see :func:`load_scoring_model`).

    Returns
    -------
    BatchModel
    """
    if isinstance(model, BatchModel):
        return model
    if isinstance(model, str | os.PathLike):
        return load_scoring_model(model, trust_pickle=trust_pickle, input_path=input_path)
    return prepare_model(model)
