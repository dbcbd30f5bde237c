"""The one training loop: device choice, minibatches, KL warm-up, early stopping, divergence checks."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.optim.adamw import adamw
from tqdm.auto import tqdm

from vae_anomaly.devices import training_device
from vae_anomaly.gradients import neg_elbo_gradients
from vae_anomaly.graphed_steps import GraphedSteps
from vae_anomaly.model import GaussianVAE, hide_values, neg_elbo_terms

# Norm at which gradients are clipped: keeps one bad minibatch from throwing the weights away.
GRADIENT_CLIP_NORM = 10.0
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


def _split_rows(
    n_rows: int, validation_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    n_validation = round(n_rows * validation_fraction)
    if n_validation < MIN_VALIDATION_ROWS or n_rows - n_validation < 1:
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


def _gather(values: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """``values[rows]``. A tensor of positions goes through ``index_select``: the same rows as indexing
    with it, at half the cost on a CPU (about 15 us of a training step)."""
    return values[rows] if isinstance(rows, slice) else values.index_select(0, rows)


def _take(values: torch.Tensor | None, rows: slice | torch.Tensor) -> torch.Tensor | None:
    """``values[rows]``, or None for an absent mask."""
    return None if values is None else _gather(values, rows)


class _Generators(NamedTuple):
    """The training's private random streams: the split and shuffling (on the CPU), the
    reparameterization noise and the hidden values (on the training device)."""

    shuffle: torch.Generator
    noise: torch.Generator
    gaps: torch.Generator


@dataclass(frozen=True)
class _Rows:
    """Training or validation rows on the device, with their observed-value mask (None: all observed):
    all of ``x`` in order, or the rows of ``x`` at positions ``index``."""

    x: torch.Tensor
    mask: torch.Tensor | None
    index: torch.Tensor | None = None

    @property
    def n_rows(self) -> int:
        """How many rows these are."""
        return len(self.x) if self.index is None else len(self.index)

    def take(self, rows: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The values and mask of the ``rows``-th of these rows."""
        positions = rows if self.index is None else _gather(self.index, rows)
        return _gather(self.x, positions), _take(self.mask, positions)


def _rows_on_device(
    x: np.ndarray,
    mask: np.ndarray | None,
    config: TrainingConfig,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[_Rows, _Rows | None]:
    """Move the rows to ``device`` once and split off the validation rows (None without a split).

    Off CUDA both parts index the caller's array, so training holds no second copy of the rows. On
    CUDA each part is a tensor of its own, as a captured graph needs for its training rows
    (``GraphedSteps``), and the device then holds the rows once.
    """
    train_rows, validation_rows = _split_rows(len(x), config.validation_fraction, generator)
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    observed = (
        None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)
    )
    if validation_rows is None:
        return _Rows(data, observed), None

    def part(rows: torch.Tensor) -> _Rows:
        rows = rows.to(device)
        if device.type == "cuda":
            return _Rows(_gather(data, rows), _take(observed, rows))
        return _Rows(data, observed, rows)

    return part(train_rows), part(validation_rows)


@torch.no_grad()
def _validation_loss(module: GaussianVAE, validation: _Rows, config: TrainingConfig) -> float:
    """Mean negative ELBO at full beta, evaluated at the posterior mean as the scores are."""
    total = 0.0
    for start in range(0, validation.n_rows, VALIDATION_BATCH_ROWS):
        batch, mask = validation.take(slice(start, start + VALIDATION_BATCH_ROWS))
        terms = neg_elbo_terms(batch, module(batch, torch.zeros(1, device=batch.device)), mask)
        total += float((terms.reconstruction_nll + config.beta * terms.kl).sum())
    return total / validation.n_rows


