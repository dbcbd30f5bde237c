"""Which files a batch job scores, where each output goes, and whether an output is already complete.

Each output file is written in a fresh private hidden folder beside it (never through a link someone
planted in the output folder), and renamed into place when it holds every row; its parquet metadata
records the row count and the input file's size and modification time, so a rerun can tell a complete
output of this very input from one that is stale or cut short. An output folder that overlaps the
input, two inputs that would share one output, and a symbolic link where an output or one of its
folders goes are refused before anything is read; one job at a time writes into an output folder.
Symbolic links to folders inside the input are followed, and a folder reached twice (a loop, or two
links to one folder) is refused by name.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vae_anomaly.batch.inputs import input_files, partition_keys

# Rows per record batch: peak memory grows with it, not with the input.
DEFAULT_BATCH_ROWS = 65_536
ROWS_KEY = b"vae_anomaly.rows"
SOURCE_KEY = b"vae_anomaly.source"
# The partial file's name inside its private folder: not *.parquet, so no reader takes it for output.
PARTIAL_FILE = "output.partial"
# The private folder of an output's partial file is ".<output name>.<mkdtemp's random part>" + this.
PARTIAL_FOLDER_SUFFIX = ".partial"


class OutputBusyError(RuntimeError):
    """Another scoring job is writing into the same output folder."""


@dataclass(frozen=True)
class FileJob:
    """A readable input file to score: where it is, where its output goes, and what it holds.

    Attributes
    ----------
    source : Path
        The input parquet file.
    target : Path
        Its output file: the same relative path under the output folder.
    output : Path
        The output folder.
    partition : dict of str to str
        Hive partition keys from the folders between the input root and the file.
    dataset : pyarrow.dataset.Dataset
        The opened input.
    n_rows : int
        The input's row count, from its metadata.
    keep : tuple of str or None
        The input columns copied to the output, before ``anomaly_score`` and ``is_anomaly``; None
        copies them all.
    """

    source: Path
    target: Path
    output: Path
    partition: dict[str, str]
    dataset: ds.Dataset
    n_rows: int
    keep: tuple[str, ...] | None = None

    @property
    def output_columns(self) -> list[str]:
        """The input columns the output holds: ``keep``, or every column of the file."""
        return list(self.keep) if self.keep is not None else self.dataset.schema.names

    def new_partial(self) -> Path:
        """A fresh file name to write the output under until it is complete, in a private folder.

        The folder is new, hidden and made by ``tempfile.mkdtemp`` (readable and writable by this user
        alone) beside the target, so nothing another user planted in the output folder, a symbolic
        link included, is ever written through; the folders up to it are created, refusing any that
        is a link.

        Returns
        -------
        Path
            The partial file (not created yet), to rename onto ``target`` with
            :meth:`commit_partial` or drop with :meth:`discard_partial`.
        """
        make_output_folders(self.output, self.target)
        folder = tempfile.mkdtemp(
            prefix=f".{self.target.name}.", suffix=PARTIAL_FOLDER_SUFFIX, dir=self.target.parent
        )
        return Path(folder) / PARTIAL_FILE

    def commit_partial(self, partial: Path) -> None:
        """Rename a complete partial file onto ``target``, refusing a target that is a symbolic link;
        :meth:`discard_partial` then removes what is left (its folder, or the refused file).

        Raises
        ------
        ValueError
            If a symbolic link stands where the output goes.
        """
        if self.target.is_symlink():
            raise ValueError(_link_refusal(self.target))
        os.replace(partial, self.target)

    @staticmethod
    def discard_partial(partial: Path) -> None:
        """Remove a partial file and its private folder, whatever is left of them."""
        partial.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            partial.parent.rmdir()

    def output_metadata(self) -> dict[bytes, bytes]:
        """What a complete output of this very input records: its row count and the input's fingerprint."""
        return {ROWS_KEY: str(self.n_rows).encode(), SOURCE_KEY: _source_fingerprint(self.source)}

    def is_complete(self) -> bool:
        """Whether the output exists, says it holds all rows of this very input, and does."""
        return self.target_records(self.output_metadata(), n_rows=self.n_rows)

    def target_records(self, expected: dict[bytes, bytes], n_rows: int | None = None) -> bool:
        """Whether ``target`` is a readable parquet file whose metadata holds ``expected`` (and, with
        ``n_rows``, that many rows): an output of this very input, written to the end."""
        if not self.target.is_file():
            return False
        try:
            metadata = pq.read_metadata(self.target)
        except (OSError, pa.ArrowException):
            return False
        recorded = metadata.metadata or {}
        rows_match = n_rows is None or metadata.num_rows == n_rows
        return rows_match and all(recorded.get(key) == value for key, value in expected.items())


