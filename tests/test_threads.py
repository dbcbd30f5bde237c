"""Torch's CPU threads: one for small work, the CPU quota for large work, and restored after a fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vae_anomaly.threads as threads
from vae_anomaly import VAEAnomalyDetector
from vae_anomaly.threads import SMALL_WORK_MACS, available_cpus, choose_threads, torch_threads


def test_small_work_gets_one_thread_and_large_work_every_cpu():
    assert choose_threads("auto", SMALL_WORK_MACS - 1) == 1
    assert choose_threads("auto", SMALL_WORK_MACS) == available_cpus()
    assert choose_threads(3, 1) == 3


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("50000 100000", 1), ("150000 100000", 1), ("max 100000", None), ("100000000 100000", None)],
    ids=["half_a_cpu", "one_and_a_half", "no_limit", "above_the_machine"],
)
def test_a_cgroup_cpu_limit_caps_the_cpus(tmp_path, monkeypatch, cpu_max, expected):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    monkeypatch.setattr(threads, "_CGROUP_V2_MAX", tmp_path / "cpu.max")
    affinity = len(threads.os.sched_getaffinity(0))
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
