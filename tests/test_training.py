"""The training loop: warm-up, early stopping, divergence, progress, reproducibility."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from vae_anomaly import TrainingDivergedError, VAEAnomalyDetector
from vae_anomaly.devices import resolve_device, training_device
from vae_anomaly.graphed_steps import GraphedSteps
from vae_anomaly.model import GaussianVAE, neg_elbo_terms
from vae_anomaly.optimizers import cosine_rates, set_learning_rate
from vae_anomaly.training import (
    TrainingConfig,
    batch_size_for,
    epochs_for,
    train_vae,
)


def _config(**overrides) -> TrainingConfig:
    settings = dict(
        epochs=30,
        batch_size=64,
        learning_rate=1e-3,
        beta=1.0,
        kl_warmup_epochs=5,
        validation_fraction=0.1,
        patience=3,
        weight_decay=0.0,
        device="cpu",
        verbose=0,
    )
    return TrainingConfig(**{**settings, **overrides})


def _module(n_features: int = 8) -> GaussianVAE:
    return GaussianVAE(n_features, (16,), 2, torch.Generator().manual_seed(0))


def test_kl_weight_ramps_up_then_holds(planted):
    history = train_vae(_module(), planted[0].astype(np.float32), _config(patience=100), seed=0)
    assert [round(r["beta"], 2) for r in history[:7]] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0]


def test_early_stopping_restores_the_best_epoch(planted):
    x = planted[0].astype(np.float32)
    module = _module()
    history = train_vae(module, x, _config(epochs=200, learning_rate=3e-2), seed=0)
    assert len(history) < 200
    at_full_beta = [r["validation_loss"] for r in history[4:]]
    assert np.argmin(at_full_beta) == len(at_full_beta) - 1 - 3  # stopped after `patience` epochs
    assert min(at_full_beta) == pytest.approx(_validation_loss_of(module, x, seed=0), rel=1e-5)


def _validation_loss_of(module: GaussianVAE, x: np.ndarray, seed: int) -> float:
    """The restored module's loss on the validation rows the loop held out for this seed."""
    from vae_anomaly.epochs import TrainingRows
    from vae_anomaly.training import _split_rows, _validation_loss

    _, validation = _split_rows(len(x), 0.1, torch.Generator().manual_seed(seed))
    return _validation_loss(module, TrainingRows(torch.from_numpy(x[validation.numpy()]), None), _config())


def test_no_validation_split_runs_every_epoch(planted):
    history = train_vae(_module(), planted[0].astype(np.float32), _config(validation_fraction=0.0), 0)
    assert len(history) == 30
    assert "validation_loss" not in history[0]


@pytest.mark.parametrize("validation_fraction", [0.0, 0.1])
def test_cpu_training_reads_the_callers_rows_without_copying_them(validation_fraction):
    from vae_anomaly.training import _rows_on_device

    x = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    config = _config(validation_fraction=validation_fraction)
    generator = torch.Generator().manual_seed(0)
    train, validation = _rows_on_device(x, None, config, generator, torch.device("cpu"))
    parts = [train] if validation is None else [train, validation]
    assert all(part.x.data_ptr() == x.ctypes.data for part in parts)
    assert sum(part.n_rows for part in parts) == len(x)
    if validation is not None:  # the two parts are disjoint and cover every row
        rows = torch.cat([train.index, validation.index]).sort().values
        assert rows.tolist() == list(range(len(x)))


def test_divergence_raises_a_clear_error():
    x = np.full((64, 8), 3e38, dtype=np.float32)  # squares overflow float32
    with pytest.raises(TrainingDivergedError, match="Training diverged in epoch 1: the loss is"):
        train_vae(_module(), x, _config(), seed=0)


@pytest.mark.parametrize("n_rows,expected", [(100, 500), (5_000, 125), (500_000, 10)])
def test_auto_epochs_target_a_step_budget(n_rows, expected):
    assert epochs_for(_config(epochs="auto", batch_size=512), n_rows) == expected


@pytest.mark.parametrize(
    "n_rows,batch,epochs",
    [
        (200, 200, 500),
        (262_144, 512, 10),
        (262_145, 1024, 10),
        (2_000_000, 4096, 10),
        (20_000_000, 65536, 10),
    ],
)
def test_auto_batch_keeps_epochs_within_512_steps(n_rows, batch, epochs):
    config = _config(epochs="auto", batch_size="auto")
    assert (batch_size_for(config, n_rows), epochs_for(config, n_rows)) == (batch, epochs)


def test_an_explicit_batch_size_is_kept_up_to_the_row_count():
    assert batch_size_for(_config(batch_size=100), 5_000_000) == 100
    assert batch_size_for(_config(batch_size=100), 30) == 30


def _recording_step(seen: list[torch.Tensor]):
    def step(rows, mask, noise, beta):
        seen.append(rows[:, 0].clone())
        return torch.stack([rows.square().mean(), noise.square().mean(), beta])

    return step


def test_buffered_steps_cover_every_row_each_epoch_in_full_batches():
    # Row i holds the value i, so the batches a step received name the rows it was given.
    x = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)
    seen: list[torch.Tensor] = []
    steps = GraphedSteps(_recording_step(seen), x, None, 4, 2, torch.optim.SGD([torch.zeros(1)], lr=0.1))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    means = steps.run_epoch(order, 0.5, torch.Generator().manual_seed(0))
    assert [len(batch) for batch in seen] == [4, 4, 4]
    assert torch.cat(seen).long().tolist() == order.tolist() + order[:2].tolist()
    assert means[2].item() == 0.5 and 0.3 < means[1].item() < 3.0
    steps.run_epoch(order.flip(0), 1.0, torch.Generator().manual_seed(1))
    assert torch.cat(seen[3:]).long().tolist()[:10] == order.flip(0).tolist()


