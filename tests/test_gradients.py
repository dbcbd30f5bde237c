"""The closed-form gradients of the CPU training step are autograd's, bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch

from vae_anomaly.epochs import GRADIENT_CLIP_NORM, autograd_step, closed_form_step
from vae_anomaly.gradients import neg_elbo_gradients
from vae_anomaly.model import GaussianVAE, neg_elbo_terms
from vae_anomaly.optimizers import EagerAdamW, set_learning_rate

# (features, hidden widths, latent width, rows, beta, share of values missing, scale of the
# log-variance head's bias: 300 pushes most posterior log-variances past their clamp)
CASES = [
    (21, (64, 32), 8, 512, 1.0, 0.0, 1.0),
    (21, (64, 32), 8, 512, 0.3, 0.0, 1.0),
    (7, (), 3, 100, 0.7, 0.3, 1.0),
    (50, (16,), 4, 33, 1.0, 0.3, 1.0),
    (21, (64, 32), 8, 512, 1.0, 0.0, 300.0),
    (1, (8,), 2, 5, 0.1, 0.0, 1.0),
]


def _problem(n_features, hidden, latent, n_rows, missing, bias_scale, seed=1):
    generator = torch.Generator().manual_seed(seed)
    module = GaussianVAE(n_features, hidden, latent, generator)
    with torch.no_grad():
        module.x_log_var_raw.normal_(generator=generator)
        module.to_z_log_var.bias.mul_(bias_scale)
    x = 2 * torch.randn(n_rows, n_features, generator=generator)
    noise = torch.randn(n_rows, latent, generator=generator)
    mask = None
    if missing:
        mask = (torch.rand(n_rows, n_features, generator=generator) >= missing).float()
        x = x * mask
    return module, x, noise, mask


def _autograd_gradients(module, x, noise, beta, mask):
    terms = neg_elbo_terms(x, module(x, noise), mask)
    reconstruction, kl = terms.reconstruction_nll.mean(), terms.kl.mean()
    loss = reconstruction + beta * kl
    module.zero_grad(set_to_none=True)
    loss.backward()
    return torch.stack([loss, reconstruction, kl]).detach()


@pytest.mark.parametrize("n_features, hidden, latent, n_rows, beta, missing, bias_scale", CASES)
def test_closed_form_gradients_are_autograds_bit_for_bit(
    n_features, hidden, latent, n_rows, beta, missing, bias_scale
):
    module, x, noise, mask = _problem(n_features, hidden, latent, n_rows, missing, bias_scale)
    expected_means = _autograd_gradients(module, x, noise, beta, mask)
    expected = {name: parameter.grad.clone() for name, parameter in module.named_parameters()}
    module.zero_grad(set_to_none=True)

    means = neg_elbo_gradients(module, x, noise, beta, mask)

    assert torch.equal(means, expected_means)
    for name, parameter in module.named_parameters():
        assert torch.equal(parameter.grad, expected[name]), name


def test_the_clamp_case_clamps_posterior_log_variances():
    module, x, _, _ = _problem(21, (64, 32), 8, 512, 0.0, 300.0)
    with torch.no_grad():
        _, z_log_var = module.encode(x)
    assert (z_log_var == 8.0).any() and (z_log_var == -12.0).any()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach"])
@pytest.mark.parametrize("input_scale", [0.1, 100.0], ids=["unclipped", "clipped"])
def test_closed_form_steps_with_eager_adamw_train_the_weights_of_autograd_and_torch_adamw(input_scale, fused):
    module, x, noise, mask = _problem(12, (16, 8), 4, 64, 0.2, 1.0)
    x = x * input_scale
    neg_elbo_gradients(module, x, noise, 1.0, mask)
    norm = torch.nn.utils.get_total_norm([parameter.grad for parameter in module.parameters()])
    assert (float(norm) > GRADIENT_CLIP_NORM) == (input_scale > 1)
    module.zero_grad(set_to_none=True)
    twin = copy.deepcopy(module)
    parameters = list(module.parameters())
    optimizer = EagerAdamW(parameters, 1e-2, weight_decay=1e-3, fused=fused)
    twin_optimizer = torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=1e-3, fused=fused)
    autocast = torch.autocast("cpu", enabled=False)

    for step in range(5):
        means = closed_form_step(module, optimizer, parameters, x, mask, noise, 0.5)
        expected = autograd_step(twin, twin_optimizer, x, mask, noise, 0.5, autocast)
        assert torch.equal(means, expected)
        for each in (optimizer, twin_optimizer):
            set_learning_rate(each, 1e-2 / (step + 2))  # as the schedule sets it between epochs
    for (name, parameter), twin_parameter in zip(module.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(parameter, twin_parameter), name
