"""How ``score_rows`` cuts rows into batches: how many rows a batch holds on each device, and the
padding that gives every batch a shape whose rounding does not depend on how the rows were cut."""

from __future__ import annotations

import torch

SCORING_BATCH_ROWS = 8192
# On CUDA every batch is padded to one shape per model: the largest power of two of rows within this
# many bytes of float32 input, from SCORING_BATCH_ROWS up to CUDA_SCORING_BATCH_MAX_ROWS. Larger batches
# cut the per-batch launches, copies and synchronisations that bound scoring on a GPU.
CUDA_SCORING_BATCH_BYTES = 128 * 2**20
CUDA_SCORING_BATCH_MAX_ROWS = 262144
# On the CPU a scoring batch holds at most this many bytes of float32 input (a power of two of rows, at
# most SCORING_BATCH_ROWS): the batch's temporaries of the same size (reconstruction, squared error)
# then stay in cache and reuse their memory, where 8,192 rows of a wide input took fresh pages every
# batch. A 25-channel series in 32-step windows scores 1.35x faster (benchmarks/RESULTS.md, issue 14).
CPU_SCORING_BATCH_BYTES = 4 * 2**20
# On the CPU every batch is padded to a multiple of this many rows: torch's matrix products (MKL) take
# other kernels for few rows, whose float32 rounding differs (by about 5e-7), so a row scored alone
# would not score as it does among others. 4 rows sufficed on an AVX2 CPU; on an AVX-512/AMX Xeon a
# layer of 1-3 outputs (a model's last, for 1-3 features) rounds differently below 16 rows, and at
# 16-8,192 rows in steps of 16 agrees bit for bit (1 and 2 threads, 3-512 inputs, 1-7 outputs).
CPU_BATCH_ROW_MULTIPLE = 16


def scoring_batch_rows(n_features: int, device: torch.device) -> int:
    """Rows per batch of ``score_rows`` for ``n_features``-wide input on ``device``.

    Parameters
    ----------
    n_features : int
        Width of a row.
    device : torch.device
        Where the module runs.

    Returns
    -------
    int
        On CUDA (where every batch is padded to it) the largest power of two of rows within
        ``CUDA_SCORING_BATCH_BYTES``, kept between ``SCORING_BATCH_ROWS`` and
        ``CUDA_SCORING_BATCH_MAX_ROWS``; elsewhere the largest power of two of rows within
        ``CPU_SCORING_BATCH_BYTES``, at most ``SCORING_BATCH_ROWS``.
    """
    if device.type == "cuda":
        return min(
            CUDA_SCORING_BATCH_MAX_ROWS,
            max(SCORING_BATCH_ROWS, _rows_within(CUDA_SCORING_BATCH_BYTES, n_features)),
        )
    return min(SCORING_BATCH_ROWS, _rows_within(CPU_SCORING_BATCH_BYTES, n_features))


def _rows_within(n_bytes: int, n_features: int) -> int:
    """The largest power of two of float32 rows of ``n_features`` within ``n_bytes`` (at least 1)."""
    fitting = max(1, n_bytes // (4 * max(1, n_features)))
    return 1 << (fitting.bit_length() - 1)


def fixed_shape(batch: torch.Tensor, batch_rows: int) -> torch.Tensor:
    """Pad a batch with zero rows so that a row's score does not depend on how rows are batched.

    Parameters
    ----------
    batch : Tensor of shape (n_rows, ...)
    batch_rows : int
        The rows of every batch on CUDA (``scoring_batch_rows``), at least ``n_rows``.

    Returns
    -------
    Tensor
        ``batch`` and zero rows after it: on CUDA ``batch_rows`` rows (cuBLAS picks its kernels by
        shape, so every batch gets one shape), on the CPU the next multiple of
        ``CPU_BATCH_ROW_MULTIPLE``; ``batch`` itself when it has those rows already.
    """
    if batch.device.type == "cuda":
        rows = batch_rows
    else:
        rows = -(-len(batch) // CPU_BATCH_ROW_MULTIPLE) * CPU_BATCH_ROW_MULTIPLE
    return batch if rows == len(batch) else torch.nn.functional.pad(batch, (0, 0, 0, rows - len(batch)))
