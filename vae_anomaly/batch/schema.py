"""Checks that every input file fits the model, done for all files before any is scored."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from vae_anomaly.batch.files import FileJob
from vae_anomaly.batch.model import BatchModel
from vae_anomaly.score_columns import ANOMALY_SCORE, IS_ANOMALY

_MAX_LISTED_PROBLEMS = 20


class SchemaError(ValueError):
    """The input does not have the columns, types or values the model needs; lists every problem."""


def arrow_kind(data_type: pa.DataType) -> str:
    """What kind of values an Arrow type holds, as a model's input kinds name them.

    Parameters
    ----------
    data_type : pyarrow.DataType

    Returns
    -------
    str
        "numeric" (integers, floats, decimals), "boolean", "string", "datetime", or the type's name.
    """
    if pa.types.is_dictionary(data_type):
        return arrow_kind(data_type.value_type)
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "numeric"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
        return "datetime"
    return str(data_type)


def decimals_as_float(table: pa.Table) -> pa.Table:
    """The table with its decimal columns as float64, as the model reads numbers (pandas would make
    them Python ``Decimal`` objects).

    Parameters
    ----------
    table : pyarrow.Table

    Returns
    -------
    pyarrow.Table
    """
    for index, column in enumerate(table.schema):
        if pa.types.is_decimal(column.type):
            table = table.set_column(index, column.name, table.column(index).cast(pa.float64()))
    return table


def partition_number(value: str) -> float | None:
    """A hive partition value (``a=1`` gives ``"1"``) as the number a numeric feature takes; None when
    it is not a finite number.

    Parameters
    ----------
    value : str

    Returns
    -------
    float or None
    """
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_schemas(jobs: Sequence[FileJob], model: BatchModel) -> None:
    """Raise one SchemaError listing every problem of every file, or return if there is none.

    Parameters
    ----------
    jobs : sequence of FileJob
        The input files.
    model : BatchModel
        What the model reads.

    Raises
    ------
    SchemaError
        If a file lacks a column the model needs or its ``keep`` names, has one of the wrong kind, has
        nulls the model cannot take, or already has an output column.
    """
    raise_problems(
        "The input does not fit the model", [p for job in jobs for p in _schema_problems(job, model)]
    )


def raise_problems(what: str, problems: Sequence[str]) -> None:
    """Raise one SchemaError that says ``what`` and lists the problems (the first 20), if there are any.

    Parameters
    ----------
    what : str
        The error's first words, e.g. "The input does not fit the model".
    problems : sequence of str
        One line each.

    Raises
    ------
    SchemaError
        If ``problems`` is not empty.
    """
    if problems:
        listed = problems[:_MAX_LISTED_PROBLEMS]
        more = f"\n... and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
        raise SchemaError(
            f"{what} ({len(problems)} problem{'s' * (len(problems) > 1)}):\n" + "\n".join(listed) + more
        )


def _schema_problems(job: FileJob, model: BatchModel) -> list[str]:
    schema = job.dataset.schema
    problems = []
    for column in model.columns:
        if column in job.partition and column not in schema.names:
            if model.kinds[column] == "numeric" and partition_number(job.partition[column]) is None:
                problems.append(
                    f"{job.source}: partition key {column}={job.partition[column]!r} (from its folder "
                    f"name) is a numeric feature of the model, but {job.partition[column]!r} is not a number"
                )
            continue
        if column not in schema.names:
            problems.append(f"{job.source}: missing column {column!r}")
            continue
        expected, found = model.kinds[column], arrow_kind(schema.field(column).type)
        # A detector's numeric feature takes booleans as 0 and 1, as the detector itself does.
        if expected not in ("any", found) and (expected, found) != ("numeric", "boolean"):
            problems.append(
                f"{job.source}: column {column!r} holds {found} values ({schema.field(column).type}), "
                f"expected {expected}"
            )
    for column in job.keep or ():
        if column not in schema.names and column not in job.partition:
            problems.append(f"{job.source}: keep column {column!r} is not in the file")
    clashes = sorted({ANOMALY_SCORE, IS_ANOMALY} & set(job.output_columns))
    if clashes:
        problems.append(
            f"{job.source}: already has column(s) {clashes}, which the output adds; leave them out with "
            f"--drop-columns {','.join(clashes)} (drop_columns=) or choose the columns with --keep-columns"
        )
    if not model.allows_nulls:
        problems += _null_problems(job, model)
    return problems


def _null_problems(job: FileJob, model: BatchModel) -> list[str]:
    """Columns whose parquet statistics show nulls (files without statistics are checked while read)."""
    metadata = next(iter(job.dataset.get_fragments())).metadata
    stored = metadata.schema.to_arrow_schema()
    problems = []
    for column in model.columns:
        index = stored.get_field_index(column)
        if index < 0:
            continue
        nulls = metadata_null_count(metadata, index)
        if nulls:
            problems.append(
                f"{job.source}: column {column!r} has {nulls} null(s), which the model cannot take"
            )
    return problems


def metadata_null_count(metadata: pq.FileMetaData, index: int) -> int:
    """The nulls of a file's column as its row groups' statistics count them (0 where they have none).

    Parameters
    ----------
    metadata : pyarrow.parquet.FileMetaData
    index : int
        The column's position in the file's schema.

    Returns
    -------
    int
    """
    nulls = 0
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(index).statistics
        if statistics is not None and statistics.has_null_count:
            nulls += statistics.null_count
    return nulls
