"""Model manifests: the JSON file of a model folder that records its format and the checksum of every
file in it, and reading a saved detector's config through it. No torch here: the numpy scorer reads saved
folders with it, and ``persistence`` writes and loads the weights.

Every model folder this library writes has one manifest (``config.json`` for a detector, ``bundle.json``
for a bundle) that records the SHA-256 of every other file in the folder and of its own content, so
loading detects an edited config, a changed, missing or extra file, and a leftover from another model,
before it reads a single tensor.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vae_anomaly.model_folder import BUNDLE_FILE, CONFIG_FILE

FORMAT_NAME = "vae-anomaly"
# Version 2 checksums the whole folder; version 1 checksummed the weights only and is not read.
FORMAT_VERSION = 2
WEIGHTS_FILE = "weights.safetensors"
# Version 2 checksums every file of the bundle; version 1 did not and is not read.
BUNDLE_FORMAT_VERSION = 2
DETECTOR_FOLDER = "detector"
_FILES_KEY, _CHECKSUM_KEY = "files", "sha256"


class ModelFileError(ValueError):
    """A saved model folder is missing, corrupted, tampered with or of an unknown format version."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_value(value: Any) -> Any:
    """JSON for the numpy values scikit-learn searches put in parameters, e.g. ``np.int64(4)``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be saved as JSON")


def content_digest(content: dict[str, Any]) -> str:
    """The checksum a manifest records of its own content: SHA-256 of its canonical JSON.

    Parameters
    ----------
    content : dict
        The manifest without its ``sha256`` entry.

    Returns
    -------
    str
        Hexadecimal SHA-256.
    """
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_manifest(folder: Path, name: str, content: dict[str, Any]) -> None:
    """Write ``content`` to ``folder / name`` with the checksum of every other file and of itself.

    Parameters
    ----------
    folder : Path
        A folder holding every other file of the model already.
    name : str
        The manifest's file name.
    content : dict
        JSON-serialisable values; numpy scalars and arrays are turned into plain JSON.

    Raises
    ------
    TypeError
        If a value cannot be written as JSON.
    """
    files = {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path != folder / name
    }
    # Through JSON and back, so the checksum covers exactly what a reader will parse.
    body = json.loads(json.dumps({**content, _FILES_KEY: files}, allow_nan=False, default=_json_value))
    body[_CHECKSUM_KEY] = content_digest(body)
    (folder / name).write_text(json.dumps(body, indent=2, allow_nan=False))


def read_manifest(folder: Path, name: str, check_version: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read ``folder / name`` and verify it and every file of the folder against their checksums.

    Parameters
    ----------
    folder : Path
        A folder written with :func:`write_manifest`.
    name : str
        The manifest's file name.
    check_version : callable
        Raises a ModelFileError for a manifest of a format this library does not read; called before
        the checksums, which another format may compute differently.

    Returns
    -------
    dict
        The manifest's content.

    Raises
    ------
    ModelFileError
        If the manifest is missing or not JSON, of a format ``check_version`` refuses, edited since it
        was written, or if a file it lists is missing or changed, or the folder holds files it does
        not list.
    """
    path = folder / name
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: {folder} is not a saved vae-anomaly model.")
    try:
        body = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path} is not valid JSON ({error}).") from error
    if not isinstance(body, dict):
        raise ModelFileError(f"{path} is not a vae-anomaly manifest.")
    check_version(body)
    recorded = body.pop(_CHECKSUM_KEY, None)
    if recorded != content_digest(body):
        raise ModelFileError(
            f"{path} was modified after the model was saved (its checksum does not match), so the model "
            "cannot be trusted: save it again from the detector."
        )
    listed = body.get(_FILES_KEY)
    if not isinstance(listed, dict):
        raise ModelFileError(f"{path} does not list the model's files.")
    for relative, checksum in listed.items():
        file = folder / relative
        if not file.is_file():
            raise ModelFileError(f"{file} does not exist, but {path} lists it: the model is incomplete.")
        if _sha256(file) != checksum:
            raise ModelFileError(
                f"{file} does not match the checksum in {path}: the file was modified or corrupted."
            )
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    extra = sorted(present - set(listed) - {name})
    if extra:
        raise ModelFileError(
            f"{folder} holds files that are not part of the saved model: {extra}. A model folder holds "
            "one model only: save it again into a new or empty folder."
        )
    return body


