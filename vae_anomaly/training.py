"""The one training loop, as skorch's ``fit_loop -> run_single_epoch -> train_step``: ``train_vae`` sets
up the rows, the optimiser and the schedule; ``_fit_loop`` runs the epochs and tells each ``EpochHook``
(the fit callbacks, the progress bar, early stopping); ``_run_single_epoch`` trains one at its KL
weight and checks for divergence; the steps themselves are in ``epochs``, the hooks in ``epoch_hooks``."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vae_anomaly.devices import training_device
from vae_anomaly.epoch_hooks import EarlyStopping, EpochHook, ProgressBar, ReportEpochs
from vae_anomaly.epochs import Generators, TrainingRows, epoch_runner, gather_rows, take_rows
from vae_anomaly.model import GaussianVAE, neg_elbo_terms
from vae_anomaly.optimizers import cosine_rates, optimizer_for, set_learning_rate

# Fewer validation rows than this make early stopping noise, so the loop then trains on every row.
MIN_VALIDATION_ROWS = 16
# epochs="auto" trains for about this many optimiser steps, within AUTO_EPOCH_RANGE epochs: large sets
# need few passes, small ones many, and a fixed step budget bounds the cost of either.
AUTO_TARGET_STEPS = 1250
AUTO_EPOCH_RANGE = (10, 500)
# batch_size="auto" takes AUTO_BATCH_ROWS rows per step, or for big tables the smallest power of two that
# keeps an epoch within AUTO_MAX_STEPS_PER_EPOCH steps: on a GPU a step costs about the same at 512 rows
# as at 8,192, so the step count, not the row count, sets the training time.
AUTO_BATCH_ROWS = 512
AUTO_MAX_STEPS_PER_EPOCH = 512
VALIDATION_BATCH_ROWS = 8192


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run; see the estimators for their meaning and defaults."""

    epochs: int | Literal["auto"]
    batch_size: int | Literal["auto"]
    learning_rate: float
    beta: float
    kl_warmup_epochs: int
    validation_fraction: float
    patience: int
    weight_decay: float
    device: str
    verbose: int
    # The share of observed values hidden in each training step, resolved from the detector's
    # gap_injection; see hide_values.
    gap_injection: float = 0.0


@dataclass(frozen=True)
class RowSplit:
    """Which of the rows given to :func:`train_vae` it trains on and which it validates on.

    Parameters
    ----------
    train : ndarray of int
        Positions of the training rows.
    validation : ndarray of int
        Positions of the validation rows, disjoint from ``train``; rows in neither are left out.
    """

    train: np.ndarray
    validation: np.ndarray


def validation_rows_of(n_rows: int, fraction: float) -> int:
    """How many of ``n_rows`` rows ``fraction`` holds out to validate on: the share, rounded, or 0
    where that is fewer than ``MIN_VALIDATION_ROWS`` (early stopping on them would be noise) or
    leaves none to train on.

    Parameters
    ----------
    n_rows : int
        Rows of the training data.
    fraction : float
        ``validation_fraction``.

    Returns
    -------
    int
    """
    n_validation = round(n_rows * fraction)
    return n_validation if MIN_VALIDATION_ROWS <= n_validation < n_rows else 0


