"""Torch's CPU threads: one for small work, the CPU quota for large work, and restored after a fit;
scoring workers on Python threads for small work."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import vae_anomaly.cpus as cpus
import vae_anomaly.devices as threads
from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.cpus import SMALL_WORK_MACS, available_cpus, choose_threads
from vae_anomaly.devices import MAX_SCORING_WORKERS, scoring_workers, torch_threads
from vae_anomaly.model import GaussianVAE
from vae_anomaly.scoring import score_rows
from vae_anomaly.scoring_batches import SCORING_BATCH_ROWS


def test_small_work_gets_one_thread_and_large_work_every_cpu():
    assert choose_threads("auto", SMALL_WORK_MACS - 1) == 1
    assert choose_threads("auto", SMALL_WORK_MACS) == available_cpus()
    assert choose_threads(1, SMALL_WORK_MACS) == 1
    assert choose_threads(3, 1) == min(3, available_cpus())


def test_more_threads_than_cpus_are_capped_with_a_warning(planted):
    before = torch.get_num_threads()
    assert choose_threads(100_000, 1) == available_cpus()
    with pytest.warns(UserWarning, match=rf"n_threads=100000 is more than the {available_cpus()} CPU\(s\)"):
        detector = VAEAnomalyDetector(epochs=1, n_threads=100_000, random_state=0).fit(planted[0])
    assert np.isfinite(detector.score_samples(planted[0])).all()
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("50000 100000", 1), ("150000 100000", 1), ("max 100000", None), ("100000000 100000", None)],
    ids=["half_a_cpu", "one_and_a_half", "no_limit", "above_the_machine"],
)
def test_a_cgroup_cpu_limit_caps_the_cpus(tmp_path, monkeypatch, cpu_max, expected):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    monkeypatch.setattr(cpus, "_CGROUP_V2_MAX", tmp_path / "cpu.max")
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus() == (min(affinity, expected) if expected is not None else affinity)


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_fit_and_scoring_leave_torch_threads_as_they_were(planted):
    before = torch.get_num_threads()
    detector = VAEAnomalyDetector(epochs=2, n_threads=1, random_state=0).fit(planted[0])
    detector.score_samples(planted[0])
    assert torch.get_num_threads() == before


def test_scores_do_not_depend_on_the_thread_count(planted):
    one = VAEAnomalyDetector(epochs=3, n_threads=1, random_state=0).fit(planted[0])
    two = VAEAnomalyDetector(epochs=3, n_threads=2, random_state=0).fit(planted[0])
    np.testing.assert_allclose(one.score_samples(planted[0]), two.score_samples(planted[0]), rtol=1e-4)


def test_small_work_is_scored_by_a_worker_per_cpu_and_large_or_pinned_work_by_one(monkeypatch):
    assert scoring_workers("auto", SMALL_WORK_MACS - 1) == min(available_cpus(), MAX_SCORING_WORKERS)
    monkeypatch.setattr(threads, "available_cpus", lambda: 64)
    assert scoring_workers("auto", SMALL_WORK_MACS - 1) == MAX_SCORING_WORKERS
    assert scoring_workers("auto", SMALL_WORK_MACS) == 1
    assert scoring_workers(2, 1) == 1


@pytest.mark.parametrize("per_feature", [False, True])
def test_scores_are_the_same_whatever_the_number_of_scoring_workers(per_feature):
    module = GaussianVAE(4, (8,), 2, torch.Generator().manual_seed(0)).eval()
    rows = np.random.default_rng(0).normal(size=(3 * SCORING_BATCH_ROWS + 5, 4)).astype(np.float32)
    mask = (np.arange(rows.size).reshape(rows.shape) % 7 != 0).astype(np.float32)
    noise = np.random.default_rng(1).normal(size=(2, 2))

    one, three = (
        score_rows(module, rows, noise, per_feature=per_feature, mask=mask, workers=workers)
        for workers in (1, 3)
    )

    for name, values in one._asdict().items():
        if values is None:
            assert getattr(three, name) is None
        else:
            np.testing.assert_array_equal(getattr(three, name), values, err_msg=name)
