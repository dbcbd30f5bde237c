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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import joblib

from vae_anomaly.bundle import load_bundle
from vae_anomaly.composition import model_parts

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# How tracking.log_model logs a model: MLflow's loader for models from code, this model file, and the
# bundle as an artifact of this name.
CODE_MODEL_LOADER = "mlflow.pyfunc.loaders.code_model"
MODEL_CODE_FILE = "mlflow_model_code.py"
BUNDLE_ARTIFACT = "bundle"


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


def is_mlflow_source(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names an MLflow model: a URI, or a folder with an ``MLmodel`` file.

    Parameters
    ----------
    source : str or PathLike

    Returns
    -------
    bool
    """
    text = str(source)
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
    if is_mlflow_source(text):
        return _load_mlflow(text, trust_pickle)
    if path.is_dir():
        return LoadedModel(load_bundle(path), None)
    if path.suffix in PICKLE_SUFFIXES:
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
    raise ValueError(
        f"{source} is not a model: expected a saved model folder, a .joblib/.pkl file or an MLflow URI."
    )


def _checked_model(model: Any, source: Any) -> Any:
    """``model`` if it is a detector or a Pipeline ending in one, else a ValueError naming ``source``."""
    try:
        model_parts(model)
    except TypeError as error:
        raise ValueError(f"{source} does not hold a vae-anomaly model: {error}") from None
    return model


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


def _load_mlflow(text: str, trust_pickle: bool) -> LoadedModel:
    """Load an MLflow model: ours from its bundle, any other only when trusted (MLflow may unpickle)."""
    with quiet_artifact_downloads():
        return _load_mlflow_quietly(text, trust_pickle)


def _load_mlflow_quietly(text: str, trust_pickle: bool) -> LoadedModel:
    import mlflow.artifacts
    import mlflow.pyfunc
    import yaml
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        local = (
            Path(text)
            if (Path(text) / "MLmodel").is_file()
            else Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
        )
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
        return LoadedModel(load_bundle(bundle), types)
    if not trust_pickle:
        raise ValueError(
            f"{text} is not a model logged by vae_anomaly.tracking.log_model (flavors: "
            f"{sorted(description.flavors)}), and loading it through MLflow may unpickle code from it. "
            "Pass trust_pickle=True (--trust-pickle) only if you trust its origin."
        )
    try:
        if "sklearn" in description.flavors:
            import mlflow.sklearn

            model = mlflow.sklearn.load_model(str(local))
        else:
            model = getattr(mlflow.pyfunc.load_model(str(local)).unwrap_python_model(), "model", None)
    except Exception as error:  # loading a trusted model runs its code: any error can come out of it
        raise ValueError(f"Cannot load the MLflow model {text}: {type(error).__name__}: {error}") from error
    return LoadedModel(_checked_model(model, text), types)