def _split_rows(
    n_rows: int, validation_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    n_validation = validation_rows_of(n_rows, validation_fraction)
    if not n_validation:
        return torch.arange(n_rows), None
    order = torch.randperm(n_rows, generator=generator)
    return order[n_validation:], order[:n_validation]


def batch_size_for(config: TrainingConfig, n_train_rows: int) -> int:
    """Rows per step: ``config.batch_size``, or the ``"auto"`` rule for ``n_train_rows``; at most all rows."""
    if config.batch_size != "auto":
        return min(config.batch_size, n_train_rows)
    rows_per_step = math.ceil(n_train_rows / AUTO_MAX_STEPS_PER_EPOCH)
    power_of_two = 1 << max(rows_per_step - 1, 0).bit_length()
    return min(max(AUTO_BATCH_ROWS, power_of_two), n_train_rows)


def epochs_for(config: TrainingConfig, n_train_rows: int) -> int:
    """Number of epochs to run: ``config.epochs``, or the ``"auto"`` rule for ``n_train_rows``."""
    if config.epochs != "auto":
        return config.epochs
    batches_per_epoch = math.ceil(n_train_rows / batch_size_for(config, n_train_rows))
    return min(
        max(math.ceil(AUTO_TARGET_STEPS / batches_per_epoch), AUTO_EPOCH_RANGE[0]),
        AUTO_EPOCH_RANGE[1],
    )


def _beta_at(epoch: int, config: TrainingConfig) -> float:
    """KL weight for ``epoch`` (0-based): ramps linearly to ``beta`` to avoid posterior collapse."""
    if config.kl_warmup_epochs == 0:
        return config.beta
    return config.beta * min(1.0, (epoch + 1) / config.kl_warmup_epochs)


def _rows_on_device(
    x: np.ndarray,
    mask: np.ndarray | None,
    config: TrainingConfig,
    generator: torch.Generator,
    device: torch.device,
    split: RowSplit | None = None,
) -> tuple[TrainingRows, TrainingRows | None]:
    """Move the rows to ``device`` once, as ``split``'s training and validation rows or, without one,
    with ``config.validation_fraction`` of them drawn at random to validate on (none if too few).

    Off CUDA both parts index the caller's array, so training holds no second copy of the rows. On
    CUDA each part is a tensor of its own, as a captured graph needs for its training rows
    (``GraphedSteps``), and the device then holds the rows once.
    """
    if split is None:
        train_rows, validation_rows = _split_rows(len(x), config.validation_fraction, generator)
    else:
        train_rows, validation_rows = torch.from_numpy(split.train), torch.from_numpy(split.validation)
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    observed = (
        None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)
    )
    if validation_rows is None:  # every row trains
        return TrainingRows(data, observed), None

    def part(rows: torch.Tensor) -> TrainingRows:
        rows = rows.to(device)
        if device.type == "cuda":
            return TrainingRows(gather_rows(data, rows), take_rows(observed, rows))
        return TrainingRows(data, observed, rows)

    return part(train_rows), part(validation_rows)


@torch.no_grad()
def _validation_loss(module: GaussianVAE, validation: TrainingRows, config: TrainingConfig) -> float:
    """Mean negative ELBO at full beta, evaluated at the posterior mean as the scores are."""
    total = 0.0
    for start in range(0, validation.n_rows, VALIDATION_BATCH_ROWS):
        batch, mask = validation.take(slice(start, start + VALIDATION_BATCH_ROWS))
        terms = neg_elbo_terms(batch, module(batch, torch.zeros(1, device=batch.device)), mask)
        total += float((terms.reconstruction_nll + config.beta * terms.kl).sum())
    return total / validation.n_rows


def _fit_loop(
    module: GaussianVAE,
    run_epoch: Callable[[float], list[float]],
    set_rate: Callable[[float], None],
    rates: list[float],
    validation: TrainingRows | None,
    config: TrainingConfig,
    hooks: list[EpochHook],
) -> list[dict[str, float]]:
    """Train up to ``len(rates)`` epochs, each at its learning rate (``set_rate`` sets it), telling every
    hook of each; returns the epochs' records."""
    history = []
    for epoch, rate in enumerate(rates):
        set_rate(rate)
        history.append(_run_single_epoch(module, run_epoch, epoch, rate, validation, config))
        if any([hook.on_epoch_end(module, history[-1]) for hook in hooks]):  # every hook hears of it
            break
    for hook in hooks:
        hook.on_train_end(module)
    return history


def _run_single_epoch(
    module: GaussianVAE,
    run_epoch: Callable[[float], list[float]],
    epoch: int,
    learning_rate: float,
    validation: TrainingRows | None,
    config: TrainingConfig,
) -> dict[str, float]:
    """Train one epoch (0-based ``epoch``, at ``learning_rate``, already set) at its beta, and validate."""
    beta = _beta_at(epoch, config)
    means = run_epoch(beta)
    if not np.isfinite(means).all():
        raise TrainingDivergedError(
            f"Training diverged in epoch {epoch + 1}: the loss is {means[0]}. "
            f"Lower learning_rate (now {config.learning_rate}) or check the input for huge values."
        )
    record = {"epoch": epoch + 1, "loss": means[0], "reconstruction": means[1], "kl": means[2]}
    record.update(beta=beta, learning_rate=learning_rate)
    if validation is not None:
        module.eval()
        record["validation_loss"] = _validation_loss(module, validation, config)
    return record


