"""Training steps that read their minibatch from fixed device buffers, replayed on CUDA as one graph.

On a GPU a small VAE's step costs a few microseconds of kernels but milliseconds of Python and kernel
launches. Here each epoch's shuffled row order and reparameterization noise are written to buffers
once, every step gathers its rows on the device by a step counter kept on the device, and on CUDA the
whole step (gather, forward, backward, clipping, AdamW) is captured once as a CUDA graph and replayed:
one launch per step and no host synchronisation inside an epoch. Off CUDA the same steps run eagerly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vae_anomaly.model import hide_values

# Eager steps before the capture, on a side stream as PyTorch's CUDA-graph notes ask: they let
# cuBLAS, the allocator and AdamW's state settle, so the graph records the steady-state step.
WARMUP_STEPS = 3

# (rows, observed mask or None, noise, beta) -> the step's (loss, reconstruction, kl) means, detached.
StepFunction = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor, torch.Tensor], torch.Tensor]


class GraphedSteps:
    """Runs epochs of fixed-size minibatch steps over rows that stay on the device.

    Every epoch has ``ceil(n_rows / batch_size)`` full batches: the last one is completed with the first
    rows of the epoch's order, so that every step has the shape the graph was captured with.

    Parameters
    ----------
    step : callable
        One optimiser step: takes the batch rows, their mask (or None), the noise and beta as a
        0-d device tensor; returns the detached (loss, reconstruction, kl) batch means.
    x : Tensor of shape (n_rows, n_features)
        The training rows, on the training device.
    mask : Tensor of shape (n_rows, n_features) or None
        Their observed-value mask, or None when every value was observed.
    batch_size : int
        Rows per step, at most ``n_rows``.
    latent_dim : int
        Width of the reparameterization noise.
    optimizer : torch.optim.Optimizer
        The step's optimiser; on CUDA it must be built with ``capturable=True`` and a tensor
        learning rate, so that the captured step reads the current rate and step count.
    gap_injection : float, default=0.0
        Share of each batch's values hidden from the step (``model.hide_values``), drawn for the
        whole epoch at once like the noise.
    """

    def __init__(
        self,
        step: StepFunction,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        batch_size: int,
        latent_dim: int,
        optimizer: torch.optim.Optimizer,
        gap_injection: float = 0.0,
    ) -> None:
        device = x.device
        self._step, self._x, self._mask, self._optimizer = step, x, mask, optimizer
        self.n_steps = math.ceil(len(x) / batch_size)
        self._order = torch.zeros(self.n_steps, batch_size, dtype=torch.long, device=device)
        self._noise = torch.zeros(self.n_steps, batch_size, latent_dim, device=device)
        self._gap_injection = gap_injection
        self._keep = (
            torch.ones(self.n_steps, batch_size, x.shape[1], dtype=torch.bool, device=device)
            if gap_injection > 0
            else None
        )
        self._step_index = torch.zeros(1, dtype=torch.long, device=device)
        self._beta = torch.zeros((), device=device)
        self._sums = torch.zeros(3, device=device)
        self._capture = device.type == "cuda"
        self._graph: torch.cuda.CUDAGraph | None = None
        self._steps_run = 0

    def run_epoch(
        self,
        order: torch.Tensor,
        beta: float,
        noise_generator: torch.Generator,
        gap_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One pass over the rows in ``order``; returns the mean (loss, reconstruction, kl) on the device.

        Parameters
        ----------
        order : Tensor of shape (n_rows,)
            A permutation of the row numbers.
        beta : float
            This epoch's KL weight.
        noise_generator : torch.Generator
            Draws the epoch's reparameterization noise, on the rows' device.
        gap_generator : torch.Generator or None
            Draws the epoch's hidden values, on the rows' device; needed with ``gap_injection``.
        """
        flat = self._order.view(-1)
        n_rows = len(order)
        flat[:n_rows].copy_(order)
        flat[n_rows:].copy_(order[: len(flat) - n_rows])
        self._noise.normal_(generator=noise_generator)
        if self._keep is not None:
            torch.ge(
                torch.rand(self._keep.shape, generator=gap_generator, device=self._keep.device),
                self._gap_injection,
                out=self._keep,
            )
        self._beta.fill_(beta)
        self._sums.zero_()
        self._step_index.zero_()
        for _ in range(self.n_steps):
            self._next_step()
        return self._sums / self.n_steps

    def _next_step(self) -> None:
        if self._graph is not None:
            self._graph.replay()
        elif not self._capture:
            self._one_step()
        elif self._steps_run < WARMUP_STEPS:
            self._warmup_step()
        else:
            self._capture_and_replay()
        self._steps_run += 1

    def _one_step(self) -> None:
        """Gather the current step's rows and noise by the device-side counter, step, count the step."""
        rows = self._order.index_select(0, self._step_index).view(-1)
        noise = self._noise.index_select(0, self._step_index).view(len(rows), -1)
        mask = None if self._mask is None else self._mask.index_select(0, rows)
        batch = self._x.index_select(0, rows)
        if self._keep is not None:
            keep = self._keep.index_select(0, self._step_index).view(len(rows), -1)
            batch, mask = hide_values(batch, mask, keep)
        self._sums.add_(self._step(batch, mask, noise, self._beta))
        self._step_index.add_(1)

    def _warmup_step(self) -> None:
        side = torch.cuda.Stream(device=self._x.device)
        side.wait_stream(torch.cuda.current_stream(self._x.device))
        with torch.cuda.stream(side):
            self._one_step()
        torch.cuda.current_stream(self._x.device).wait_stream(side)

    def _capture_and_replay(self) -> None:
        # Gradients set to None before the capture are allocated from the graph's private pool, so every
        # replay's backward writes them afresh where the captured optimiser step reads them.
        self._optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._one_step()
        self._graph = graph
        graph.replay()  # capturing records the step without running it