def plan_jobs(input_path: str | os.PathLike[str], output: Path) -> tuple[list[FileJob], dict[str, str]]:
    """Each readable input file as a job, its output mirroring the input's layout under ``output``.

    Parameters
    ----------
    input_path : str or PathLike
        A parquet file, a folder (names starting with ``.`` or ``_`` are skipped) or a glob.
    output : Path
        The output folder.

    Returns
    -------
    jobs : list of FileJob
        The readable files, in path order.
    unreadable : dict of str to str
        The files that could not be opened as parquet, with the reason.

    Raises
    ------
    FileNotFoundError
        If ``input_path`` matches no file.
    ValueError
        If ``output`` is a file, holds an input file, or lies inside the input folder or where the
        input's glob would match its files (scoring would overwrite the input or score its own output);
        if two input files would write one output (``a.parquet`` and ``a.pq``); if a symbolic link
        stands where an output or one of its folders goes; or if a folder of the input is reached
        twice through links.
    """
    base, files = input_files(input_path)
    targets = [output / file.relative_to(base).with_suffix(".parquet") for file in files]
    _check_no_overlap(input_path, files, targets, output)
    _check_unique_targets(files, targets)
    for target in targets:
        _check_no_link(output, target)
    jobs, unreadable = [], {}
    for file, target in zip(files, targets, strict=True):
        partition = partition_keys(file.relative_to(base))
        try:
            dataset = ds.dataset(file, format="parquet")
            n_rows = dataset.count_rows()
        except (OSError, pa.ArrowException) as error:
            unreadable[str(file)] = f"unreadable parquet: {error}"
            continue
        jobs.append(FileJob(file, target, output, partition, dataset, n_rows))
    return jobs, unreadable


def _check_no_overlap(
    input_path: str | os.PathLike[str], files: list[Path], targets: list[Path], output: Path
) -> None:
    """Refuse an output that is a file, holds an input file, or lies where the input would find it."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"OUTPUT {output} is a file; scores are written into a folder: name a folder.")
    advice = "write the scores to a folder outside the input"
    resolved = output.resolve()
    for file in files:
        if file.resolve().is_relative_to(resolved):
            raise ValueError(
                f"OUTPUT {output} holds the input file {file}: scoring would overwrite its input; {advice}."
            )
    text = str(input_path)
    if glob.has_magic(text):
        pattern = os.path.abspath(text)
        for target in targets:
            if fnmatch.fnmatch(os.path.abspath(target), pattern):
                raise ValueError(
                    f"OUTPUT {output} would receive {target}, which the INPUT pattern {text} matches: a "
                    f"rerun would score its own output; {advice}."
                )
    elif Path(text).is_dir() and resolved.is_relative_to(Path(text).resolve()):
        raise ValueError(
            f"OUTPUT {output} is inside the INPUT folder {text}: a rerun would score its own output; "
            f"{advice}."
        )


def _check_unique_targets(files: list[Path], targets: list[Path]) -> None:
    """Refuse two input files whose outputs would be one file: the second would replace the first."""
    first_source: dict[Path, Path] = {}
    for file, target in zip(files, targets, strict=True):
        other = first_source.setdefault(target, file)
        if other != file:
            raise ValueError(
                f"The input files {other} and {file} would both be scored into {target}, so one "
                "output would replace the other: rename one of them, or score them separately."
            )


def _link_refusal(path: Path) -> str:
    return (
        f"{path} is a symbolic link (to {os.readlink(path)}), where vae-anomaly writes its output: it "
        "never writes through a link, which could overwrite another file. Remove the link, or choose "
        "another output folder."
    )


def _check_no_link(output: Path, target: Path) -> None:
    """Refuse a symbolic link at ``target`` or at a folder between ``output`` and it."""
    path = target
    while path != output:
        if path.is_symlink():
            raise ValueError(_link_refusal(path))
        path = path.parent


def make_output_folders(output: Path, target: Path) -> None:
    """Create the folders from ``output`` down to ``target``'s, never through a link (one planted
    since the jobs were planned is refused).

    Parameters
    ----------
    output : Path
        The output folder, which exists.
    target : Path
        An output file below it.

    Raises
    ------
    ValueError
        If a folder on the way is a symbolic link.
    """
    _check_no_link(output, target.parent)
    missing = []
    folder = target.parent
    while folder != output and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir()  # fails on anything planted there since the check


def clear_stale_partials(jobs: Sequence[FileJob]) -> None:
    """Remove what a killed job left of these jobs' outputs: private partial folders of this user
    with nothing in them but a partial file. Each output folder is listed once. Call it holding the
    output folder's lock (:func:`locked_output`), so that no running job's partial is taken.

    Parameters
    ----------
    jobs : sequence of FileJob
    """
    names_by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        names_by_folder.setdefault(job.target.parent, set()).add(job.target.name)
    for folder, names in names_by_folder.items():
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in os.scandir(folder):
            stem = entry.name[1 : -len(PARTIAL_FOLDER_SUFFIX)]
            ours = entry.name.startswith(".") and entry.name.endswith(PARTIAL_FOLDER_SUFFIX)
            if not ours or stem.rpartition(".")[0] not in names or not entry.is_dir(follow_symlinks=False):
                continue
            if hasattr(os, "getuid") and entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            partial = Path(entry.path) / PARTIAL_FILE
            if partial.is_file() and not partial.is_symlink():
                partial.unlink()
            with contextlib.suppress(OSError):  # anything else in it is not ours: leave it
                Path(entry.path).rmdir()


@contextmanager
def locked_output(output: Path) -> Iterator[None]:
    """Create the output folder and hold an exclusive lock on it while the body runs.

    The lock is the kernel's advisory lock on the folder itself, so it leaves no file behind and is
    released however the process ends, a SIGKILL included. Where the platform has no ``fcntl``
    (Windows), no lock is taken.

    Parameters
    ----------
    output : Path
        The output folder.

    Raises
    ------
    OutputBusyError
        If another process holds the lock.
    """
    output.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    descriptor = os.open(output, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(
                f"Another vae-anomaly scoring job is writing into {output}: wait for it to finish, or "
                "write to another folder."
            ) from None
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _source_fingerprint(path: Path) -> bytes:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}".encode()
