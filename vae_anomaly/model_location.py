"""Where a model is kept, found before anything of it is loaded: a saved folder, a pickle file, or an
MLflow model (downloaded, its ``MLmodel`` file read as plain YAML). ``loading`` then loads it; the numpy
scorer reads a saved folder found here without loading torch or scikit-learn. MLflow is imported only
for an MLflow source.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, NamedTuple

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# How tracking.log_model logs a model: MLflow's loader for models from code, this model file, and the
# bundle as an artifact of this name.
CODE_MODEL_LOADER = "mlflow.pyfunc.loaders.code_model"
MODEL_CODE_FILE = "mlflow_model_code.py"
BUNDLE_ARTIFACT = "bundle"


class ModelLocation(NamedTuple):
    """Where a model's files are on this machine, and what they are.

    Attributes
    ----------
    kind : {"folder", "pickle", "mlflow"}
        A folder written by a detector's ``save`` or by ``save_bundle`` (an MLflow model logged by
        ``tracking.log_model`` is its bundle folder); a joblib/pickle file; or an MLflow model not
        logged so, which only MLflow's loaders read.
    path : Path
        The folder or file.
    source : str
        The source as given, for messages.
    column_types : dict of str to str, or None
        For an MLflow model with a signature, MLflow's type name (``"double"``, ``"string"``, ...) of
        each input column.
    flavors : tuple of str
        An MLflow model's flavors (empty for any other source).
    """

    kind: Literal["folder", "pickle", "mlflow"]
    path: Path
    source: str
    column_types: dict[str, str] | None = None
    flavors: tuple[str, ...] = ()


def is_mlflow_source(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names an MLflow model: a URI, or a folder with an ``MLmodel`` file.

    Parameters
    ----------
    source : str or PathLike

    Returns
    -------
    bool
    """
    return is_mlflow_uri(source) or (Path(source) / "MLmodel").is_file()


def is_mlflow_uri(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a URI that MLflow resolves (``models:/``, ``runs:/``, ``s3://``, ...),
    rather than a local path.

    Parameters
    ----------
    source : str or PathLike

    Returns
    -------
    bool
    """
    text = str(source)
    return "://" in text or text.startswith(("models:/", "runs:/"))


def locate_model(source: str | os.PathLike[str]) -> ModelLocation:
    """Find a model's files: download an MLflow model and read its ``MLmodel`` file; nothing runs.

    Parameters
    ----------
    source : str or PathLike
        A folder written by a detector's ``save`` or by ``save_bundle``; a ``.joblib``/``.pkl`` file;
        or an MLflow model URI (``models:/NAME@champion``, ``runs:/RUN_ID/model``) or model folder.

    Returns
    -------
    ModelLocation

    Raises
    ------
    ValueError
        If the source is not a model, an MLflow model cannot be downloaded, or its ``MLmodel`` file
        is malformed.
    """
    text = str(source)
    path = Path(text)
    if is_mlflow_source(text):
        with quiet_artifact_downloads():
            return _locate_mlflow(text)
    if path.is_dir():
        return ModelLocation("folder", path, text)
    if path.suffix in PICKLE_SUFFIXES:
        return ModelLocation("pickle", path, text)
    raise ValueError(
        f"{source} is not a model: expected a saved model folder, a .joblib/.pkl file or an MLflow URI."
    )


def _locate_mlflow(text: str) -> ModelLocation:
    """An MLflow model's local folder, downloaded if need be: ours as its bundle folder."""
    import mlflow.artifacts
    import yaml
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text) if is_mlflow_uri(text) else text)
    except (MlflowException, OSError) as error:
        raise ValueError(f"Cannot load the MLflow model {text}: {error}") from error
    try:
        description = Model.load(str(local))  # the MLmodel file, read as safe YAML: nothing runs
        if not isinstance(description.flavors, dict):
            raise TypeError(f"its flavors are {type(description.flavors).__name__}, not a mapping")
        schema = description.get_input_schema()
        types = (
            {spec.name: spec.type.name for spec in schema.inputs}
            if schema is not None and schema.has_input_names()
            else None
        )
    except (
        MlflowException,
        OSError,
        yaml.YAMLError,
        AttributeError,
        TypeError,
        KeyError,
        ValueError,
    ) as error:
        # A malformed file (empty, not YAML, a tag safe YAML refuses, fields of the wrong kind).
        raise ValueError(
            f"{local / 'MLmodel'} is not a valid MLmodel file ({type(error).__name__}: "
            f"{' '.join(str(error).split())}): log the model again with vae_anomaly.tracking.log_model."
        ) from error
    bundle = _logged_bundle(local, description.flavors)
    if bundle is not None:
        return ModelLocation("folder", bundle, text, types)
    return ModelLocation("mlflow", local, text, types, tuple(sorted(description.flavors)))


def _logged_bundle(folder: Path, flavors: dict[str, Any]) -> Path | None:
    """The bundle folder of a model logged by ``tracking.log_model``; None for any other MLflow model."""
    pyfunc = flavors.get("python_function")
    if not isinstance(pyfunc, dict) or pyfunc.get("loader_module") != CODE_MODEL_LOADER:
        return None
    if Path(str(pyfunc.get("model_code_path", ""))).name != MODEL_CODE_FILE:
        return None
    artifact = (pyfunc.get("artifacts") or {}).get(BUNDLE_ARTIFACT)
    relative = artifact.get("path") if isinstance(artifact, dict) else None
    if not isinstance(relative, str):
        return None
    bundle = (folder / relative).resolve()
    inside = bundle.is_relative_to(folder.resolve())
    return bundle if inside and bundle.is_dir() else None


# MLflow draws a progress bar for every artifact download unless this is "false".
PROGRESS_BAR_VARIABLE = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextmanager
def quiet_artifact_downloads() -> Iterator[None]:
    """Inside the block MLflow draws no "Downloading artifacts" bars, unless the user chose with
    ``$MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``; the variable is as it was afterwards."""
    if PROGRESS_BAR_VARIABLE in os.environ:
        yield
        return
    os.environ[PROGRESS_BAR_VARIABLE] = "false"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_BAR_VARIABLE, None)
