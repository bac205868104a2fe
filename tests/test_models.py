"""Every objective with every architecture: builds, right shapes, finite loss that falls,
round-trips through its checkpoint; each term equals its formula."""

from __future__ import annotations

import pytest
import torch
from helpers import PROJECT_ROOT
from torch.autograd.functional import jacobian

from aelab.core.params import VARIANT_CONFIGS, load_params
from aelab.models import INPUT_DIM, build_group, build_model, layers, registry, select
from aelab.models.architectures import ClampedOutput
from aelab.models.checkpoints import load_checkpoint, save_checkpoint
from aelab.models.variants import kl_bernoulli
from aelab.training.numerics import cpu_numerics

TINY = dict(seeds=1, max_epochs=1, lr_patience=1, patience=2, batch_size=8, lr=1e-2, device="cpu",
            arch="mlp", hidden_dims=[24, 16], channels=[4, 8], kernel_size=3, latent_dim=4,
            loss="mse")  # fmt: skip
NETWORKS = sorted(set(VARIANT_CONFIGS) - {"pca"})
# Every network objective with every architecture it accepts (contractive: dense only).
OBJECTIVE_ARCH = [(kind, arch) for kind in NETWORKS for arch in ("mlp", "conv")
                  if (kind, arch) != ("contractive", "conv")]  # fmt: skip
EXTRA = {
    "dae": dict(noise="gaussian", noise_level=0.3),
    "sparse": dict(sparsity_target=0.05, sparsity_weight=0.1),
    "contractive": dict(contractive_weight=0.01),
    "vae": dict(beta=1.0),
}


def config(kind: str, **changes):
    fields = VARIANT_CONFIGS[kind].model_fields
    values = {k: v for k, v in TINY.items() if k in fields} | EXTRA.get(kind, {}) | changes
    return VARIANT_CONFIGS[kind](kind=kind, **values)


def digits_like(n: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 784) in [0, 1], mostly dark like MNIST."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, INPUT_DIM, generator=generator) - 0.7).clamp(min=0) / 0.3


def test_registry_and_params_know_the_same_kinds():
    assert set(registry()) == set(VARIANT_CONFIGS)


@pytest.mark.parametrize(("kind", "arch"), [*OBJECTIVE_ARCH, ("pca", None)])
def test_variant_builds_with_the_right_shapes_and_a_finite_loss(kind, arch):
    torch.manual_seed(0)
    model = build_model(config(kind, **({"arch": arch} if arch else {})))
    x = digits_like()
    if model.closed_form:
        model.fit(x)
    output = model(x[None])  # one member's batch
    assert output.reconstruction.shape == (1, 32, INPUT_DIM)
    assert output.latent.shape == (1, 32, 4)
    assert model.encode(x).shape == (32, 4)
    assert model.reconstruct(x).shape == (32, INPUT_DIM)
    assert model.anomaly_score(x).shape == (32,)
    assert "reconstruction" in output.losses
    assert all(value.shape == (1,) and torch.isfinite(value) for value in output.losses.values())


@pytest.mark.parametrize(("kind", "arch"), OBJECTIVE_ARCH)
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_loss_falls_on_a_tiny_batch(kind, arch, loss):
    """L1 is held to learning patterns instead (the next test): on random pixels its best
    guess is the per-pixel median, black, where its clamped output starts."""
    torch.manual_seed(0)
    model = build_model(config(kind, arch=arch, loss=loss))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = digits_like(16)
    losses = []
    for _ in range(30):
        torch.manual_seed(1)  # the same noise every step: the loss itself must fall
        output = model(x[None])
        optimizer.zero_grad()
        output.loss.sum().backward()
        optimizer.step()
        losses.append(output.loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize(("kind", "arch"), OBJECTIVE_ARCH)
def test_a_trained_step_round_trips_through_its_checkpoint(kind, arch, tmp_path):
    torch.manual_seed(0)
    model = build_model(config(kind, arch=arch))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(digits_like()[None]).loss.sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / kind, kind, model.eval(), [{"epoch": 1, "train_loss": 0.1}])
    loaded = load_checkpoint(tmp_path / kind)
    x = digits_like(4, seed=2)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))
        assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))


@pytest.mark.parametrize(("kernel_size", "channels"), [(3, [4]), (5, [4, 8]), (7, [2, 4, 8])])
def test_conv_layers_halve_the_side_and_the_decoder_mirrors_them(kernel_size, channels):
    model = build_model(config("ae", arch="conv", kernel_size=kernel_size, channels=channels))
    sides = [28, 14, 7, 4][1 : len(channels) + 1]
    encoder = [f"{c}×{s}×{s}" for c, s in zip(channels, sides, strict=True)]
    labels = [label for _, _, label in model.architecture()]
    assert labels == ["784", *encoder, "4", *reversed(encoder), "784"]


