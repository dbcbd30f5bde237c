"""Where each benchmark's public data comes from, and the one-line exit of a benchmark that finds none."""

from __future__ import annotations

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
