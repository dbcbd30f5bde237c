"""One training epoch: the training rows on the device, the three step implementations, and the pass.

The three steps compute the same update and differ in how:

- ``autograd_step``: the negative ELBO through autograd (``loss.backward()``); the reference, and the
  step a CUDA graph captures (``graphed_steps.GraphedSteps``).
- ``closed_form_step``: the gradients in closed form (``gradients.neg_elbo_gradients``), bit-identical to
  autograd's and faster on a CPU. It depends on these model internals, which it re-derives by hand:
  the layer order of ``GaussianVAE`` (through ``model.Trace``), ``model.neg_elbo_terms``,
  ``model.ENCODER_LOG_VARIANCE_RANGE`` and ``model.MIN_DECODER_VARIANCE``; a change to any of them must
  change ``gradients`` too, and ``tests/test_gradients.py`` fails until it does.
- the graphed step: ``autograd_step`` replayed from one captured CUDA graph under bf16 autocast, its
  inputs in static buffers (``graphed_steps``).

``epoch_runner`` picks the step for the device and returns a function that trains one epoch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from vae_anomaly.gradients import neg_elbo_gradients
from vae_anomaly.graphed_steps import GraphedSteps
from vae_anomaly.model import GaussianVAE, hide_values, neg_elbo_terms
from vae_anomaly.optimizers import EagerAdamW

# Norm at which gradients are clipped: keeps one bad minibatch from throwing the weights away.
GRADIENT_CLIP_NORM = 10.0


def gather_rows(values: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """``values[rows]``. A tensor of positions goes through ``index_select``: the same rows as indexing
    with it, at half the cost on a CPU (about 15 us of a training step)."""
    return values[rows] if isinstance(rows, slice) else values.index_select(0, rows)


def take_rows(values: torch.Tensor | None, rows: slice | torch.Tensor) -> torch.Tensor | None:
    """``values[rows]``, or None for an absent mask."""
    return None if values is None else gather_rows(values, rows)


class Generators(NamedTuple):
    """The training's private random streams: the split and shuffling (on the CPU), the
    reparameterization noise and the hidden values (on the training device)."""

    shuffle: torch.Generator
    noise: torch.Generator
    gaps: torch.Generator


@dataclass(frozen=True)
class TrainingRows:
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
        positions = rows if self.index is None else gather_rows(self.index, rows)
        return gather_rows(self.x, positions), take_rows(self.mask, positions)


def autograd_step(
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


def closed_form_step(
    module: GaussianVAE,
    optimizer_step: Callable[[], None],
    parameters: list[torch.nn.Parameter],
    batch: torch.Tensor,
    mask: torch.Tensor | None,
    noise: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """:func:`autograd_step` with the gradients in closed form (bit-identical, faster on a CPU).

    ``optimizer_step`` applies the clipped gradients (an :class:`~vae_anomaly.optimizers.EagerAdamW`).
    ``parameters`` are the module's, listed once by the caller: walking the module for them at every
    step cost about 20 us, a fifth of the clipping.
    """
    means = neg_elbo_gradients(module, batch, noise, beta, mask)
    total_norm = torch.nn.utils.get_total_norm([parameter.grad for parameter in parameters])
    # clip_grad_norm_ scales by min(1, this ratio): skipping the scaling by exactly 1 changes nothing.
    if GRADIENT_CLIP_NORM / (total_norm + 1e-6) < 1:
        torch.nn.utils.clip_grads_with_norm_(parameters, GRADIENT_CLIP_NORM, total_norm)
    optimizer_step()
    return means


def run_eager_epoch(
    step: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, float], torch.Tensor],
    module: GaussianVAE,
    train: TrainingRows,
    beta: float,
    batch_size: int,
    generators: Generators,
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


def epoch_runner(
    module: GaussianVAE,
    optimizer: torch.optim.Optimizer | EagerAdamW,
    train: TrainingRows,
    batch_size: int,
    generators: Generators,
    gap_injection: float,
) -> Callable[[float], list[float]]:
    """A function that trains one epoch at a given beta and returns its mean loss, reconstruction and KL.

    ``optimizer`` is :func:`~vae_anomaly.optimizers.optimizer_for`'s for the rows' device. On CUDA the
    steps replay one captured graph (see ``graphed_steps``) under bf16 autocast; elsewhere each
    minibatch is an eager step with its gradients in closed form (see ``gradients``), applied by the
    ``EagerAdamW``.
    """
    device = train.x.device
    if device.type != "cuda":
        parameters = list(module.parameters())
        step = functools.partial(closed_form_step, module, optimizer, parameters)
        return functools.partial(
            run_eager_epoch,
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
        functools.partial(autograd_step, module, optimizer, autocast=autocast),
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
