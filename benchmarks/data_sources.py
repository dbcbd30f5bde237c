"""Where each benchmark's public data comes from, the one-line exit of a benchmark that finds none, and
how a benchmark writes the synthetic data it makes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

SOURCES = {
    "nab": "NAB's series (https://github.com/numenta/NAB: data/<category>/*.csv as <category>/*.parquet "
    "with columns timestamp, value, label from labels/combined_windows.json)",
    "multivariate": "one file per series, columns timestamp, the channels, label and split (SMAP via "
    "TranAD, https://github.com/imperial-qore/TranAD; ASD, https://github.com/zhhlee/InterFusion; "
    "SKAB, https://github.com/waico/SKAB)",
}


def files_or_exit(folder: Path, pattern: str, source: str) -> list[Path]:
    """The files under ``folder`` matching ``pattern``, sorted; none exits naming where ``source``'s
    data comes from (a key of ``SOURCES``)."""
    paths = sorted(folder.glob(pattern))
    if not paths:
        raise SystemExit(f"No .parquet files in {folder}: lay out {SOURCES[source]} there, or pass --data.")
    return paths


def write_once(path: Path, write: Callable[[Path], None]) -> None:
    """Make ``path`` (a file or a folder) with ``write``, unless it is there already.

    ``write`` is given a path inside a fresh folder beside ``path`` that only this process made, so
    nothing it writes goes through a link someone planted, and a run cut short leaves no half-written
    data under the name (only the fresh folder, removed as the run ends). The result is then moved to
    ``path`` without replacing anything that appeared there meanwhile: a file is linked (which fails on
    any existing name), a folder renamed (which fails on a link or a folder with files).
    """
    if path.exists():
        return
    if path.is_symlink():
        raise SystemExit(f"{path} is a link to nothing: remove it, or pass another --data.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        fresh = Path(scratch) / path.name
        write(fresh)
        if fresh.is_dir():
            fresh.rename(path)
        else:
            os.link(fresh, path)
