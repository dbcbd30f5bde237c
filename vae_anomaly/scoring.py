"""Per-sample anomaly scores of a trained VAE: reconstruction error, negative ELBO and their parts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from vae_anomaly.cpus import choose_threads
from vae_anomaly.devices import device_copy, resolve_device, scoring_workers, torch_threads
from vae_anomaly.model import (
    GaussianVAE,
    VAEOutput,
    gaussian_log_normalizer,
    kl_divergence,
    neg_elbo_terms,
)
from vae_anomaly.sample_scores import SampleScores, mixed_scores
from vae_anomaly.scoring_batches import fixed_shape, scoring_batch_rows

# Integrated gradients of the KL term use this many points between the training mean and the row.
KL_ATTRIBUTION_STEPS = 32
_FEATURE_PARTS = ("feature_squared_error", "feature_nll", "feature_kl")
_PARTS = ("error", "nll", "kl", *_FEATURE_PARTS)


class RowSource(Protocol):
    """Rows that can be read a slice at a time, e.g. an ndarray or windows cut from a series on demand."""

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice) -> np.ndarray: ...


@runtime_checkable
class DeviceRowSource(RowSource, Protocol):
    """A RowSource that can also make a slice of its rows on an accelerator itself, e.g. from raw values
    that cross to the device and are standardized there rather than on the host."""

    def tensor(self, rows: slice, device: torch.device) -> torch.Tensor:
        """``self[rows]`` as a float32 tensor on ``device``, the same numbers as on the host."""
        ...


def score_rows(
    module: GaussianVAE,
    x: RowSource,
    latent_noise: np.ndarray | None = None,
    per_feature: bool = False,
    mask: RowSource | None = None,
    workers: int = 1,
    refill_gaps: bool = False,
) -> SampleScores:
    """Score rows with a trained VAE, deterministically and independently of how rows are batched.

    Parameters
    ----------
    module : GaussianVAE
        Trained model; it is run on its own device and dtype. Every batch is padded (on CUDA to
        ``scoring_batch_rows`` rows, on the CPU to a multiple of ``CPU_BATCH_ROW_MULTIPLE``), so a
        row's score does not depend on the other rows or on how they are batched.
    x : ndarray of shape (n_samples, n_features) or RowSource
        Standardized rows, at least one; read ``scoring_batch_rows`` at a time, so a RowSource that
        builds rows on demand is never held in memory whole. On CUDA a DeviceRowSource makes its rows
        there.
    latent_noise : ndarray of shape (n_draws, latent_dim) or None
        None scores at the posterior mean z = mu. Otherwise each row's terms are averaged over
        z = mu + sigma * eps for these fixed eps: the same draws for every row, so a row's score never
        depends on the other rows.
    per_feature : bool
        Also return each feature's parts of the scores: of the reconstruction error, of the
        reconstruction term and of the KL term (integrated gradients through the encoder, which
        costs 32 encoder passes and their gradients).
    mask : ndarray of shape (n_samples, n_features) or RowSource or None
        1 for observed values, 0 for missing ones, which the reconstruction terms skip. The
        reconstruction error is then the mean over the observed values, and the reconstruction NLL
        their sum scaled by n_features / n_observed: both stay comparable with rows that have no gap.
        None: all observed.
    workers : int
        Batches scored at once, each on a Python thread of its own (see
        :func:`vae_anomaly.devices.scoring_workers`); the scores are the same for any number.
    refill_gaps : bool
        With a ``mask``: replace the missing values (as given in ``x``: the training mean) by the
        model's reconstruction of the row before scoring it (one step of Donut's imputation).

    Returns
    -------
    SampleScores
        In float64. A row whose terms overflow float32 (a value far beyond the training data) gets
        +inf in every term, and its squared standardized values as feature contributions.
    """
    parameter = next(module.parameters())
    dtype, device = parameter.dtype, parameter.device
    latent_dim = module.to_z_mean.out_features
    noise = (
        torch.zeros(1, latent_dim, dtype=dtype, device=device)
        if latent_noise is None
        else torch.as_tensor(latent_noise, dtype=dtype, device=device)
    )
    batch_rows = scoring_batch_rows(module.n_features, device)

    def batch_tensor(source: RowSource, rows: slice) -> torch.Tensor:
        if device.type == "cuda" and isinstance(source, DeviceRowSource):
            return source.tensor(rows, device).to(dtype)
        return torch.as_tensor(np.asarray(source[rows]), dtype=dtype, device=device)

    @torch.no_grad()  # grad mode is per thread, so each worker sets its own
    def score_batch(start: int) -> dict[str, torch.Tensor]:
        """The parts of the scores of the batch of rows from ``start``, left on the module's device."""
        rows = slice(start, start + batch_rows)
        values = batch_tensor(x, rows)
        n_rows = len(values)
        batch = fixed_shape(values, batch_rows)
        observed = None if mask is None else fixed_shape(batch_tensor(mask, rows), batch_rows)
        # A row without gaps is its own refill: the extra pass is spent only where a value is missing
        # (padding rows, all 0 in ``observed``, count among them and are cut off with the rest).
        gapped = None if observed is None or not refill_gaps else torch.nonzero(~observed.all(dim=1))[:, 0]
        refill = None if gapped is None or not len(gapped) else observed
        given = batch
        if refill is not None:
            batch = _refilled(module, given, refill, gapped, batch_rows)
        z_mean, z_log_var = module.encode(batch)
        squared_error = nll = kl = feature_squared_error = feature_nll = None
        for eps in noise:
            x_mean, x_log_var = module.decode(module.reparameterize(z_mean, z_log_var, eps))
            terms = neg_elbo_terms(batch, VAEOutput(z_mean, z_log_var, x_mean, x_log_var), observed)
            kl = terms.kl
            squared_error = _accumulate(squared_error, terms.squared_error.sum(dim=1))
            nll = _accumulate(nll, terms.reconstruction_nll)
            if per_feature:
                feature_squared_error = _accumulate(feature_squared_error, terms.squared_error)
                feature_nll = _accumulate(feature_nll, 0.5 * terms.squared_error * torch.exp(-x_log_var))
        n_observed = batch.shape[1] if observed is None else observed.sum(dim=1).clamp(min=1)
        # Scaled from the observed values to all of them, so rows with gaps compare with full rows.
        coverage = batch.shape[1] / n_observed
        batch_parts = {
            "error": squared_error / (n_observed * len(noise)),
            "nll": nll * coverage / len(noise),
            "kl": kl,
        }
        if observed is not None:
            batch_parts["nll"] = _normalizer_over_all_features(
                batch_parts["nll"], nll / len(noise), observed, coverage, x_log_var
            )
        if per_feature:
            per_row = torch.as_tensor(n_observed * len(noise), dtype=dtype, device=device).reshape(-1, 1)
            scale = torch.as_tensor(coverage / len(noise), dtype=dtype, device=device).reshape(-1, 1)
            batch_parts["feature_squared_error"] = feature_squared_error / per_row
            batch_parts["feature_nll"] = feature_nll * scale
            batch_parts["feature_kl"] = _kl_attribution(module, given, refill)
        return {name: part[:n_rows] for name, part in batch_parts.items()}  # the rest is padding

    starts = range(0, len(x), batch_rows)
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(workers, len(starts))) as pool:
            batches = list(pool.map(score_batch, starts))
    else:
        batches = [score_batch(start) for start in starts]
    # One copy to the host at the end: on CUDA nothing waits for the device between batches.
    joined = {
        name: torch.cat([batch[name] for batch in batches]).cpu().numpy().astype(np.float64)
        if name in batches[0]
        else None
        for name in _PARTS
    }
    _score_overflow_as_most_anomalous(joined, x, batch_rows)
    return SampleScores(
        reconstruction_error=joined["error"],
        reconstruction_nll=joined["nll"],
        kl=joined["kl"],
        feature_squared_error=joined["feature_squared_error"],
        feature_nll=joined["feature_nll"],
        feature_kl=joined["feature_kl"],
    )