def check_format_version(manifest: Path, version: Any, supported: int, kind: str) -> None:
    """Refuse a manifest whose format version is not ``supported``, saying what to do instead.

    Parameters
    ----------
    manifest : Path
        The manifest file, for the message.
    version : object
        The version it records.
    supported : int
        The one version this library reads.
    kind : str
        What the version is of, e.g. ``"model"`` or ``"bundle"``.

    Raises
    ------
    ModelFileError
        If ``version`` is not ``supported``.
    """
    if isinstance(version, int) and version == supported:
        return
    if isinstance(version, int) and version < supported:
        advice = (
            "it was written by an earlier vae-anomaly, whose files are not all checksummed: load it "
            "with that version and save it again with this one"
        )
    else:
        advice = "upgrade vae-anomaly to load it"
    raise ModelFileError(
        f"{manifest} has {kind} format version {version!r}, but this vae-anomaly reads version "
        f"{supported}: {advice}."
    )


def read_config(folder: Path) -> dict[str, Any]:
    """The verified ``config.json`` of a model folder."""

    def check_version(config: dict[str, Any]) -> None:
        if config.get("format") != FORMAT_NAME:
            raise ModelFileError(f"{folder / CONFIG_FILE} is not a vae-anomaly model config.")
        check_format_version(folder / CONFIG_FILE, config.get("format_version"), FORMAT_VERSION, "model")

    return read_manifest(folder, CONFIG_FILE, check_version)


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
        If the folder holds no valid, unmodified vae-anomaly model.
    """
    return read_config(Path(path))["estimator"]


def saved_detector(path: str | os.PathLike[str], estimator: str | None = None) -> tuple[dict[str, Any], Path]:
    """The verified config of a folder written by a detector's ``save``, and its weights file.

    Parameters
    ----------
    path : str or PathLike
        Folder to read.
    estimator : str or None, default=None
        Class name the folder must have been saved from; None takes any.

    Returns
    -------
    config : dict
        ``config.json``'s content: ``estimator``, ``params``, ``attributes``, ...
    weights : Path
        The folder's safetensors file, covered by the config's checksums.

    Raises
    ------
    ModelFileError
        If a file is missing, extra or changed, the format or version is not one this library reads,
        or the estimator class is not ``estimator``.
    """
    folder = Path(path)
    config = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if estimator is not None and config.get("estimator") != estimator:
        raise ModelFileError(
            f"{folder} holds a {config.get('estimator')!r}, not a {estimator!r}: "
            f"load it with {config.get('estimator')}.load."
        )
    if WEIGHTS_FILE not in config[_FILES_KEY]:
        raise ModelFileError(f"{weights} does not exist: {folder} is not a saved vae-anomaly model.")
    return config, weights


def read_bundle_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified ``bundle.json`` of a folder written by ``bundle.save_bundle``.

    Parameters
    ----------
    path : str or PathLike
        The bundle folder.

    Returns
    -------
    dict
        Its content: ``detector`` (the class name), ``steps`` (the Pipeline's step names, None for a
        bare detector), ... The detector's own folder is ``path / DETECTOR_FOLDER``.

    Raises
    ------
    ModelFileError
        If the manifest is missing, edited or of another format version, or a file is missing,
        changed or extra.
    """
    folder = Path(path)

    def check_version(manifest: dict[str, Any]) -> None:
        version = manifest.get("format_version")
        check_format_version(folder / BUNDLE_FILE, version, BUNDLE_FORMAT_VERSION, "bundle")

    return read_manifest(folder, BUNDLE_FILE, check_version)
