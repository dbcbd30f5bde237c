"""Training a detector's VAE and setting its threshold: the settings checked before any work, the module
built and trained on the detector's threads (an early checkpoint of it kept beside it, see
``early_weight``), the fit callbacks told, the threshold set from the scores of the samples held out
of training (or, where the detector holds none out, of the training samples)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from numbers import Integral
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from sklearn.utils import check_random_state

from vae_anomaly.callbacks import registered_callbacks
from vae_anomaly.cpus import available_cpus, choose_threads
from vae_anomaly.devices import resolve_device, torch_threads
from vae_anomaly.epoch_hooks import KeepEpoch
from vae_anomaly.model import GaussianVAE
from vae_anomaly.scoring import score_rows
from vae_anomaly.thresholds import anomaly_threshold_from, offset_over_phases, robust_spread
from vae_anomaly.training import (
    RowSplit,
    TrainingConfig,
    batch_size_for,
    epochs_for,
    train_vae,
)
from vae_anomaly.user_warnings import warn

# With early_weight > 0 the weights after this share of the planned epochs are kept beside the final
# ones: chosen on each half of the wider ADBench pool from 0.05, 0.1, 0.2 and epoch 20
# (benchmarks/RESULTS.md, issue 31); a share, unlike an epoch, comes in fits of any length.
EARLY_CHECKPOINT_SHARE = 0.1


class TrainsVAE:
    """How a detector trains its VAE, from its shared parameters (``parameters.SHARED_PARAMETERS_DOC``)."""

    _auto_gap_injection: ClassVar[float]
    _module_dtype: ClassVar[torch.dtype]
    hidden_dims: tuple[int, ...]
    latent_dim: int
    device: str
    scoring_device: str
    n_threads: int | Literal["auto"]
    mc_samples: int | None
    early_weight: float
    gap_injection: float | Literal["auto"]
    gap_fill: Literal["reconstruction", "mean"]
    contamination: float | Literal["auto"]
    random_state: Any

    @property
    def _refills_gaps(self) -> bool:
        """Whether scoring refills a sample's missing values from the model (``gap_fill``)."""
        return self.gap_fill == "reconstruction"

    def _check_settings(self) -> None:
        """Check what the parameter constraints cannot before any work: hidden_dims, both devices, and
        n_threads against the CPUs the process may use (more are not used, with a warning)."""
        self._hidden_dims()
        resolve_device(self.device)
        resolve_device(self.scoring_device)
        cpus = available_cpus()
        if self.n_threads != "auto" and self.n_threads > cpus:
            warn(
                f"n_threads={self.n_threads} is more than the {cpus} CPU(s) this process may use; "
                f"{type(self).__name__} uses {cpus}.",
                UserWarning,
            )

    def _hidden_dims(self) -> tuple[int, ...]:
        dims = tuple(self.hidden_dims)
        if not all(isinstance(d, Integral) and not isinstance(d, bool) and d > 0 for d in dims):
            raise ValueError(f"hidden_dims must be positive integers, got {self.hidden_dims!r}.")
        return tuple(int(d) for d in dims)

    def _new_module(self, n_inputs: int, generator: torch.Generator) -> GaussianVAE:
        return GaussianVAE(n_inputs, self._hidden_dims(), self.latent_dim, generator)

    def _training_seed(self) -> int:
        """The seed of one fit's split, initial weights, shuffling and noise, from ``random_state``."""
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit_and_threshold(
        self,
        X: Any,
        rows: np.ndarray,
        mask: np.ndarray | None,
        seed: int,
        training_scores: Callable[[], np.ndarray],
        held_out: tuple[RowSplit | None, Callable[[], np.ndarray]] | None,
    ) -> None:
        """Train on ``rows``, set ``offset_`` and ``score_scale_``, and tell the callbacks.

        ``X`` is the raw training input, passed on to the callbacks; ``training_scores`` scores the
        training samples once the module is fitted, a row per phase (``_scores_after_fit``: row 0 is
        what ``anomaly_score`` gives; the threshold holds for each row). With ``held_out`` (the split
        of ``rows`` into training and validation rows, or None to train on them all, and the scores
        of samples the module does not fit: held out, or out-of-fold) the detector sets the threshold
        from those scores (``_held_out_threshold``); without,
        ``validation_fraction`` of the rows validate at random and it is set on the training scores
        (:func:`offset_over_phases`).
        """
        callbacks = registered_callbacks()
        for callback in callbacks:
            callback.on_fit_start(self)

        def epoch_ended(record: dict[str, float]) -> None:
            for callback in callbacks:
                callback.on_epoch_end(self, record)

        training_scores = functools.cache(training_scores)  # scored once, if at all
        try:
            self._fit_vae(rows, mask, None if held_out is None else held_out[0], seed, epoch_ended)
            if held_out is None:
                scores = training_scores()
                self.offset_ = offset_over_phases([-scores], self.contamination)
                self.score_scale_ = robust_spread(scores[0])
            else:
                self.offset_, self.score_scale_ = self._held_out_threshold(held_out[1](), training_scores)
        except BaseException as error:
            for callback in callbacks:
                callback.on_fit_error(self, error)
            raise
        for callback in callbacks:
            callback.on_fit_end(self, X, training_scores()[0])

    def _held_out_threshold(
        self, held_out_scores: np.ndarray, training_scores: Callable[[], np.ndarray]
    ) -> tuple[float, float]:
        """``offset_`` and ``score_scale_`` from the anomaly scores of samples the module did not fit
        (held out, or out-of-fold; a table's rows have one phase): the score that ``contamination``
        of new samples like them exceed (:func:`anomaly_threshold_from`), and their spread.
        ``training_scores`` gives the training samples' (unused here)."""
        (scores,) = held_out_scores
        return -anomaly_threshold_from(scores, self.contamination), robust_spread(scores)

    def _fit_vae(
        self,
        rows: np.ndarray,
        mask: np.ndarray | None,
        split: RowSplit | None,
        seed: int,
        on_epoch_end: Callable[[dict[str, float]], None],
    ) -> None:
        """Train the VAE on standardized float32 ``rows``; sets module_, history_, latent_noise_,
        early_module_ and early_share_."""
        generator = torch.Generator().manual_seed(seed)
        module = self._new_module(rows.shape[1], generator)
        config = self._training_config()
        n_train = len(rows) if split is None else len(split.train)
        work = batch_size_for(config, n_train) * module.multiply_adds_per_row()
        checkpoint = max(1, round(EARLY_CHECKPOINT_SHARE * epochs_for(config, n_train)))
        keep = [KeepEpoch(checkpoint)] if self.early_weight > 0 else []
        with torch_threads(choose_threads(self.n_threads, work)):
            self.history_ = train_vae(module, rows, config, seed, mask, on_epoch_end, split, keep)
            self.module_ = module.to(self._module_dtype)
            self.latent_noise_ = (
                None
                if self.mc_samples is None
                else torch.randn(
                    self.mc_samples, self.latent_dim, generator=generator, dtype=torch.float64
                ).numpy()
            )
            self.early_module_, self.early_share_ = None, None
            if keep and keep[0].state is not None and len(self.history_) > keep[0].epoch:
                reference = slice(None) if split is None else split.validation
                self._keep_early_module(
                    keep[0].state, rows[reference], None if mask is None else mask[reference]
                )

    def _keep_early_module(
        self, state: dict[str, torch.Tensor], rows: np.ndarray, mask: np.ndarray | None
    ) -> None:
        """Set ``early_module_`` from the early weights ``state`` and ``early_share_`` from both
        modules' scores of ``rows`` (the validation rows): the early scores get the weight that
        makes them count ``early_weight`` times as much as the final ones once each is divided by
        its spread there."""
        early = self._new_module(rows.shape[1], torch.Generator())  # every weight is overwritten
        early.load_state_dict(state)
        self.early_module_ = early.to(self._module_dtype).eval()
        final, first = (
            score_rows(m, rows, self.latent_noise_, mask=mask, refill_gaps=self._refills_gaps)
            for m in (self.module_, early)
        )
        self.early_share_ = {}
        for kind, of in (("elbo", "neg_elbo"), ("reconstruction", "reconstruction_error")):
            weight = self.early_weight * robust_spread(getattr(final, of)) / robust_spread(getattr(first, of))
            self.early_share_[kind] = weight / (1 + weight)

    def _training_config(self) -> TrainingConfig:
        """The training settings among this detector's parameters."""
        settings = {name: getattr(self, name) for name in TrainingConfig.__dataclass_fields__}
        return TrainingConfig(**{**settings, "gap_injection": self._gap_injection_rate()})

    def _gap_injection_rate(self) -> float:
        """``gap_injection`` as a share: "auto" gives ``_auto_gap_injection`` where the detector takes
        missing values, else 0."""
        if self.gap_injection != "auto":
            return float(self.gap_injection)
        return self._auto_gap_injection if self.__sklearn_tags__().input_tags.allow_nan else 0.0