@contextmanager
def fitted_scorer(
    module: GaussianVAE,
    early_module: GaussianVAE | None,
    early_share: Mapping[str, float] | None,
    *,
    latent_noise: np.ndarray | torch.Tensor | None,
    device: str,
    n_threads: int | Literal["auto"],
    refill_gaps: bool,
) -> Iterator[Callable[..., SampleScores]]:
    """``score_rows`` with a fitted module on the scoring device, its workers and torch's threads.

    Parameters
    ----------
    module : GaussianVAE
        The fitted module (kept on the CPU; copied to another device once per device).
    early_module : GaussianVAE or None
        An early checkpoint of its weights, scored beside it and mixed in by ``early_share`` (see
        :func:`sample_scores.mixed_scores`); None scores ``module`` alone.
    early_share : mapping of {"elbo", "reconstruction"} to float in [0, 1), or None
        The early weights' share of each score kind.
    latent_noise : ndarray or Tensor of shape (n_draws, latent_dim), or None
        The fixed latent draws of Monte Carlo scoring (see :func:`score_rows`).
    device : str
        The scoring device, as ``devices.resolve_device`` takes it.
    n_threads : int or "auto"
        torch's threads and the scoring workers on the CPU (see ``cpus.choose_threads``).
    refill_gaps : bool
        Score rows with gaps refilled from the model's reconstruction (see :func:`score_rows`).

    Yields
    ------
    callable
        Takes ``score_rows``' rows and ``mask``; returns the ``SampleScores``. torch's threads are
        set while the block runs.
    """
    resolved = resolve_device(device)
    work = scoring_batch_rows(module.n_features, resolved) * module.multiply_adds_per_row()
    workers = scoring_workers(n_threads, work) if resolved.type == "cpu" else 1

    def bound(each: GaussianVAE) -> Callable[..., SampleScores]:
        on_device = each if resolved.type == "cpu" else device_copy(each, resolved)
        return functools.partial(
            score_rows, on_device, latent_noise=latent_noise, workers=workers, refill_gaps=refill_gaps
        )

    final = bound(module)
    early = None if early_module is None or early_share is None else bound(early_module)

    def mixed(*args: Any, **kwargs: Any) -> SampleScores:
        return mixed_scores(final(*args, **kwargs), early(*args, **kwargs), early_share)

    with torch_threads(choose_threads(n_threads, work)):
        yield final if early is None else mixed


