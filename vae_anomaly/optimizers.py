"""The training's optimiser and learning-rate schedule: AdamW, its rate decaying along a cosine to zero.

On CUDA the optimiser is ``torch.optim.AdamW`` (fused and capturable, so a CUDA graph replays its
step). Elsewhere it is :class:`EagerAdamW`: the same update through torch's functional ``adamw``,
without a ``torch.optim`` optimizer object, whose first construction in a process imports
``torch._dynamo`` (about 1 s on a small CPU, paid by every fresh process that fits). The schedule is
:func:`cosine_rates`, the rates ``torch.optim.lr_scheduler.CosineAnnealingLR`` gives, computed as it
computes them.
"""

from __future__ import annotations

import math

import torch
from torch.optim.adamw import adamw

from vae_anomaly.model import GaussianVAE

# torch.optim.AdamW's defaults, which the training keeps.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class EagerAdamW:
    """AdamW's update as ``torch.optim.AdamW(parameters, lr, weight_decay=..., fused=...).step()`` makes
    it, bit for bit, on the parameters' ``grad``.

    Its state is made as the torch optimizer makes it at its first step (moment estimates of zeros
    like each parameter, and a step count), and each call runs torch's functional ``adamw`` on it.

    Parameters
    ----------
    parameters : list of torch.nn.Parameter
        Updated in place.
    learning_rate : float
        The rate of the next step; the schedule sets it between epochs.
    weight_decay : float
        Decoupled weight decay.
    fused : bool
        Torch's fused kernel (on the CPU) rather than its ``foreach`` one (other devices).
    """

    def __init__(
        self, parameters: list[torch.nn.Parameter], learning_rate: float, weight_decay: float, fused: bool
    ) -> None:
        self.parameters = parameters
        self.learning_rate, self.weight_decay, self.fused = learning_rate, weight_decay, fused
        with torch.no_grad():
            self._exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in parameters]
            self._exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in parameters]
        # As torch keeps the step count: float32 on the parameter's device for its fused kernel, the
        # default dtype on the CPU otherwise.
        self._steps = [
            torch.zeros((), dtype=torch.float32, device=p.device)
            if fused
            else torch.tensor(0.0, dtype=torch.get_default_dtype())
            for p in parameters
        ]

    @torch.no_grad()  # as Optimizer.step runs: the update is in place on leaf parameters
    def __call__(self) -> None:
        """Apply one step to the parameters from their ``grad``."""
        adamw(
            self.parameters,
            [parameter.grad for parameter in self.parameters],
            self._exp_avg,
            self._exp_avg_sq,
            [],  # the maxima that amsgrad keeps; it is off
            self._steps,
            foreach=None,
            capturable=False,
            differentiable=False,
            fused=self.fused,
            amsgrad=False,
            beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1],
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            eps=ADAM_EPS,
            maximize=False,
        )


def optimizer_for(
    module: GaussianVAE, learning_rate: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW | EagerAdamW:
    """AdamW for ``module``: on CUDA capturable, its rate a device tensor, so a CUDA graph can replay it;
    elsewhere an :class:`EagerAdamW`, fused on the CPU."""
    if device.type == "cuda":
        return torch.optim.AdamW(
            module.parameters(),
            lr=torch.tensor(learning_rate, device=device),
            weight_decay=weight_decay,
            fused=True,
            capturable=True,
        )
    return EagerAdamW(list(module.parameters()), learning_rate, weight_decay, fused=device.type == "cpu")


def cosine_rates(learning_rate: float, n_epochs: int) -> list[float]:
    """The learning rate of each epoch, decaying along a cosine from ``learning_rate`` to zero over
    ``n_epochs``: ``CosineAnnealingLR(optimizer, T_max=n_epochs)``'s rates, by its recursion (each
    rate from the one before), so that they are the same floats.

    Parameters
    ----------
    learning_rate : float
        The first epoch's rate.
    n_epochs : int
        The planned epochs, at least 1.

    Returns
    -------
    list of float
        ``n_epochs`` rates.
    """
    rates = [learning_rate]
    for epoch in range(1, n_epochs):
        ratio = (1 + math.cos(math.pi * epoch / n_epochs)) / (1 + math.cos(math.pi * (epoch - 1) / n_epochs))
        rates.append(ratio * rates[-1])
    return rates


def set_learning_rate(optimizer: torch.optim.Optimizer | EagerAdamW, rate: float) -> None:
    """Give ``optimizer``'s next steps the learning rate ``rate`` (in place where it is a tensor, which a
    captured CUDA graph reads).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer or EagerAdamW
    rate : float
    """
    if isinstance(optimizer, EagerAdamW):
        optimizer.learning_rate = rate
        return
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(rate)
        else:
            group["lr"] = rate
