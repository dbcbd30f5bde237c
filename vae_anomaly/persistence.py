"""Safe model files: a JSON config and safetensors weights in one folder; loading never unpickles code.

A saved folder holds ``config.json`` (format version, estimator class, constructor parameters, fitted
attributes and the SHA-256 of the weights) and ``weights.safetensors``. Loading checks the format
version and the checksum before it reads a single tensor.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_NAME = "vae-anomaly"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


class ModelFileError(ValueError):
    """A saved model folder is missing, corrupted, tampered with or of an unknown format version."""


class SavedModel(NamedTuple):
    """The contents of a saved model folder."""

    params: dict[str, Any]
    attributes: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(
    path: str | os.PathLike[str],
    estimator: str,
    params: dict[str, Any],
    attributes: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> Path:
    """Write a model folder at ``path`` (created if absent; existing model files are replaced).

    Parameters
    ----------
    path : str or PathLike
        Folder to write.
    estimator : str
        Class name of the estimator, checked again on load.
    params : dict
        JSON-serialisable constructor parameters.
    attributes : dict
        JSON-serialisable fitted attributes.
    tensors : dict of str to Tensor
        Weights and arrays; stored on the CPU.

    Returns
    -------
    Path
        The folder written.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(weights))
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "estimator": estimator,
        "torch_version": torch.__version__,
        "weights_sha256": _sha256(weights),
        "params": params,
        "attributes": attributes,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=False))
    return folder


def saved_estimator_name(path: str | os.PathLike[str]) -> str:
    """The estimator class name recorded in a folder written by :func:`save_model`.

    Parameters
    ----------
    path : str or PathLike
        Folder to inspect.

    Returns
    -------
    str

    Raises
    ------
    ModelFileError
        If the folder holds no readable vae-anomaly config.
    """
    return _read_config(Path(path))["estimator"]


def _read_config(folder: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, checked to be ours and of a readable version."""
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelFileError(f"{config_path} does not exist: {folder} is not a saved vae-anomaly model.")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{config_path} is not valid JSON ({error}).") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{config_path} is not a vae-anomaly model config.")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} has model format version {version!r}, but this vae-anomaly reads versions up to "
            f"{FORMAT_VERSION}: upgrade vae-anomaly to load it."
        )
    return config


def load_model(path: str | os.PathLike[str], estimator: str) -> SavedModel:
    """Read and verify a folder written by :func:`save_model`.

    Parameters
    ----------
    path : str or PathLike
        Folder to read.
    estimator : str
        Class name the folder must have been saved from.

    Returns
    -------
    SavedModel

    Raises
    ------
    ModelFileError
        If a file is missing or unreadable, the format or version is not one this library reads, the
        estimator class differs, or the weights do not match their checksum.
    """
    folder = Path(path)
    config = _read_config(folder)
    config_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{weights} does not exist: {folder} is not a saved vae-anomaly model.")
    if config.get("estimator") != estimator:
        raise ModelFileError(
            f"{folder} holds a {config.get('estimator')!r}, not a {estimator!r}: "
            f"load it with {config.get('estimator')}.load."
        )
    if _sha256(weights) != config.get("weights_sha256"):
        raise ModelFileError(
            f"{weights} does not match the checksum in {config_path}: the file was modified or corrupted."
        )
    try:
        tensors = load_file(str(weights))
    except SafetensorError as error:  # only reachable if config.json was rewritten to match
        raise ModelFileError(f"{weights} is not a valid safetensors file ({error}).") from error
    return SavedModel(config["params"], config["attributes"], tensors)
