"""Every way to load a fitted model from where it is kept: the one module callers load models through.

A source is a folder written by a detector's ``save`` or by ``save_bundle``, a joblib/pickle file, or an
MLflow model (a ``models:/`` or ``runs:/`` URI, or a folder with an ``MLmodel`` file). Nothing from the
source runs unless ``trust_pickle`` says the source is trusted: a pickle file is refused, and an MLflow
model loads only if its ``MLmodel`` file (plain YAML) shows the format ``tracking.log_model`` writes, a
model from code with a bundle artifact; the bundle is then read with ``load_bundle`` (JSON, safetensors
and skops with trusted types), never by MLflow, which would run the model's code or unpickle its files.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import joblib

from vae_anomaly.bundle import load_bundle
from vae_anomaly.composition import model_parts
from vae_anomaly.model_location import ModelLocation, locate_model


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
    return load_located(locate_model(source), trust_pickle=trust_pickle)


def load_located(location: ModelLocation, *, trust_pickle: bool = False) -> LoadedModel:
    """Load the model :func:`vae_anomaly.model_location.locate_model` found.

    Parameters
    ----------
    location : ModelLocation
    trust_pickle : bool, default=False
        As for :func:`load_from`.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ValueError
        If the model is a pickle file, or an MLflow model not logged by ``tracking.log_model``, and
        ``trust_pickle`` is False, or it cannot be loaded.
    """
    path, types = location.path, location.column_types
    if location.kind == "folder":
        return LoadedModel(load_bundle(path), types)
    if location.kind == "pickle":
        if not trust_pickle:
            raise ValueError(
                f"{path} is a pickle file, and unpickling runs code from it. Pass trust_pickle=True "
                "(--trust-pickle) only if you trust its origin, or save the model with its save() method."
            )
        try:
            model = joblib.load(path)
        except Exception as error:  # unpickling runs the file's code: any error can come out of it
            raise ValueError(f"Cannot unpickle {path}: {type(error).__name__}: {error}") from error
        return LoadedModel(_checked_model(model, path), None)
    return _load_trusted_mlflow(location, trust_pickle)


def _checked_model(model: Any, source: Any) -> Any:
    """``model`` if it is a detector or a Pipeline ending in one, else a ValueError naming ``source``."""
    try:
        model_parts(model)
    except TypeError as error:
        raise ValueError(f"{source} does not hold a vae-anomaly model: {error}") from None
    return model


def _load_trusted_mlflow(location: ModelLocation, trust_pickle: bool) -> LoadedModel:
    """An MLflow model not logged by ``tracking.log_model``, through MLflow's loaders, when trusted."""
    import mlflow.pyfunc

    text, local, types = location.source, location.path, location.column_types
    if not trust_pickle:
        raise ValueError(
            f"{text} is not a model logged by vae_anomaly.tracking.log_model (flavors: "
            f"{list(location.flavors)}), and loading it through MLflow may unpickle code from it. "
            "Pass trust_pickle=True (--trust-pickle) only if you trust its origin."
        )
    try:
        if "sklearn" in location.flavors:
            import mlflow.sklearn

            model = mlflow.sklearn.load_model(str(local))
        else:
            model = getattr(mlflow.pyfunc.load_model(str(local)).unwrap_python_model(), "model", None)
    except Exception as error:  # loading a trusted model runs its code: any error can come out of it
        raise ValueError(f"Cannot load the MLflow model {text}: {type(error).__name__}: {error}") from error
    return LoadedModel(_checked_model(model, text), types)
