"""Per-sample anomaly scores of a trained VAE: reconstruction error, negative ELBO and their parts."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from vae_anomaly.model import GaussianVAE, VAEOutput, neg_elbo_terms

SCORING_BATCH_ROWS = 8192


class SampleScores(NamedTuple):
    """Scores of each row; larger values are more anomalous.

    Attributes
    ----------
    reconstruction_error : ndarray of shape (n_samples,)
        Mean squared difference between a row and its reconstruction, in standardized units.
    reconstruction_nll : ndarray of shape (n_samples,)
        The ELBO's reconstruction term, -log p(x|z), summed over features.
    kl : ndarray of shape (n_samples,)
        KL(q(z|x) || N(0, I)).
    feature_contributions : ndarray of shape (n_samples, n_features) or None
        Each feature's data-dependent part of the reconstruction term, (x - mean)^2 / (2 var): the
        reconstruction term less its constant. Only computed when asked for.
    """

    reconstruction_error: np.ndarray
    reconstruction_nll: np.ndarray
    kl: np.ndarray
    feature_contributions: np.ndarray | None

    @property
    def neg_elbo(self) -> np.ndarray:
        """Negative evidence lower bound: reconstruction term plus KL divergence."""
        return self.reconstruction_nll + self.kl


@torch.no_grad()
def score_rows(
    module: GaussianVAE,
    x: np.ndarray,
    latent_noise: np.ndarray | None = None,
    per_feature: bool = False,
) -> SampleScores:
    """Score rows with a trained VAE, deterministically and independently of how rows are batched.

    Parameters
    ----------
    module : GaussianVAE
        Trained model; it is run on its own device and dtype (the estimators keep it float64 on CPU).
    x : ndarray of shape (n_samples, n_features)
        Standardized rows.
    latent_noise : ndarray of shape (n_draws, latent_dim) or None
        None scores at the posterior mean z = mu. Otherwise each row's terms are averaged over
        z = mu + sigma * eps for these fixed eps: the same draws for every row, so a row's score never
        depends on the other rows.
    per_feature : bool
        Also return each feature's contribution to the reconstruction term.

    Returns
    -------
    SampleScores
    """
    parameter = next(module.parameters())
    dtype, device = parameter.dtype, parameter.device
    latent_dim = module.to_z_mean.out_features
    noise = (
        torch.zeros(1, latent_dim, dtype=dtype, device=device)
        if latent_noise is None
        else torch.as_tensor(latent_noise, dtype=dtype, device=device)
    )
    parts: dict[str, list[np.ndarray]] = {"error": [], "nll": [], "kl": [], "features": []}
    for start in range(0, len(x), SCORING_BATCH_ROWS):
        batch = torch.as_tensor(x[start : start + SCORING_BATCH_ROWS], dtype=dtype, device=device)
        z_mean, z_log_var = module.encode(batch)
        squared_error = torch.zeros_like(batch)
        feature_nll = torch.zeros_like(batch)
        contributions = torch.zeros_like(batch)
        for eps in noise:
            x_mean, x_log_var = module.decode(module.reparameterize(z_mean, z_log_var, eps))
            terms = neg_elbo_terms(batch, VAEOutput(z_mean, z_log_var, x_mean, x_log_var))
            residual = (batch - x_mean) ** 2
            squared_error += residual
            feature_nll += terms.feature_nll
            contributions += 0.5 * residual * torch.exp(-x_log_var)
        parts["error"].append((squared_error.mean(dim=1) / len(noise)).cpu().numpy())
        parts["nll"].append((feature_nll.sum(dim=1) / len(noise)).cpu().numpy())
        parts["kl"].append(terms.kl.cpu().numpy())
        if per_feature:
            parts["features"].append((contributions / len(noise)).cpu().numpy())
    return SampleScores(
        reconstruction_error=np.concatenate(parts["error"]).astype(np.float64),
        reconstruction_nll=np.concatenate(parts["nll"]).astype(np.float64),
        kl=np.concatenate(parts["kl"]).astype(np.float64),
        feature_contributions=np.concatenate(parts["features"]).astype(np.float64) if per_feature else None,
    )
