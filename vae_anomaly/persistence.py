"""Safe model files: JSON manifests and safetensors weights in one folder; loading never unpickles code.

A saved detector folder holds ``config.json`` (format version, estimator class, constructor parameters
and fitted attributes) and ``weights.safetensors``. The config is the folder's manifest (``manifests``):
it records the SHA-256 of every file, checked before a single tensor is read.

A folder is written beside its destination and renamed into place when complete (``model_folder``): a
save that fails leaves the model that was there before, and a folder only ever holds the files of one
model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vae_anomaly.manifests import (
    FORMAT_NAME,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    ModelFileError,
    saved_detector,
    write_manifest,
)
from vae_anomaly.model_folder import CONFIG_FILE, write_model_folder


class SavedModel(NamedTuple):
    """The contents of a saved model folder."""

    params: dict[str, Any]
    attributes: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def save_model(
    path: str | os.PathLike[str],
    estimator: str,
    params: dict[str, Any],
    attributes: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> Path:
    """Write a model folder at ``path``, atomically (see :func:`write_model_folder`).

    Parameters
    ----------
    path : str or PathLike
        Folder to write; an existing model folder there is replaced once the new one is complete.
    estimator : str
        Class name of the estimator, checked again on load.
    params : dict
        Constructor parameters: JSON values or numpy scalars.
    attributes : dict
        Fitted attributes: JSON values or numpy scalars.
    tensors : dict of str to Tensor
        Weights and arrays; stored on the CPU.

    Returns
    -------
    Path
        The folder written.
    """

    def write(folder: Path) -> None:
        save_file(
            {name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(folder / WEIGHTS_FILE)
        )
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "estimator": estimator,
            "torch_version": torch.__version__,
            "params": params,
            "attributes": attributes,
        }
        write_manifest(folder, CONFIG_FILE, config)

    return write_model_folder(path, write)


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
        If a file is missing, extra or unreadable, the format or version is not one this library
        reads, the estimator class differs, or a file does not match its checksum.
    """
    config, weights = saved_detector(path, estimator)
    try:
        tensors = load_file(str(weights))
    except SafetensorError as error:  # only reachable if the manifest was rewritten to match
        raise ModelFileError(f"{weights} is not a valid safetensors file ({error}).") from error
    return SavedModel(config["params"], config["attributes"], tensors)
