"""The variational autoencoder: Gaussian encoder q(z|x), Gaussian decoder p(x|z) and the negative ELBO.

Everything scikit-learn shaped (validation, scaling, thresholds) lives in the estimators; this module only
knows tensors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

# The bounds of the variances, one definition for this module and its numpy scoring pass.
from vae_anomaly.numpy_vae import ENCODER_LOG_VARIANCE_RANGE, LOG_2PI, MIN_DECODER_VARIANCE


class VAEOutput(NamedTuple):
    """What one forward pass produces: the posterior parameters and the decoder distribution.

    ``x_log_var`` is one log-variance per feature, shape ``(n_features,)``, broadcast over the rows.
    """

    z_mean: torch.Tensor
    z_log_var: torch.Tensor
    x_mean: torch.Tensor
    x_log_var: torch.Tensor


class NegELBOTerms(NamedTuple):
    """Per-sample terms of the negative ELBO, and the squared errors behind the reconstruction term.

    Attributes
    ----------
    reconstruction_nll : Tensor of shape (n_samples,)
        Reconstruction term -log p(x|z), summed over the observed features.
    kl : Tensor of shape (n_samples,)
        KL(q(z|x) || N(0, I)).
    squared_error : Tensor of shape (n_samples, n_features)
        (x - x_mean)^2 per feature, 0 where a value is missing.
    """

    reconstruction_nll: torch.Tensor
    kl: torch.Tensor
    squared_error: torch.Tensor


# A forward pass's record for the closed-form backward (vae_anomaly.gradients): each linear layer's input
# and output.
Trace = dict[nn.Linear, tuple[torch.Tensor, torch.Tensor]]


def _linear(layer: nn.Linear, x: torch.Tensor, trace: Trace | None) -> torch.Tensor:
    """``layer(x)``, recorded in ``trace`` if one is given. The functional form is the same operation
    without the module call's hook machinery (a few microseconds a layer)."""
    output = F.linear(x, layer.weight, layer.bias)
    if trace is not None:
        trace[layer] = (x, output)
    return output


def _run_mlp(mlp: nn.Sequential, x: torch.Tensor, trace: Trace | None) -> torch.Tensor:
    """``mlp(x)``, its linear layers recorded in ``trace`` if one is given."""
    for layer in mlp:
        x = _linear(layer, x, trace) if isinstance(layer, nn.Linear) else layer(x)
    return x


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), nn.SiLU()]
    return nn.Sequential(*layers)


