"""A fitted detector, or a Pipeline ending in one, as a folder that loads without unpickling code.

A bundle folder holds ``bundle.json`` (format version, detector class, pipeline step names and the
checksum of every file), the detector saved by its ``save`` method in ``detector/`` (JSON +
safetensors), and, for a Pipeline, the steps before the detector in ``preprocessing.skops`` and, where
numpy can run them (``numpy_preprocessing.describe_preprocessing``: the shipped pipelines' scaling,
one-hot encoding and column selection), their fitted numbers in ``preprocessing.json``, which the
numpy scorer reads without scikit-learn. skops
rebuilds those steps from their recorded types and refuses to load a type that is not on the trusted
list, so a bundle cannot run arbitrary code. skops is imported only when a Pipeline is saved or
loaded: a bare detector loads where skops is not installed (an MLflow model of a detector does not
list it). Like a detector's folder, a bundle is written beside its destination and renamed into place
when complete.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.composition import model_parts
from vae_anomaly.estimator import VAEAnomalyDetector
from vae_anomaly.manifests import (
    BUNDLE_FORMAT_VERSION,
    DETECTOR_FOLDER,
    ModelFileError,
    read_bundle_manifest,
    saved_estimator_name,
    write_manifest,
)
from vae_anomaly.model_folder import BUNDLE_FILE, write_model_folder
from vae_anomaly.numpy_preprocessing import PLAN_FILE, describe_preprocessing
from vae_anomaly.time_index import with_time_column
from vae_anomaly.timeseries import TimeSeriesVAEDetector

PREPROCESSING_FILE = "preprocessing.skops"
DETECTOR_CLASSES: dict[str, type[BaseVAEDetector]] = {
    cls.__name__: cls for cls in (VAEAnomalyDetector, TimeSeriesVAEDetector)
}
# Beyond the scikit-learn and numpy types skops trusts by default: types that hold data, not code.
TRUSTED_TYPES = ("numpy.dtype", "sklearn.compose._column_transformer.make_column_selector")


def save_bundle(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted detector or Pipeline ending in one to the folder ``path``.

    Parameters
    ----------
    model : fitted VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one
    path : str or PathLike
        Folder to write, atomically: an existing model folder there is replaced only once the new one
        is complete (see ``model_folder.write_model_folder``).

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    TypeError
        If ``model`` is not a detector or a Pipeline ending in one.
    FileExistsError
        If ``path`` is a file, or a folder that holds something other than a saved model.
    ValueError
        If a preprocessing step holds a type that :func:`load_bundle` would refuse to load.
    """
    parts = model_parts(model)
    detector = parts.detector
    preprocessing = steps = plan = None
    if parts.preprocessing is not None:
        import skops.io

        preprocessing = skops.io.dumps(parts.preprocessing)
        untrusted = sorted(set(skops.io.get_untrusted_types(data=preprocessing)) - set(TRUSTED_TYPES))
        if untrusted:
            raise ValueError(
                f"The pipeline's preprocessing holds types that load_bundle does not trust: {untrusted}. "
                "Use scikit-learn's own transformers, or save the detector alone."
            )
        steps = [name for name, _ in model.steps]
        names = getattr(detector, "feature_names_in_", [])
        plan = describe_preprocessing(parts.preprocessing, with_time_column(names, detector.time_column))

    def write(folder: Path) -> None:
        if preprocessing is not None:
            (folder / PREPROCESSING_FILE).write_bytes(preprocessing)
        if plan is not None:
            (folder / PLAN_FILE).write_text(json.dumps(plan, allow_nan=False))
        detector.save(folder / DETECTOR_FOLDER)
        manifest = {
            "format_version": BUNDLE_FORMAT_VERSION,
            "detector": type(detector).__name__,
            "steps": steps,
        }
        write_manifest(folder, BUNDLE_FILE, manifest)

    return write_model_folder(path, write)


def load_detector(path: str | os.PathLike[str]) -> BaseVAEDetector:
    """Load a folder written by a detector's ``save``, whichever detector class wrote it.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    VAEAnomalyDetector or TimeSeriesVAEDetector

    Raises
    ------
    ModelFileError
        If the folder is not a valid saved detector.
    """
    name = saved_estimator_name(path)
    if name not in DETECTOR_CLASSES:
        raise ModelFileError(f"{path} holds a {name!r}, which is not a vae-anomaly detector.")
    return DETECTOR_CLASSES[name].load(path)


def load_bundle(path: str | os.PathLike[str]) -> Any:
    """Load a folder written by :func:`save_bundle` (or by a detector's ``save``).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline

    Raises
    ------
    ModelFileError
        If the folder is not a valid bundle, is of a newer format, or its preprocessing holds an
        untrusted type.
    """
    folder = Path(path)
    if not (folder / BUNDLE_FILE).is_file():
        return load_detector(folder)
    manifest = read_bundle_manifest(folder)
    steps = manifest.get("steps")
    detector = load_detector(folder / DETECTOR_FOLDER)
    if steps is None:
        return detector
    import skops.io
    import skops.io.exceptions

    try:
        preprocessing = skops.io.load(folder / PREPROCESSING_FILE, trusted=list(TRUSTED_TYPES))
    except skops.io.exceptions.UntrustedTypesFoundException as error:
        raise ModelFileError(f"{folder / PREPROCESSING_FILE} holds untrusted types: {error}") from error
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{folder / PREPROCESSING_FILE} could not be read ({error}).") from error
    return Pipeline([*preprocessing.steps, (steps[-1], detector)])