def _normalizer_over_all_features(
    scaled: torch.Tensor,
    nll: torch.Tensor,
    observed: torch.Tensor,
    coverage: torch.Tensor,
    x_log_var: torch.Tensor,
) -> torch.Tensor:
    """The reconstruction term of rows with gaps: its data part scaled from the observed features to
    all of them, and the normalizer of every feature, as a complete row has it.

    ``scaled`` is the whole term scaled (rows without a gap keep it, to the bit); scaling the
    normalizer, a constant of each feature, would move a row's score by which features are missing,
    and ``explain`` could not account for it.
    """
    log_normalizer = gaussian_log_normalizer(x_log_var.to(nll.dtype))
    data_part = nll - observed.to(nll.dtype) @ log_normalizer
    complete = coverage == 1
    return torch.where(complete, scaled, data_part * coverage + log_normalizer.sum())


def _kl_attribution(module: GaussianVAE, batch: torch.Tensor, refill: torch.Tensor | None) -> torch.Tensor:
    """Each input feature's part of its row's KL term above the KL of the all-zero (training-mean) row.

    Integrated gradients (Sundararajan et al., ICML 2017) along the line from 0 to the row, by the
    midpoint rule: the parts add up to KL(x) - KL(0) up to the rule's error, and a missing value
    (its placeholder is 0) gets none. With ``refill`` (the observed-value mask) every point of the
    line has its gaps refilled as the row's were, so the refill's part goes to the observed values.
    """
    total = torch.zeros_like(batch)
    with torch.enable_grad():
        for step in range(KL_ATTRIBUTION_STEPS):
            point = (batch * ((step + 0.5) / KL_ATTRIBUTION_STEPS)).requires_grad_(True)
            filled = point if refill is None else module.fill_gaps(point, refill)
            kl = kl_divergence(*module.encode(filled)).sum()
            total += torch.autograd.grad(kl, point)[0]
    return batch * total / KL_ATTRIBUTION_STEPS


def _score_overflow_as_most_anomalous(
    parts: dict[str, np.ndarray | None], x: RowSource, batch_rows: int
) -> None:
    """Give rows whose terms overflowed float32 (NaN or inf) an infinite score in every term.

    Only a value far beyond anything seen in training overflows; such a row is the most anomalous
    there is, never NaN and never normal. Its feature parts become the squared standardized values
    (read again from ``x``, a batch at a time), which point at the value that overflowed.
    """
    overflowed = ~(np.isfinite(parts["error"]) & np.isfinite(parts["nll"]) & np.isfinite(parts["kl"]))
    if not overflowed.any():
        return
    for name in ("error", "nll", "kl"):
        parts[name][overflowed] = np.inf
    if parts["feature_nll"] is None:
        return
    for start in np.unique(np.flatnonzero(overflowed) // batch_rows * batch_rows):
        rows = np.flatnonzero(overflowed[start : start + batch_rows])
        with np.errstate(over="ignore"):
            squares = np.square(np.asarray(x[start : start + batch_rows])[rows].astype(np.float64))
        for name in _FEATURE_PARTS:
            parts[name][start + rows] = 0.0 if name == "feature_kl" else squares


def _accumulate(total: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    return part if total is None else total + part


def _refilled(
    module: GaussianVAE, batch: torch.Tensor, observed: torch.Tensor, gapped: torch.Tensor, batch_rows: int
) -> torch.Tensor:
    """``module.fill_gaps`` of a batch, with the reconstruction run on its rows with a gap (``gapped``,
    their positions) alone.

    On the CPU those rows are padded as a batch is (``fixed_shape``), so each gets the values a pass
    over the whole batch gives it, at the cost of the rows with gaps; on CUDA, where every batch has
    one shape, the whole batch is passed.
    """
    if batch.device.type == "cuda" or len(gapped) == len(batch):
        return module.fill_gaps(batch, observed)
    rows = fixed_shape(batch[gapped], batch_rows)
    filled = module.fill_gaps(rows, fixed_shape(observed[gapped], batch_rows))[: len(gapped)]
    return batch.index_copy(0, gapped, filled)


def contribution_shares(contributions: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Each column's share of its row's total; a row with total 0 gets equal shares, or all zeros where
    ``observed`` (one bool per row) says nothing in it was observed. In a row with infinite
    contributions (a value beyond what the model can represent) the infinite columns share it equally."""
    totals = contributions.sum(axis=1, keepdims=True)
    shares = np.full_like(contributions, 1.0 / contributions.shape[1])
    if observed is not None:
        shares[~observed] = 0.0
    np.divide(contributions, totals, out=shares, where=(totals > 0) & np.isfinite(totals))
    infinite = np.isinf(contributions)
    overflowed = infinite.any(axis=1)
    shares[overflowed] = infinite[overflowed] / infinite[overflowed].sum(axis=1, keepdims=True)
    return shares