class GaussianVAE(nn.Module):
    """A VAE with an MLP encoder and decoder and a Gaussian likelihood with learned per-feature variance.

    Parameters
    ----------
    n_features : int
        Width of the input.
    hidden_dims : sequence of int
        Hidden layer widths of the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension of the latent code z.
    generator : torch.Generator
        Source of the initial weights; torch's global random state is left untouched.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        hidden = list(hidden_dims)
        with torch.random.fork_rng(devices=[]):  # layer constructors draw from the global RNG
            self.encoder = _mlp([n_features, *hidden])
            encoder_width = hidden[-1] if hidden else n_features
            self.to_z_mean = nn.Linear(encoder_width, latent_dim)
            self.to_z_log_var = nn.Linear(encoder_width, latent_dim)
            self.decoder = _mlp([latent_dim, *reversed(hidden)])
            self.to_x_mean = nn.Linear(hidden[0] if hidden else latent_dim, n_features)
        self.x_log_var_raw = nn.Parameter(torch.zeros(n_features))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-initialise every weight from ``generator`` (PyTorch's default Linear scheme)."""
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        nn.init.zeros_(self.x_log_var_raw)

    @property
    def n_features(self) -> int:
        """Width of the input (and of the reconstruction)."""
        return self.x_log_var_raw.numel()

    def multiply_adds_per_row(self) -> int:
        """Multiply-adds of one forward pass for one row: the weights of its linear layers."""
        return sum(m.in_features * m.out_features for m in self.modules() if isinstance(m, nn.Linear))

    def encode(self, x: torch.Tensor, trace: Trace | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the diagonal Gaussian posterior q(z|x)."""
        hidden = _run_mlp(self.encoder, x, trace)
        z_log_var = _linear(self.to_z_log_var, hidden, trace).clamp(*ENCODER_LOG_VARIANCE_RANGE)
        return _linear(self.to_z_mean, hidden, trace), z_log_var

    @staticmethod
    def reparameterize(z_mean: torch.Tensor, z_log_var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw z = mu + sigma * eps, differentiable in mu and sigma; ``noise`` is eps ~ N(0, I)."""
        return z_mean + torch.exp(0.5 * z_log_var) * noise

    def decode(self, z: torch.Tensor, trace: Trace | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the Gaussian likelihood p(x|z)."""
        x_mean = _linear(self.to_x_mean, _run_mlp(self.decoder, z, trace), trace)
        floor = torch.full_like(self.x_log_var_raw, math.log(MIN_DECODER_VARIANCE))
        return x_mean, torch.logaddexp(self.x_log_var_raw, floor)  # smooth max: never below the floor

    def forward(self, x: torch.Tensor, noise: torch.Tensor, trace: Trace | None = None) -> VAEOutput:
        """Encode, sample z with the given standard-normal ``noise`` (zeros: posterior mean), decode.

        A ``trace`` dict, if given, receives each linear layer's input and output.
        """
        z_mean, z_log_var = self.encode(x, trace)
        x_mean, x_log_var = self.decode(self.reparameterize(z_mean, z_log_var, noise), trace)
        return VAEOutput(z_mean, z_log_var, x_mean, x_log_var)

    def fill_gaps(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``x`` with its missing values (0 in ``observed``) replaced by its reconstruction at the
        posterior mean: one step of Donut's imputation; more steps changed nothing measurable
        (benchmarks/RESULTS.md, issue 29)."""
        return torch.where(observed > 0, x, self.decode(self.encode(x)[0])[0])


def neg_elbo_terms(x: torch.Tensor, output: VAEOutput, mask: torch.Tensor | None = None) -> NegELBOTerms:
    """Per-sample terms of the negative ELBO, computed in float32 or wider whatever the autocast dtype.

    The reconstruction term is the Gaussian negative log-likelihood summed over features,
    sum_j 0.5 * (log(2 pi) + log var_j + (x_j - mean_j)^2 / var_j); the KL divergence
    KL(q(z|x) || N(0, I)) is in closed form. Where ``mask`` is 0 (a missing value) the reconstruction
    term is skipped, as in Donut's modified ELBO.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    .. [2] H. Xu et al., "Unsupervised Anomaly Detection via Variational Auto-Encoder for Seasonal KPIs
       in Web Applications" (Donut), WWW 2018.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    x_mean, x_log_var = output.x_mean.to(dtype), output.x_log_var.to(dtype)
    z_mean, z_log_var = output.z_mean.to(dtype), output.z_log_var.to(dtype)
    squared_error = x.to(dtype) - x_mean
    # In place where no gradient is taken (scoring): a second array the size of x costs page faults.
    squared_error = squared_error.square() if torch.is_grad_enabled() else squared_error.square_()
    log_normalizer = gaussian_log_normalizer(x_log_var)
    if mask is None:
        normalizer = log_normalizer.sum()
    else:
        squared_error = squared_error * mask
        normalizer = mask.to(dtype) @ log_normalizer
    # The variance is per feature, so the weighted sum over features is one matrix-vector product.
    reconstruction_nll = squared_error @ (0.5 * torch.exp(-x_log_var)) + normalizer
    return NegELBOTerms(reconstruction_nll, kl_divergence(z_mean, z_log_var), squared_error)


def hide_values(
    batch: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Missing-data injection (Donut): treat the values where ``keep`` is False as missing.

    They enter the encoder at the column mean (0, as a real gap does) and the reconstruction term
    skips them, so the model learns to code a row from what was observed: a row with a gap at scoring
    is then scored by its observed values, not flagged for the gap.

    Parameters
    ----------
    batch : Tensor of shape (n_rows, n_features)
        Standardized rows.
    mask : Tensor of shape (n_rows, n_features) or None
        Their observed-value mask (None: all observed).
    keep : Tensor of shape (n_rows, n_features), bool
        False for the values to hide.

    Returns
    -------
    batch, mask : Tensor
        The rows with the hidden values at 0, and the mask with them marked missing.
    """
    hidden_mask = keep.to(batch.dtype) if mask is None else mask * keep
    return batch * hidden_mask, hidden_mask


def gaussian_log_normalizer(x_log_var: torch.Tensor) -> torch.Tensor:
    """Each feature's constant part of the reconstruction term, 0.5 * (log(2 pi) + log var_j).

    Parameters
    ----------
    x_log_var : Tensor of shape (n_features,)
        The decoder's log-variance.

    Returns
    -------
    Tensor of shape (n_features,)
    """
    return 0.5 * (x_log_var + LOG_2PI)


def kl_divergence(z_mean: torch.Tensor, z_log_var: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) of each row's diagonal Gaussian posterior, in closed form."""
    return 0.5 * (z_mean.square() + torch.exp(z_log_var) - 1.0 - z_log_var).sum(dim=1)
