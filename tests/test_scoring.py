"""Scoring rows: the same numbers wherever the rows are standardized, however they are batched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_anomaly import scaling
from vae_anomaly.model import GaussianVAE
from vae_anomaly.scaling import StandardizedRows
from vae_anomaly.scoring import score_rows
from vae_anomaly.scoring_batches import SCORING_BATCH_ROWS


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_standardized_on_a_device_are_the_host_rows_to_the_bit(device, order, dtype, monkeypatch):
    monkeypatch.setattr(scaling, "DEVICE_CHUNK_BYTES", 300 * 5 * np.dtype(dtype).itemsize)  # 300 rows
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 5)).astype(dtype)
    x[::9, 1] = np.nan
    x[4, 3] = np.finfo(dtype).max  # beyond float32 once standardized: inf on both
    x = np.asarray(x, order=order)
    x.flags.writeable = False  # as pandas may hand its values out
    scale = np.array([2.0, 2.0, 2.0, 0.5, 2.0])
    rows = StandardizedRows(x, np.full(5, 3.0), scale, complete=False)

    batches = [slice(start, start + 64) for start in range(0, 1000, 64)]  # across chunks of 300
    for block in [*batches, slice(0, 1000), slice(17, 530), slice(990, 1200), slice(5, 6)]:
        on_device = rows.tensor(block, torch.device(device)).cpu().numpy()
        assert on_device.dtype == np.float32
        np.testing.assert_array_equal(on_device, rows[block])
    assert np.isinf(rows[slice(4, 5)][0, 3])


def test_a_row_that_overflows_float32_is_most_anomalous_in_any_batch_with_its_squares_as_parts():
    module = GaussianVAE(4, (8,), 2, torch.Generator().manual_seed(0)).eval()
    rows = np.random.default_rng(0).normal(size=(2 * SCORING_BATCH_ROWS + 3, 4)).astype(np.float32)
    overflowing = [5, SCORING_BATCH_ROWS + 1, 2 * SCORING_BATCH_ROWS + 2]
    rows[overflowing, 2] = 3e38  # its square overflows float32

    scores = score_rows(module, rows, per_feature=True)

    for part in (scores.reconstruction_error, scores.reconstruction_nll, scores.kl):
        assert np.isinf(part[overflowing]).all() and np.isfinite(np.delete(part, overflowing)).all()
    expected = np.square(rows[overflowing].astype(np.float64))
    np.testing.assert_array_equal(scores.feature_nll[overflowing], expected)
    np.testing.assert_array_equal(scores.feature_squared_error[overflowing], expected)
    assert (scores.feature_kl[overflowing] == 0).all()


def test_gaps_are_refilled_from_a_pass_over_the_rows_with_gaps_alone_with_the_same_scores(monkeypatch):
    module = GaussianVAE(6, (16,), 3, torch.Generator().manual_seed(0)).eval()
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(1000, 6)).astype(np.float32)
    mask = np.ones_like(rows)
    gapped = rng.choice(len(rows), 37, replace=False)
    mask[gapped, rng.integers(0, 6, len(gapped))] = 0
    rows[mask == 0] = 0.0  # the training mean, standardized
    passed = []
    fill_gaps = GaussianVAE.fill_gaps

    def counted(self, x, observed):
        passed.append(len(x))
        return fill_gaps(self, x, observed)

    monkeypatch.setattr(GaussianVAE, "fill_gaps", counted)

    together = score_rows(module, rows, mask=mask, refill_gaps=True)

    assert passed == [48]  # the 37 rows with a gap, padded to a multiple of 16 as any CPU batch is
    alone = score_rows(module, rows[gapped], mask=mask[gapped], refill_gaps=True)
    np.testing.assert_array_equal(together.reconstruction_nll[gapped], alone.reconstruction_nll)
    np.testing.assert_array_equal(together.kl[gapped], alone.kl)
    complete = np.setdiff1d(np.arange(len(rows)), gapped)
    np.testing.assert_array_equal(together.kl[complete], score_rows(module, rows[complete]).kl)
