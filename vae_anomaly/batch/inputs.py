"""Which files an input names: a parquet file, a folder (hive-partitioned or not) or a glob, the hive
partition keys of each file, and how many rows they hold. Scoring and training read their inputs so."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def _folder_files(base: Path) -> list[Path]:
    """The visible files below ``base``, sorted, following links to folders; a folder reached twice
    (a link back up, or two links to one folder) is refused, since its files would be scored twice."""
    reached: dict[tuple[int, int], Path] = {}
    files = []
    for folder, subfolders, names in os.walk(base, followlinks=True):
        status = os.stat(folder)
        first = reached.setdefault((status.st_dev, status.st_ino), Path(folder))
        if first != Path(folder):
            raise ValueError(
                f"INPUT folder {folder} is the folder {first} again (through a symbolic link), so its "
                "files would be scored twice: remove the link, or score the folders one at a time."
            )
        subfolders[:] = sorted(name for name in subfolders if not _is_hidden(Path(name)))
        files += [Path(folder, name) for name in names if not _is_hidden(Path(name))]
    return sorted(file for file in files if file.is_file())


def input_files(input_path: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """The input's root folder and its files, sorted: a file, a folder's visible files, or a glob's.

    Parameters
    ----------
    input_path : str or PathLike
        A parquet file, a folder (names starting with ``.`` or ``_`` are skipped, links to folders are
        followed) or a glob.

    Returns
    -------
    base : Path
        The folder the files' relative paths (and hive partition keys) start from.
    files : list of Path

    Raises
    ------
    FileNotFoundError
        If nothing matches, or the folder holds no file.
    ValueError
        If a folder is reached twice through symbolic links.
    """
    text = str(input_path)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        base = Path(os.path.commonpath([f.parent for f in files])) if files else Path(".")
    elif Path(text).is_dir():
        base = Path(text)
        files = _folder_files(base)
    elif Path(text).is_file():
        base, files = Path(text).parent, [Path(text)]
    else:
        raise FileNotFoundError(f"{input_path} matches no file or folder.")
    if not files:
        raise FileNotFoundError(f"{input_path} holds no input files.")
    return base, files


def partition_keys(relative: Path) -> dict[str, str]:
    """The hive partition keys of a file from its folders (``day=2026-12-01/part-0.parquet``).

    Parameters
    ----------
    relative : Path
        The file's path relative to the input's root folder.

    Returns
    -------
    dict of str to str
        Each key and its value, unquoted, outermost folder first.
    """
    return dict(
        unquote(part).split("=", 1) for part in relative.parent.parts if "=" in part and part[0] != "="
    )


def parquet_rows(files: Sequence[Path], *, stop_above: int | None = None) -> int:
    """How many rows parquet files hold, from their footers (no data is read).

    Parameters
    ----------
    files : sequence of Path
        E.g. the files :func:`input_files` finds.
    stop_above : int or None, default=None
        Stop counting once the count is above this: the answer is then only known to be larger.

    Returns
    -------
    int
        A file whose footer cannot be read counts 0 here; scoring reports it as it fails.
    """
    total = 0
    for file in files:
        try:
            total += pq.read_metadata(file).num_rows
        except (OSError, pa.ArrowException):
            continue
        if stop_above is not None and total > stop_above:
            break
    return total
