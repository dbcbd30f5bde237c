"""A fitted detector, or a Pipeline ending in one, as a folder that loads without unpickling code.

A bundle folder holds ``bundle.json`` (format version, detector class, pipeline step names), the
detector saved by its ``save`` method in ``detector/`` (JSON + safetensors), and, for a Pipeline, the
steps before the detector in ``preprocessing.skops``. skops rebuilds those steps from their recorded
types and refuses to load a type that is not on the trusted list, so a bundle cannot run arbitrary code.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import skops.io
import skops.io.exceptions
from sklearn.pipeline import Pipeline

from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.estimator import VAEAnomalyDetector
from vae_anomaly.persistence import ModelFileError, saved_estimator_name
from vae_anomaly.timeseries import TimeSeriesVAEDetector

BUNDLE_FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
DETECTOR_FOLDER = "detector"
PREPROCESSING_FILE = "preprocessing.skops"
DETECTOR_CLASSES: dict[str, type[BaseVAEDetector]] = {
    cls.__name__: cls for cls in (VAEAnomalyDetector, TimeSeriesVAEDetector)
}
# Beyond the scikit-learn and numpy types skops trusts by default: types that hold data, not code.
TRUSTED_TYPES = ("numpy.dtype", "sklearn.compose._column_transformer.make_column_selector")


def final_detector(model: Any) -> BaseVAEDetector:
    """The VAE detector of ``model``: the model itself, or the last step of a Pipeline.

    Parameters
    ----------
    model : VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one

    Returns
    -------
    VAEAnomalyDetector or TimeSeriesVAEDetector

    Raises
    ------
    TypeError
        If ``model`` is neither.
    """
    detector = model[-1] if isinstance(model, Pipeline) else model
    if not isinstance(detector, BaseVAEDetector):
        raise TypeError(
            f"Expected a VAEAnomalyDetector, a TimeSeriesVAEDetector or a Pipeline ending in one, "
            f"got {type(model).__name__}"
            + (f" ending in {type(detector).__name__}." if detector is not model else ".")
        )
    return detector


def save_bundle(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted detector or Pipeline ending in one to the folder ``path``.

    Parameters
    ----------
    model : fitted VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one
    path : str or PathLike
        Folder to write; created if absent.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    TypeError
        If ``model`` is not a detector or a Pipeline ending in one.
    ValueError
        If a preprocessing step holds a type that :func:`load_bundle` would refuse to load.
    """
    detector = final_detector(model)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    steps = None
    if isinstance(model, Pipeline):
        data = skops.io.dumps(model[:-1])
        untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        if untrusted:
            raise ValueError(
                f"The pipeline's preprocessing holds types that load_bundle does not trust: {untrusted}. "
                "Use scikit-learn's own transformers, or save the detector alone."
            )
        (folder / PREPROCESSING_FILE).write_bytes(data)
        steps = [name for name, _ in model.steps]
    detector.save(folder / DETECTOR_FOLDER)
    manifest = {"format_version": BUNDLE_FORMAT_VERSION, "detector": type(detector).__name__, "steps": steps}
    (folder / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2))
    return folder


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
    manifest_path = folder / BUNDLE_FILE
    if not manifest_path.is_file():
        return load_detector(folder)
    try:
        manifest = json.loads(manifest_path.read_text())
        version, steps = manifest["format_version"], manifest["steps"]
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as error:
        raise ModelFileError(
            f"{manifest_path} is not a valid vae-anomaly bundle manifest ({error})."
        ) from error
    if not isinstance(version, int) or version > BUNDLE_FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} has bundle format version {version!r}, but this vae-anomaly reads versions up to "
            f"{BUNDLE_FORMAT_VERSION}: upgrade vae-anomaly to load it."
        )
    detector = load_detector(folder / DETECTOR_FOLDER)
    if steps is None:
        return detector
    try:
        preprocessing = skops.io.load(folder / PREPROCESSING_FILE, trusted=list(TRUSTED_TYPES))
    except skops.io.exceptions.UntrustedTypesFoundException as error:
        raise ModelFileError(f"{folder / PREPROCESSING_FILE} holds untrusted types: {error}") from error
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{folder / PREPROCESSING_FILE} could not be read ({error}).") from error
    return Pipeline([*preprocessing.steps, (steps[-1], detector)])
