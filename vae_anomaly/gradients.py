"""The negative ELBO's gradients in closed form: a training step on the CPU without autograd.

On a CPU thread, recording and walking autograd's graph (a node per operation) costs the small default
model about a sixth of its forward and backward pass. Here the forward pass runs without recording a
graph and the chain rule is applied by hand, with torch's own derivative formulas
(``tools/autograd/derivatives.yaml``) summed in the order autograd's engine sums them, so the gradients
are bit-identical to those of ``loss.backward()`` (``tests/test_gradients.py`` holds them to that).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vae_anomaly.model import (
    ENCODER_LOG_VARIANCE_RANGE,
    MIN_DECODER_VARIANCE,
    GaussianVAE,
    NegELBOTerms,
    Trace,
    VAEOutput,
    neg_elbo_terms,
)


def _linear_backward(
    layer: nn.Linear, trace: Trace, grad_output: torch.Tensor, input_grad: bool = True
) -> torch.Tensor | None:
    """Set ``layer``'s weight and bias gradients; return its input's gradient (None if not wanted)."""
    layer_input = trace[layer][0]
    layer.weight.grad = grad_output.t().mm(layer_input)
    layer.bias.grad = grad_output.sum(0)
    return grad_output.mm(layer.weight) if input_grad else None


def _mlp_backward(
    mlp: nn.Sequential, trace: Trace, grad_output: torch.Tensor, input_grad: bool = True
) -> torch.Tensor | None:
    """Backward through ``mlp``'s linear-SiLU pairs, last first; return its input's gradient."""
    layers = [layer for layer in mlp if isinstance(layer, nn.Linear)]
    grad: torch.Tensor | None = grad_output
    for position in reversed(range(len(layers))):
        layer = layers[position]
        grad = torch.ops.aten.silu_backward(grad, trace[layer][1])
        grad = _linear_backward(layer, trace, grad, input_grad or position > 0)
    return grad


def _reconstruction_backward(
    x: torch.Tensor, output: VAEOutput, terms: NegELBOTerms, mask: torch.Tensor | None, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the reconstruction terms (weighted by ``grad``) in the decoder's mean and log-variance."""
    precision = torch.exp(-output.x_log_var)
    grad_squared_error = torch.outer(grad, 0.5 * precision)
    if mask is None:
        grad_log_normalizer = grad.sum().expand_as(output.x_log_var) * 0.5
    else:
        grad_squared_error = grad_squared_error * mask
        grad_log_normalizer = mask.t().mv(grad) * 0.5
    grad_x_mean = -(grad_squared_error * (2.0 * (x - output.x_mean)))
    grad_precision_part = -((terms.squared_error.t().mv(grad) * 0.5) * precision)
    return grad_x_mean, grad_precision_part + grad_log_normalizer


def _kl_backward(
    z_mean: torch.Tensor, z_log_var: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the KL terms (weighted by ``grad``) in the posterior mean and log-variance."""
    grad = (grad * 0.5).unsqueeze(1).expand_as(z_mean)
    return grad * (2.0 * z_mean), -grad + grad * torch.exp(z_log_var)


def _variance_floor_backward(raw_log_var: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Gradient through the decoder's smooth floor, log_var = logaddexp(raw, log MIN_DECODER_VARIANCE)."""
    floor = torch.full_like(raw_log_var, math.log(MIN_DECODER_VARIANCE))
    return grad / (1 + torch.exp(floor - raw_log_var))


def neg_elbo_gradients(
    module: GaussianVAE,
    x: torch.Tensor,
    noise: torch.Tensor,
    beta: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Set every parameter's ``.grad`` to the gradient of a minibatch's mean negative ELBO.

    The loss is ``mean(reconstruction_nll) + beta * mean(kl)`` over the rows of ``x`` (see
    :func:`vae_anomaly.model.neg_elbo_terms`), with z drawn from ``noise`` by the reparameterization
    trick; the gradients equal, bit for bit, those ``loss.backward()`` leaves on a float32 model.

    Parameters
    ----------
    module : GaussianVAE
        The model; its parameters' ``.grad`` are replaced.
    x : Tensor of shape (n_rows, n_features), float32
        The minibatch.
    noise : Tensor of shape (n_rows, latent_dim)
        Standard-normal draws for the reparameterization.
    beta : float
        Weight of the KL term.
    mask : Tensor of shape (n_rows, n_features) or None
        1 where a value was observed, 0 where it is missing; None: all observed.

    Returns
    -------
    Tensor of shape (3,)
        The minibatch's loss, mean reconstruction term and mean KL term.
    """
    with torch.no_grad():
        trace: Trace = {}
        output = module(x, noise, trace)
        terms = neg_elbo_terms(x, output, mask)
        reconstruction, kl = terms.reconstruction_nll.mean(), terms.kl.mean()
        loss = reconstruction + beta * kl
        # Each row's share of the two means, in float32 as autograd's MeanBackward computes it.
        n_rows = len(x)
        grad_loss = torch.ones_like(loss)
        grad_kl = (grad_loss * beta).expand(n_rows) / n_rows
        # The KL's operations were recorded last, so autograd's engine runs them first: where a tensor
        # gets several gradients (the posterior's), the KL's come first in the sum.
        grad_z_mean, grad_z_log_var = _kl_backward(output.z_mean, output.z_log_var, grad_kl)
        grad_x_mean, grad_x_log_var = _reconstruction_backward(
            x, output, terms, mask, grad_loss.expand(n_rows) / n_rows
        )
        module.x_log_var_raw.grad = _variance_floor_backward(module.x_log_var_raw, grad_x_log_var)
        grad_z = _mlp_backward(module.decoder, trace, _linear_backward(module.to_x_mean, trace, grad_x_mean))
        # z = mean + exp(0.5 * log_var) * noise, then the clamp of the encoder's log-variance.
        grad_z_mean = grad_z_mean + grad_z
        grad_z_log_var = grad_z_log_var + ((grad_z * noise) * torch.exp(0.5 * output.z_log_var)) * 0.5
        unclamped_log_var = trace[module.to_z_log_var][1]
        low, high = ENCODER_LOG_VARIANCE_RANGE
        inside = (unclamped_log_var >= low).logical_and_(unclamped_log_var <= high)
        grad_z_log_var = torch.where(inside, grad_z_log_var, torch.zeros((), dtype=grad_z_log_var.dtype))
        grad_hidden = _linear_backward(module.to_z_mean, trace, grad_z_mean) + _linear_backward(
            module.to_z_log_var, trace, grad_z_log_var
        )
        _mlp_backward(module.encoder, trace, grad_hidden, input_grad=False)
        return torch.stack([loss, reconstruction, kl])