def test_pca_reconstructs_data_of_its_rank_exactly():
    model = build_model(config("pca")).double()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(64, 4, generator=generator, dtype=torch.float64) @ torch.rand(
        4, INPUT_DIM, generator=generator, dtype=torch.float64
    )
    model.fit(x)
    assert model(x[None]).losses["reconstruction"] < 1e-20


def test_pca_components_are_orthonormal():
    model = build_model(config("pca"))
    model.fit(digits_like(64))
    gram = model.components @ model.components.T
    torch.testing.assert_close(gram, torch.eye(4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("hidden_dims", [[24], [24, 16], [32, 16, 8]])
def test_contractive_penalty_is_the_true_jacobian_norm(hidden_dims):
    torch.manual_seed(0)
    model = build_model(config("contractive", hidden_dims=hidden_dims)).double()
    x = digits_like(5).double()
    closed_form = model.jacobian_norm_sq(model.encoder(x[None])[1])[0]
    for i in range(len(x)):
        brute = jacobian(lambda row: model.encode(row.unsqueeze(0)).squeeze(0), x[i])  # (4, 784)
        torch.testing.assert_close(closed_form[i], brute.pow(2).sum())
    weight = model.config.contractive_weight
    torch.testing.assert_close(model(x[None]).losses["contractive"][0], weight * closed_form.mean())


def test_sparse_penalty_is_the_kl_formula():
    torch.manual_seed(0)
    model = build_model(config("sparse"))
    x = digits_like()
    rho, weight = 0.05, 0.1
    w = [(layer.weight[0], layer.bias[0]) for layer in model.encoder.hidden_layers]
    rho_hat = torch.sigmoid(torch.sigmoid(x @ w[0][0] + w[0][1]) @ w[1][0] + w[1][1])
    rho_hat = rho_hat.mean(dim=0)
    expected = sum(
        rho * torch.log(rho / r) + (1 - rho) * torch.log((1 - rho) / (1 - r)) for r in rho_hat
    )
    torch.testing.assert_close(model(x[None]).losses["sparsity"][0], weight * expected)
    assert kl_bernoulli(0.3, torch.tensor(0.3)) == 0


def test_vae_kl_is_the_gaussian_formula_and_encode_is_the_mean():
    torch.manual_seed(0)
    model = build_model(config("vae", beta=2.0)).eval()
    x = digits_like()
    code = model.encoder(x[None])[0][0]
    mu, log_var = code[:, :4], code[:, 4:]
    sigma2 = log_var.exp()
    # KL(N(mu, sigma^2) || N(0, 1)) per dimension: (sigma^2 + mu^2 - 1 - log sigma^2) / 2
    kl = ((sigma2 + mu**2 - 1 - log_var) / 2).sum(dim=1).mean()
    torch.testing.assert_close(model(x[None]).losses["kl"][0], 2.0 * kl / INPUT_DIM)
    torch.testing.assert_close(model.encode(x), mu)


def test_vae_samples_while_training_only():
    torch.manual_seed(0)
    model = build_model(config("vae"))
    x = digits_like(4)
    model.train()
    assert not torch.equal(model(x[None]).latent, model(x[None]).latent)
    model.eval()
    torch.testing.assert_close(model(x[None]).latent[0], model.encode(x))


@pytest.mark.parametrize(
    ("noise", "level"), [("gaussian", 0.1), ("uniform", 0.2), ("masking", 0.3)]
)
def test_noise_has_the_right_statistics_and_is_off_in_eval(noise, level):
    torch.manual_seed(0)
    model = build_model(config("dae", noise=noise, noise_level=level))
    x = torch.full((1, 2000, INPUT_DIM), 0.5)
    model.train()
    delta = model.corrupt(x) - x
    if noise == "gaussian":  # N(0, sigma^2); at 0.5 +- 5 sigma nothing is clamped
        assert abs(delta.mean()) < 1e-3 and abs(delta.std() - level) < 1e-3
    elif noise == "uniform":  # U(-a, a): variance a^2 / 3
        assert delta.abs().max() <= level
        assert abs(delta.var() - level**2 / 3) < 1e-4
    else:  # each pixel zeroed with probability p
        assert set(delta.unique().tolist()) == {-0.5, 0.0}
        assert abs((delta != 0).float().mean() - level) < 2e-3
    model.eval()
    assert torch.equal(model.corrupt(x), x)


def test_denoising_loss_compares_with_the_clean_input():
    torch.manual_seed(0)
    model = build_model(config("dae", noise="masking", noise_level=0.5))
    x = digits_like(8)
    torch.manual_seed(3)
    output = model(x[None])
    torch.testing.assert_close(
        output.losses["reconstruction"][0],
        torch.nn.functional.mse_loss(output.reconstruction[0], x),
    )


def test_defaults_are_the_articles_network():
    """The committed params.yaml's `ae` is the article's network: 784 -> 128 -> 32 -> 128 ->
    784, ReLU, a sigmoid output, MSE. (lr, batch size and epochs may be tuned per variant.)"""
    ae = load_params(PROJECT_ROOT / "params.yaml").variant("ae")
    assert (ae.kind, ae.arch, ae.hidden_dims, ae.latent_dim, ae.loss) == (
        "ae", "mlp", [128], 32, "mse"
    )  # fmt: skip
    model = build_model(ae)
    linears = [m for m in model.modules() if isinstance(m, layers.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 128), (128, 32), (32, 128), (128, 784)
    ]  # fmt: skip
    assert type(model.encoder.activation) is torch.nn.ReLU
    assert [type(m) for m in model.decoder] == [
        layers.Linear, torch.nn.ReLU, layers.Linear, torch.nn.Sigmoid
    ]  # fmt: skip


@pytest.mark.parametrize(("arch", "steps"), [("mlp", 60), ("conv", 300)])
def test_l1_learns_the_strokes_not_the_black_median(arch, steps):
    """Four patterns, each pixel inked with probability 0.2: black everywhere is L1's
    first attractor (loss 0.2); the network must get past it to each pattern's strokes."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(4, INPUT_DIM, generator=generator) < 0.2).float().repeat(4, 1)
    torch.manual_seed(0)
    model = build_model(config("ae", arch=arch, loss="l1", channels=[8, 16]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        output = model(x[None])
        optimizer.zero_grad()
        output.loss.sum().backward()
        optimizer.step()
    assert output.loss.item() < 0.2 * x.mean().item()


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize(("loss", "output"), [("mse", "Sigmoid"), ("bce", "Sigmoid"),
                                              ("l1", "ClampedOutput")])  # fmt: skip
def test_the_decoder_ends_in_the_output_layer_of_its_loss(arch, loss, output):
    model = build_model(config("ae", arch=arch, loss=loss))
    last = list(model.decoder.modules())[-1]
    assert type(last).__name__ == output
    reconstruction = model.reconstruct(digits_like())
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1


def test_the_clamped_output_passes_the_gradient_where_a_sigmoid_saturates():
    """L1 drives dark pixels' logits far below 0: the gradient of a missing stroke must
    still reach the network there (a sigmoid's would be ~e^-20)."""
    logits = torch.tensor([-20.0, 0.5, 20.0], requires_grad=True)
    pixels = ClampedOutput()(logits)
    assert pixels.tolist() == [0.0, 0.5, 1.0]
    pixels.sum().backward()
    assert logits.grad.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(("kind", "arch"), OBJECTIVE_ARCH)
@cpu_numerics()  # as networks train and run: on one thread, where sums split no other way
def test_a_group_is_its_members_side_by_side(kind, arch):
    """Each member of a group starts as a lone network of its seed, and computes, in eval
    mode, exactly what that network computes on the same batch."""
    group = build_group(config(kind, arch=arch), [5, 7, 9]).eval()
    x = torch.stack([digits_like(8, seed=s) for s in (1, 2, 3)])  # (3, 8, 784)
    together = group(x)
    for member, seed in enumerate([5, 7, 9]):
        torch.manual_seed(seed)
        lone = build_model(config(kind, arch=arch)).eval()
        taken = select(group, [member])
        for (name, a), b in zip(lone.state_dict().items(), taken.state_dict().values(),
                                strict=True):  # fmt: skip
            assert torch.equal(a, b), name
        alone = lone(x[member][None])
        assert torch.equal(alone.reconstruction[0], together.reconstruction[member])
        for part, value in alone.losses.items():
            assert torch.equal(value[0], together.losses[part][member]), part


def test_a_group_draws_each_members_noise_from_its_own_stream():
    group = build_group(config("dae", noise="gaussian", noise_level=0.5), [1, 2])
    x = torch.full((2, 3, INPUT_DIM), 0.5)
    group.generators = [torch.Generator().manual_seed(s) for s in (10, 20)]
    noisy = group.corrupt(x)
    group.generators = [torch.Generator().manual_seed(s) for s in (20, 10)]
    swapped = group.corrupt(x)
    assert torch.equal(noisy[0], swapped[1]) and torch.equal(noisy[1], swapped[0])


def test_a_group_refuses_the_single_network_methods():
    group = build_group(config("ae"), [1, 2])
    with pytest.raises(ValueError, match="a group of 2 networks: select one member first"):
        group.encode(digits_like(2))