def train_vae(
    module: GaussianVAE,
    x: np.ndarray,
    config: TrainingConfig,
    seed: int,
    mask: np.ndarray | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    split: RowSplit | None = None,
    hooks: Sequence[EpochHook] = (),
) -> list[dict[str, float]]:
    """Fit ``module`` to the rows of ``x`` by minimising the negative ELBO with AdamW.

    The learning rate starts at ``config.learning_rate`` and decays along a cosine to zero over the
    planned epochs. The whole array is moved to the device once (see :func:`training_device`); on
    CUDA the forward pass runs under bf16 autocast and each step replays one captured CUDA graph,
    with no host synchronisation inside an epoch; elsewhere each step's gradients are computed in
    closed form (:mod:`vae_anomaly.gradients`), equal to autograd's. With a validation split the
    weights of the epoch with the lowest validation loss are restored. The module is returned to the
    CPU when training ends.

    Parameters
    ----------
    module : GaussianVAE
        The initialised model; trained in place.
    x : ndarray of shape (n_samples, n_features), float32
        Standardized training rows, all finite.
    config : TrainingConfig
        Loop settings.
    seed : int
        Seeds the private generators for the split, the shuffling and the reparameterization noise.
    mask : ndarray of shape (n_samples, n_features) or None
        1 where a value was observed, 0 where it was missing (its entry in ``x`` is then a placeholder);
        missing values are left out of the reconstruction term. None: every value was observed.
    on_epoch_end : callable or None
        Called with each epoch's record (see Returns) as soon as the epoch ends.
    split : RowSplit or None
        The rows to train on and to validate on (``holdout`` holds out at least
        ``MIN_VALIDATION_ROWS``); None draws ``config.validation_fraction`` of the rows at random to
        validate on (none if that comes to fewer than ``MIN_VALIDATION_ROWS``).
    hooks : sequence of EpochHook
        Told of each epoch before the loop's own (early stopping restores the best weights after
        them), e.g. :class:`KeepEpoch`.

    Returns
    -------
    list of dict
        One record per epoch: ``epoch``, ``loss``, ``reconstruction``, ``kl``, ``beta``,
        ``learning_rate`` and, with a validation split, ``validation_loss``.

    Raises
    ------
    TrainingDivergedError
        If the loss becomes NaN or infinite.
    """
    device = training_device(config.device, len(x))
    generators = Generators(
        torch.Generator().manual_seed(seed),
        torch.Generator(device=device).manual_seed(seed),
        torch.Generator(device=device).manual_seed(seed + 1),
    )
    train, validation = _rows_on_device(x, mask, config, generators.shuffle, device, split)
    module.to(device)
    optimizer = optimizer_for(module, config.learning_rate, config.weight_decay, device)
    batch_size = batch_size_for(config, train.n_rows)
    run_epoch = epoch_runner(module, optimizer, train, batch_size, generators, config.gap_injection)
    n_epochs = epochs_for(config, train.n_rows)
    # Cosine decay to zero over the planned epochs: a high early rate, then settling, in a fixed budget.
    rates = cosine_rates(config.learning_rate, n_epochs)
    loop_hooks: list[EpochHook] = [*hooks, *([] if on_epoch_end is None else [ReportEpochs(on_epoch_end)])]
    loop_hooks += [
        ProgressBar(n_epochs, bool(config.verbose)),
        EarlyStopping(config.patience, config.kl_warmup_epochs),
    ]
    set_rate = functools.partial(set_learning_rate, optimizer)
    history = _fit_loop(module, run_epoch, set_rate, rates, validation, config, loop_hooks)
    module.to("cpu").eval()
    return history
