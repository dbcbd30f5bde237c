"""Logging a detector or Pipeline as an MLflow pyfunc model "from code", with no pickle."""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import ColSpec, Schema
from sklearn.utils.validation import check_is_fitted

import vae_anomaly
from vae_anomaly.bundle import save_bundle
from vae_anomaly.composition import model_parts
from vae_anomaly.frames import score_frame
from vae_anomaly.model_location import BUNDLE_ARTIFACT, MODEL_CODE_FILE, quiet_artifact_downloads
from vae_anomaly.pyfunc import INPUT_COLUMNS_CONFIG

PACKAGE_DIR = Path(vae_anomaly.__file__).resolve().parent
MODEL_CODE = PACKAGE_DIR / MODEL_CODE_FILE
# What the pyfunc model imports; pinned to the versions that wrote it. Local build labels such as
# torch's "+cpu" are dropped: pip cannot install them from an index.
MODEL_REQUIREMENTS = ("torch", "numpy", "pandas", "scikit-learn", "safetensors", "tqdm")
PIPELINE_REQUIREMENTS = ("skops",)


def _model_requirements(model: Any) -> list[str]:
    pipeline = model_parts(model).preprocessing is not None
    names = MODEL_REQUIREMENTS + (PIPELINE_REQUIREMENTS if pipeline else ())
    return [f"{name}=={version(name).split('+')[0]}" for name in names]


def log_model(
    model: Any,
    name: str,
    *,
    input_example: pd.DataFrame,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log a fitted detector or Pipeline as an MLflow pyfunc model that scores DataFrames.

    The logged model's ``predict`` takes a DataFrame and returns ``anomaly_score`` and ``is_anomaly``
    per row (per timestamp for time series), plus ``anomaly_probability`` with
    ``params={"probability": True}`` and ``contribution_<column>`` columns with
    ``params={"contributions": True}``, or for a time series its anomaly events with
    ``params={"events": True}``. It is logged "from code": MLflow runs
    ``vae_anomaly/mlflow_model_code.py``, which loads the model from a bundle artifact (JSON,
    safetensors, and skops for a Pipeline's preprocessing) with no pickle. The vae_anomaly source is
    logged with it, so it loads wherever its pinned requirements are installed, on CPU or GPU.

    Parameters
    ----------
    model : fitted VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one
    name : str
        Name of the logged model in the run.
    input_example : DataFrame
        A few rows of input as ``fit`` took them (a time series: at least ``window`` timestamps). The
        signature is inferred from it and its scores.
    registered_model_name : str or None, default=None
        Also register the model under this name. The ``champion`` alias is left alone; use
        :func:`register_model` to promote.

    Returns
    -------
    ModelInfo
        Its ``model_uri`` loads with ``mlflow.pyfunc.load_model``.

    Raises
    ------
    TypeError
        If ``model`` is not a detector or Pipeline ending in one, or ``input_example`` is no DataFrame.
    NotFittedError
        If the detector is not fitted.
    """
    detector = model_parts(model).detector
    check_is_fitted(detector, "module_")
    if not isinstance(input_example, pd.DataFrame):
        raise TypeError(f"input_example must be a pandas DataFrame, got {type(input_example).__name__}.")
    signature = infer_signature(
        input_example,
        score_frame(model, input_example),
        params={
            "contributions": False,
            "probability": False,
            **({"events": False} if detector.scores_whole_series else {}),
        },
    )
    # Every column is needed, but the model checks that itself (INPUT_COLUMNS_CONFIG): MLflow's own
    # check of a required column answers with the whole input frame before the column's name.
    signature.inputs = Schema([ColSpec(c.type, c.name, required=False) for c in signature.inputs.inputs])
    with tempfile.TemporaryDirectory() as scratch:
        bundle = save_bundle(model, Path(scratch) / BUNDLE_ARTIFACT)
        code = Path(scratch) / "code" / PACKAGE_DIR.name
        shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
        with quiet_artifact_downloads():  # MLflow loads the model back to check the input example
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(MODEL_CODE),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                code_paths=[str(code)],
                signature=signature,
                input_example=input_example,
                model_config={INPUT_COLUMNS_CONFIG: [str(column) for column in input_example.columns]},
                pip_requirements=_model_requirements(model),
                registered_model_name=registered_model_name,
            )