class EarlyStopping:
    """Keeps the weights of the epoch with the lowest validation loss and says when patience runs out.

    Parameters
    ----------
    patience : int
        Epochs without a lower validation loss after which training should stop.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epochs_without_gain = 0

    def should_stop(self, module: GaussianVAE, validation_loss: float) -> bool:
        """Record an epoch's validation loss (keeping the weights if it is the best); True to stop."""
        if validation_loss < self.best_loss:
            self.best_loss, self.epochs_without_gain = validation_loss, 0
            self._keep(module)
            return False
        self.epochs_without_gain += 1
        return self.epochs_without_gain >= self.patience

    def _keep(self, module: GaussianVAE) -> None:
        """Copy the module's weights into ``best_state``, into the same tensors after the first time."""
        with torch.no_grad():
            if self.best_state is None:
                self.best_state = {name: value.clone() for name, value in module.state_dict().items()}
                return
            for name, value in module.state_dict().items():
                self.best_state[name].copy_(value)

    def restore_best(self, module: GaussianVAE) -> None:
        """Load the best epoch's weights into ``module``, if any epoch was recorded."""
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def _train_step(
    module: GaussianVAE,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    mask: torch.Tensor | None,
    noise: torch.Tensor,
    beta: float | torch.Tensor,
    autocast: torch.autocast,
) -> torch.Tensor:
    """One optimiser step on a minibatch, through autograd; returns its loss, reconstruction and KL means."""
    with autocast:
        terms = neg_elbo_terms(batch, module(batch, noise), mask)
    reconstruction, kl = terms.reconstruction_nll.mean(), terms.kl.mean()
    loss = reconstruction + beta * kl
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), GRADIENT_CLIP_NORM)
    optimizer.step()
    return torch.stack([loss, reconstruction, kl]).detach()


class _AdamWStep:
    """``optimizer.step()`` for the AdamW of :func:`_optimizer_for`, through torch's functional ``adamw``
    on the optimizer's own state and hyperparameters (its learning rate as the schedule sets it).

    The same arithmetic on the same tensors, without the method's per-call bookkeeping (hooks, profiler
    records, the state look-ups), about 45 us of a 1 ms step on a CPU. The first call is
    ``optimizer.step()`` itself, which creates the state.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter]) -> None:
        self.optimizer = optimizer
        self.parameters = parameters
        self.state: dict[str, list[torch.Tensor]] = {}

    @torch.no_grad()  # as Optimizer.step runs: the update is in place on leaf parameters
    def __call__(self) -> None:
        if not self.state:
            self.optimizer.step()
            states = [self.optimizer.state[parameter] for parameter in self.parameters]
            self.state = {key: [state[key] for state in states] for key in ("exp_avg", "exp_avg_sq", "step")}
            return
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        adamw(
            self.parameters,
            [parameter.grad for parameter in self.parameters],
            self.state["exp_avg"],
            self.state["exp_avg_sq"],
            [],  # the maxima that amsgrad keeps; _optimizer_for leaves amsgrad off
            self.state["step"],
            foreach=group["foreach"],
            capturable=group["capturable"],
            differentiable=group["differentiable"],
            fused=group["fused"],
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )


def _closed_form_step(
    module: GaussianVAE,
    optimizer_step: Callable[[], None],
    parameters: list[torch.nn.Parameter],
    batch: torch.Tensor,
    mask: torch.Tensor | None,
    noise: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """:func:`_train_step` with the gradients in closed form (bit-identical, faster on a CPU).

    ``optimizer_step`` applies the clipped gradients (an :class:`_AdamWStep`). ``parameters`` are the
    module's, listed once by the caller: walking the module for them at every step cost about 20 us,
    a fifth of the clipping.
    """
    means = neg_elbo_gradients(module, batch, noise, beta, mask)
    total_norm = torch.nn.utils.get_total_norm([parameter.grad for parameter in parameters])
    # clip_grad_norm_ scales by min(1, this ratio): skipping the scaling by exactly 1 changes nothing.
    if GRADIENT_CLIP_NORM / (total_norm + 1e-6) < 1:
        torch.nn.utils.clip_grads_with_norm_(parameters, GRADIENT_CLIP_NORM, total_norm)
    optimizer_step()
    return means


def _run_epoch(
    step: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, float], torch.Tensor],
    module: GaussianVAE,
    train: _Rows,
    beta: float,
    batch_size: int,
    generators: _Generators,
    gap_injection: float,
) -> list[float]:
    """One pass of ``step`` (batch, mask, noise, beta) over the shuffled training rows, ``gap_injection``
    of each batch's values hidden (:func:`hide_values`); returns the mean loss, reconstruction and KL."""
    device = train.x.device
    module.train()
    sums = torch.zeros(3, device=device)
    order = torch.randperm(train.n_rows, generator=generators.shuffle).to(device)
    for start in range(0, train.n_rows, batch_size):
        batch, mask = train.take(order[start : start + batch_size])
        noise = torch.randn(
            len(batch), module.to_z_mean.out_features, generator=generators.noise, device=device
        )
        if gap_injection > 0:
            keep = torch.rand(batch.shape, generator=generators.gaps, device=device) >= gap_injection
            batch, mask = hide_values(batch, mask, keep)
        sums += step(batch, mask, noise, beta) * len(batch)
    return (sums / train.n_rows).tolist()


