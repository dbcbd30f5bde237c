"""Where a model folder may be written, and writing one atomically: beside its destination first, then
renamed into place, so a save that fails leaves the model that was there before."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from vae_anomaly.user_warnings import warn

CONFIG_FILE = "config.json"
BUNDLE_FILE = "bundle.json"
# The manifests of the two kinds of model folder: a folder holding one of them may be replaced by a save.
MANIFEST_FILES = (CONFIG_FILE, BUNDLE_FILE)


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """Refuse a path a model cannot be saved to: a file, a symbolic link, or a folder holding other files.

    A new path and an existing model folder (which a save replaces) pass. Call it before long work
    whose result is to be saved there, e.g. a fit from a large parquet folder.

    Parameters
    ----------
    path : str or PathLike
        Where the model is to be saved.

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    FileExistsError
        Naming what is there.
    """
    folder = Path(path)
    if folder.is_symlink():
        # Replacing the link would leave its target as it was; writing into the target would write
        # through a link that someone else may have planted. Neither is what the caller asked for.
        raise FileExistsError(
            f"{folder} is a symbolic link (to {os.readlink(folder)}); a model is saved to a real folder: "
            "save to the link's target itself, or remove the link first."
        )
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; a model is saved as a folder: choose another path.")
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / m).is_file() for m in MANIFEST_FILES):
        raise FileExistsError(
            f"{folder} already holds files that are not a saved vae-anomaly model; saving there would "
            "delete them: save into a new or empty folder."
        )
    return folder


def write_model_folder(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Create the folder ``path`` with ``write``, atomically: beside it first, then renamed into place.

    An existing model folder at ``path`` is replaced only once the new one is complete, so a failed
    save leaves it as it was; anything else at ``path`` (a file, a folder with other files, a
    symbolic link) is refused, and nothing is left beside it.

    Parameters
    ----------
    path : str or PathLike
        The model folder to create or replace.
    write : callable
        Writes every file of the model into the empty folder it is given.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    FileExistsError
        If ``path`` is a file, a symbolic link, or a folder that holds something other than a saved
        model.
    """
    folder = check_model_path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging = folder.with_name(f".{folder.name}.{token}.saving")
    staging.mkdir()
    try:
        write(staging)
        if folder.exists():
            retired = folder.with_name(f".{folder.name}.{token}.replaced")
            os.replace(folder, retired)
            try:
                os.replace(staging, folder)
            except BaseException:
                os.replace(retired, folder)
                raise
            try:
                shutil.rmtree(retired)
            except OSError as error:  # the new model is in place; say what could not be cleared
                warn(
                    f"The model was saved to {folder}, but the model it replaced, moved to {retired}, "
                    f"could not be removed ({error}): delete it by hand.",
                    RuntimeWarning,
                )
        else:
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