@pytest.mark.parametrize("with_mask", [False, True])
def test_buffered_steps_hide_the_share_of_values_asked_for(with_mask):
    # The CUDA graph's path for gap_injection, run eagerly: a fresh draw each epoch, hidden values at 0.
    x = torch.ones(400, 50)
    mask = None
    if with_mask:
        mask = torch.ones(400, 50)
        mask[:, 0] = 0.0  # a feature missing everywhere stays missing
        x[:, 0] = 0.0
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(rows, step_mask, noise, beta):
        seen.append((rows.clone(), step_mask.clone()))
        return torch.zeros(3)

    optimizer = torch.optim.SGD([torch.zeros(1)], lr=0.1)
    steps = GraphedSteps(step, x, mask, 100, 2, optimizer, gap_injection=0.2)
    for seed in range(2):
        steps.run_epoch(torch.arange(400), 1.0, torch.Generator(), torch.Generator().manual_seed(seed))
    rows = torch.cat([r for r, _ in seen])
    masks = torch.cat([m for _, m in seen])
    torch.testing.assert_close(rows, masks)  # hidden and missing values at 0, the others as they were
    assert 0.17 < 1 - masks[:, 1:].mean().item() < 0.23
    if with_mask:
        assert not masks[:, 0].any()
    assert not torch.equal(masks[:400], masks[400:]), "each epoch draws afresh"


def test_buffered_steps_train_a_vae_as_the_plain_loop_does(planted):
    # The CUDA graph replays these buffered steps; run eagerly here, they must train as well as the loop.
    x = torch.from_numpy(planted[0].astype(np.float32))
    module = _module()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)

    def step(rows, mask, noise, beta):
        terms = neg_elbo_terms(rows, module(rows, noise), mask)
        loss = (terms.reconstruction_nll + beta * terms.kl).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return torch.stack([loss, terms.reconstruction_nll.mean(), terms.kl.mean()]).detach()

    steps = GraphedSteps(step, x, None, 128, 2, optimizer)
    generator = torch.Generator().manual_seed(0)
    losses = [steps.run_epoch(torch.randperm(len(x), generator=generator), 1.0, generator)[0].item()]
    losses += [
        steps.run_epoch(torch.randperm(len(x), generator=generator), 1.0, generator)[0].item()
        for _ in range(30)
    ]
    with torch.no_grad():
        terms = neg_elbo_terms(x, module(x, torch.zeros(1)))
    assert losses[-1] < losses[0] - 5
    assert roc_auc_score(planted[1], (terms.reconstruction_nll + terms.kl).numpy()) > 0.95


def test_verbose_shows_a_progress_bar_with_losses(planted, capsys):
    VAEAnomalyDetector(epochs=3, verbose=1, random_state=0).fit(planted[0])
    err = capsys.readouterr().err
    assert "VAE" in err and "3/3" in err and "loss=" in err


def test_fit_leaves_the_global_torch_rng_alone(planted):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    VAEAnomalyDetector(epochs=2, random_state=0).fit(planted[0])
    torch.testing.assert_close(torch.rand(3), expected)


def test_auto_trains_small_sets_on_the_cpu_whatever_the_machine():
    assert training_device("auto", 999) == torch.device("cpu")
    assert training_device("auto", 1000) == resolve_device("auto")
    assert training_device("cpu", 10**6) == torch.device("cpu")


def test_auto_device_is_cpu_without_accelerators():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert resolve_device("auto") == torch.device("cpu")


def test_fitted_module_lives_on_cpu_in_float32(planted):
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(planted[0])
    parameter = next(detector.module_.parameters())
    assert parameter.device.type == "cpu" and parameter.dtype == torch.float32


def test_learning_rate_decays_along_a_cosine(planted):
    history = train_vae(_module(), planted[0].astype(np.float32), _config(epochs=10, patience=100), 0)
    rates = [r["learning_rate"] for r in history]
    expected = [0.5 * 1e-3 * (1 + np.cos(np.pi * epoch / 10)) for epoch in range(10)]
    np.testing.assert_allclose(rates, expected, rtol=1e-9)


@pytest.mark.parametrize("n_epochs", [1, 2, 3, 10, 37, 500])
def test_learning_rates_are_the_floats_torchs_cosine_annealing_gives(n_epochs):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs)
    expected = []
    for _ in range(n_epochs):
        expected.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert cosine_rates(3e-3, n_epochs) == expected


def test_a_tensor_learning_rate_is_set_in_place_where_a_captured_cuda_graph_reads_it():
    rate = torch.tensor(0.1)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=rate, foreach=False)
    set_learning_rate(optimizer, 0.025)
    assert optimizer.param_groups[0]["lr"] is rate and rate.item() == pytest.approx(0.025)
    plain = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    set_learning_rate(plain, 0.025)
    assert plain.param_groups[0]["lr"] == 0.025


def test_a_cpu_fit_does_not_import_torch_dynamo():
    """Building a torch.optim optimizer imports torch._dynamo (about 1 s); a CPU fit builds none."""
    script = (
        "import sys; import numpy as np; from vae_anomaly import VAEAnomalyDetector; "
        "VAEAnomalyDetector(epochs=2, random_state=0).fit(np.random.default_rng(0).normal(size=(300, 4))); "
        "print('torch._dynamo' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