def _optimizer_for(module: GaussianVAE, config: TrainingConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW for ``module``; on CUDA capturable, its rate a device tensor, so a CUDA graph can replay it."""
    if device.type == "cuda":
        return torch.optim.AdamW(
            module.parameters(),
            lr=torch.tensor(config.learning_rate, device=device),
            weight_decay=config.weight_decay,
            fused=True,
            capturable=True,
        )
    return torch.optim.AdamW(
        module.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=device.type == "cpu",
    )


def _epoch_runner(
    module: GaussianVAE,
    optimizer: torch.optim.Optimizer,
    train: _Rows,
    batch_size: int,
    generators: _Generators,
    gap_injection: float,
) -> Callable[[float], list[float]]:
    """A function that trains one epoch at a given beta and returns its mean loss, reconstruction and KL.

    On CUDA the steps replay one captured graph (see ``graphed_steps``) under bf16 autocast; elsewhere
    each minibatch is an eager step with its gradients in closed form (see ``gradients``).
    """
    device = train.x.device
    if device.type != "cuda":
        parameters = list(module.parameters())
        step = functools.partial(_closed_form_step, module, _AdamWStep(optimizer, parameters), parameters)
        return functools.partial(
            _run_epoch,
            step,
            module,
            train,
            batch_size=batch_size,
            generators=generators,
            gap_injection=gap_injection,
        )
    # The autocast cache must stay off where the step is captured: cached casts would outlive the graph.
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, cache_enabled=False)
    # The training rows themselves: a view when they are a tensor of their own, as on CUDA.
    rows, mask = train.take(slice(None))
    steps = GraphedSteps(
        functools.partial(_train_step, module, optimizer, autocast=autocast),
        rows,
        mask,
        batch_size,
        module.to_z_mean.out_features,
        optimizer,
        gap_injection,
    )

    def run_graphed_epoch(beta: float) -> list[float]:
        module.train()
        # Shuffled on the device: a CPU permutation of millions of rows costs more than the epoch.
        order = torch.randperm(train.n_rows, generator=generators.noise, device=device)
        return steps.run_epoch(order, beta, generators.noise, generators.gaps).tolist()

    return run_graphed_epoch


def train_vae(
    module: GaussianVAE,
    x: np.ndarray,
    config: TrainingConfig,
    seed: int,
    mask: np.ndarray | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
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
    generators = _Generators(
        torch.Generator().manual_seed(seed),
        torch.Generator(device=device).manual_seed(seed),
        torch.Generator(device=device).manual_seed(seed + 1),
    )
    train, validation = _rows_on_device(x, mask, config, generators.shuffle, device)
    module.to(device)
    optimizer = _optimizer_for(module, config, device)
    batch_size = batch_size_for(config, train.n_rows)
    run_epoch = _epoch_runner(module, optimizer, train, batch_size, generators, config.gap_injection)
    n_epochs = epochs_for(config, train.n_rows)
    # Cosine decay to zero over the planned epochs: a high early rate, then settling, in a fixed budget.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs)
    stopping = EarlyStopping(config.patience)
    history: list[dict[str, float]] = []
    progress = tqdm(range(n_epochs), desc="VAE", unit="epoch", disable=not config.verbose)
    for epoch in progress:
        beta = _beta_at(epoch, config)
        means = run_epoch(beta)
        if not np.isfinite(means).all():
            raise TrainingDivergedError(
                f"Training diverged in epoch {epoch + 1}: the loss is {means[0]}. "
                f"Lower learning_rate (now {config.learning_rate}) or check the input for huge values."
            )
        record = {"epoch": epoch + 1, "loss": means[0], "reconstruction": means[1], "kl": means[2]}
        record.update(beta=beta, learning_rate=float(schedule.get_last_lr()[0]))
        schedule.step()
        if validation is not None:
            module.eval()
            record["validation_loss"] = _validation_loss(module, validation, config)
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(record)
        progress.set_postfix(loss=f"{means[0]:.4g}", val=f"{record.get('validation_loss', np.nan):.4g}")
        # The objective changes while beta ramps up: compare validation losses only at full beta.
        at_full_beta = epoch + 1 >= config.kl_warmup_epochs
        if (
            validation is not None
            and at_full_beta
            and stopping.should_stop(module, record["validation_loss"])
        ):
            break
    stopping.restore_best(module)
    module.to("cpu").eval()
    return history
