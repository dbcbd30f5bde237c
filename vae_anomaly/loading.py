"""Every way to load a fitted model from where it is kept: the one module callers load models through.

A source is a folder written by a detector's ``save`` or by ``save_bundle``, a joblib/pickle file (only
when trusted: unpickling runs code from the file), or an MLflow model (a ``models:/`` or ``runs:/`` URI,
or a folder with an ``MLmodel`` file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import joblib
import mlflow.pyfunc
from mlflow.exceptions import MlflowException

from vae_anomaly.bundle import load_bundle

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class LoadedModel(NamedTuple):
    """A loaded model and, for an MLflow model with a signature, the type name of each input column.

    Attributes
    ----------
    model : detector or Pipeline ending in one
    column_types : dict of str to str, or None
        MLflow's type name (``"double"``, ``"string"``, ...) of each input column of the signature.
    """

    model: Any
    column_types: dict[str, str] | None


def _is_mlflow_source(text: str) -> bool:
    return "://" in text or text.startswith(("models:/", "runs:/")) or (Path(text) / "MLmodel").is_file()


def load_from(source: str | os.PathLike[str], *, trust_pickle: bool = False) -> LoadedModel:
    """Load a fitted detector or Pipeline from a saved folder, a pickle file or an MLflow model.

    Parameters
    ----------
    source : str or PathLike
        A folder written by a detector's ``save`` or by ``save_bundle``; a ``.joblib``/``.pkl`` file;
        or an MLflow model URI (``models:/NAME@champion``, ``runs:/RUN_ID/model``) or model folder.
    trust_pickle : bool, default=False
        Allow loading a joblib/pickle file. Unpickling runs code from the file: only for files you trust.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ValueError
        If the source is a pickle file and ``trust_pickle`` is False, or is not a model.
    """
    text = str(source)
    path = Path(text)
    if _is_mlflow_source(text):
        try:
            pyfunc = mlflow.pyfunc.load_model(text)
        except (MlflowException, OSError) as error:
            raise ValueError(f"Cannot load the MLflow model {text}: {error}") from error
        schema = pyfunc.metadata.get_input_schema()
        types = (
            {spec.name: spec.type.name for spec in schema.inputs}
            if schema is not None and schema.has_input_names()
            else None
        )
        return LoadedModel(pyfunc.unwrap_python_model().model, types)
    if path.is_dir():
        return LoadedModel(load_bundle(path), None)
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ValueError(
                f"{path} is a pickle file, and unpickling runs code from it. Pass trust_pickle=True "
                "(--trust-pickle) only if you trust its origin, or save the model with its save() method."
            )
        return LoadedModel(joblib.load(path), None)
    raise ValueError(
        f"{source} is not a model: expected a saved model folder, a .joblib/.pkl file or an MLflow URI."
    )
