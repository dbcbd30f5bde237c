"""What the training loop tells of each epoch, as skorch's callbacks are told: ``EpochHook`` and the
hooks ``train_vae`` uses (the fit callbacks, the progress bar, early stopping) or is given
(``KeepEpoch``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from vae_anomaly.model import GaussianVAE


class EpochHook:
    """What the training loop tells of each epoch, as skorch's callbacks are told: a hook may stop
    training, and acts when training ends. Subclass it and override what you need."""

    def on_epoch_end(self, module: GaussianVAE, record: dict[str, float]) -> bool:
        """Called after each epoch with its ``history`` record; True stops training."""
        return False

    def on_train_end(self, module: GaussianVAE) -> None:
        """Called once training ends, by patience or after the last epoch (not when it raised)."""


class ReportEpochs(EpochHook):
    """Hands each epoch's record to a function, e.g. the fit callbacks (MLflow's epoch logging)."""

    def __init__(self, report: Callable[[dict[str, float]], None]) -> None:
        self.report = report

    def on_epoch_end(self, module: GaussianVAE, record: dict[str, float]) -> bool:
        """Hand ``record`` on; never stops training."""
        self.report(record)
        return False


class ProgressBar(EpochHook):
    """A progress bar over the epochs with the current losses (``verbose``)."""

    def __init__(self, n_epochs: int, enabled: bool) -> None:
        self.bar = tqdm(total=n_epochs, desc="VAE", unit="epoch", disable=not enabled)

    def on_epoch_end(self, module: GaussianVAE, record: dict[str, float]) -> bool:
        """Advance the bar and show the epoch's losses; never stops training."""
        self.bar.update()
        self.bar.set_postfix(loss=f"{record['loss']:.4g}", val=f"{record.get('validation_loss', np.nan):.4g}")
        return False

    def on_train_end(self, module: GaussianVAE) -> None:
        """Close the bar."""
        self.bar.close()


class EarlyStopping(EpochHook):
    """Keeps the weights of the epoch with the lowest validation loss, stops when patience runs out,
    and restores those weights when training ends.

    The objective changes while beta ramps up, so validation losses are compared only at full beta,
    from epoch ``kl_warmup_epochs`` on; without a validation split nothing is kept or stopped.

    Parameters
    ----------
    patience : int
        Epochs without a lower validation loss after which training should stop.
    kl_warmup_epochs : int, default=0
        The epochs of the KL warm-up.
    """

    def __init__(self, patience: int, kl_warmup_epochs: int = 0) -> None:
        self.patience = patience
        self.kl_warmup_epochs = kl_warmup_epochs
        self.best_loss = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epochs_without_gain = 0

    def on_epoch_end(self, module: GaussianVAE, record: dict[str, float]) -> bool:
        """Record a validated epoch at full beta; True to stop."""
        if "validation_loss" not in record or record["epoch"] < self.kl_warmup_epochs:
            return False
        return self.should_stop(module, record["validation_loss"])

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

    def on_train_end(self, module: GaussianVAE) -> None:
        """Load the best epoch's weights into ``module``, if any epoch was recorded."""
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


class KeepEpoch(EpochHook):
    """Keeps a copy of the weights as they are at the end of one epoch, e.g. an early, under-fitted
    model to score beside the final one (see ``early_weight``).

    Parameters
    ----------
    epoch : int
        The 1-based epoch after which the weights are copied into ``state``; it stays None if training
        ends before.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, module: GaussianVAE, record: dict[str, float]) -> bool:
        """Copy the weights if ``record`` is of epoch ``epoch``; never stops training."""
        if record["epoch"] == self.epoch:
            with torch.no_grad():
                self.state = {name: value.detach().clone() for name, value in module.state_dict().items()}
        return False
