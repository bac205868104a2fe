"""params.yaml validation: the default is accepted, every bad value is one clear line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT, method_registries, run

from aelab.analysis.samplers import SAMPLERS, Sampler
from aelab.analysis.scores import SCORES
from aelab.core.errors import AelabError
from aelab.core.params import load_params
from aelab.core.registry import Registry

DEFAULT = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def with_value(path: str, value: object) -> dict:
    """The default params with `path` (dotted) set to `value`; `...` deletes the key."""
    params = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    section = params
    for key in parents:
        section = section[key]
    if value is ...:
        del section[last]
    else:
        section[last] = value
    return params


BAD = [
    # (key path, bad value, the message it must give after "params.yaml: ")
    ("data.source", "cifar10", "data.source = 'cifar10': Input should be 'sample', 'mnist'"),
    ("data.source", 3, "data.source = 3: Input should be 'sample'"),
    ("data.sorce", "mnist", "data.sorce: unknown key; allowed keys here: source, root, mirrors"),
    ("trian", {"max_epochs": 3}, "trian: unknown key; allowed keys here: seed, data, split"),
    (
        "data.mirrors",
        "http://example.org/",
        "data.mirrors = 'http://example.org/': Input should be a valid list",
    ),
    (
        "data.mirrors",
        ["ftp://example.org/"],
        "data.mirrors = ['ftp://example.org/']: mirror 'ftp://example.org/' is not",
    ),
    ("data.root", "", "data.root = '': String should have at least 1 character"),
    ("split.normal_digits", [], "split.normal_digits = []: must list at least one digit"),
    ("split.normal_digits", [0, 0, 1], "split.normal_digits = [0, 0, 1]: digits must be distinct"),
    ("split.normal_digits", [3, 10], "split.normal_digits = [3, 10]: digit 10 is outside 0-9"),
    ("split.normal_digits", [-1], "split.normal_digits = [-1]: digit -1 is outside 0-9"),
    ("split.normal_digits", "0,1", "split.normal_digits = '0,1': Input should be a valid list"),
    ("split.normal_digits", [1.5], "split.normal_digits[0] = 1.5: Input should be a valid integer"),
    ("split.val_fraction", 0.0, "split.val_fraction = 0.0: Input should be greater than 0"),
    ("split.val_fraction", 1.0, "split.val_fraction = 1.0: Input should be less than 1"),
    ("split.test_fraction", -0.2, "split.test_fraction = -0.2: Input should be greater than 0"),
    ("split.test_fraction", "0.2", "split.test_fraction = '0.2': Input should be a valid number"),
    ("split.val_fraction", ..., "split.val_fraction: missing; add it"),
    ("seed", -1, "seed = -1: Input should be greater than or equal to 0"),
    ("seed", 1.5, "seed = 1.5: Input should be a valid integer"),
    ("seed", True, "seed = True: Input should be a valid integer"),
    ("split", ..., "split: missing; add it"),
    ("train.lr", -0.1, "train.lr = -0.1: Input should be greater than 0"),
    ("train.lr", "1e-4", "train.lr = '1e-4': Input should be a valid number (YAML reads 1e-4"),
    ("train.max_epochs", 0, "train.max_epochs = 0: Input should be greater than or equal to 1"),
    ("train.patience", 5, "train.patience = 5: must exceed lr_patience (5), or training stops"),
    ("variants.ae.lr_patience", 20, "variants.ae.patience = 15: must exceed lr_patience (20)"),
    ("train.device", "tpu", "train.device = 'tpu': Input should be 'auto', 'cpu' or 'cuda'"),
    ("variants.dae.kind", "gan", "variants.dae.kind = 'gan': unknown kind; allowed: ae, dae,"),
    ("variants.ae.kind", ..., "variants.ae.kind: missing; add it"),
    ("variants.ae.hidden_dims", [-3], "variants.ae.hidden_dims[0] = -3: Input should be greater"),
    ("variants.ae.latent_dim", 0, "variants.ae.latent_dim = 0: Input should be greater than or"),
    ("variants.ae_l1.loss", "huber", "variants.ae_l1.loss = 'huber': Input should be 'mse', 'l1'"),
    ("variants.dae.noise_level", 1.5, "variants.dae.noise_level = 1.5: Input should be less than"),
    ("variants.dae.noise", "salt", "variants.dae.noise = 'salt': Input should be 'gaussian',"),
    ("variants.sparse.sparsity_target", 1, "variants.sparse.sparsity_target = 1: Input should be"),
    ("variants.vae.beta", -1, "variants.vae.beta = -1: Input should be greater than or equal"),
    ("variants.pca.max_epochs", 3, "variants.pca.max_epochs: unknown key; allowed keys here: kind"),
    ("variants.Bad-Name", {"kind": "ae"}, "variants.Bad-Name = 'Bad-Name': a variant name is 1-40"),
    ("variants.pixels", {"kind": "ae"}, "variants.pixels = 'pixels': 'pixels' is the raw-pixel"),
    ("variants", {}, "variants = {}: Dictionary should have at least 1 item"),
    ("train.arch", "resnet", "train.arch = 'resnet': Input should be 'mlp' or 'conv'"),
    ("variants.ae.arch", "cnn", "variants.ae.arch = 'cnn': Input should be 'mlp' or 'conv'"),
    (
        "variants.contractive.arch",
        "conv",
        "variants.contractive.arch = 'conv': contractive needs arch 'mlp'",
    ),  # fmt: skip
    ("train.seeds", 0, "train.seeds = 0: Input should be greater than or equal to 1"),
    ("variants.vae.seeds", 2.5, "variants.vae.seeds = 2.5: Input should be a valid integer"),
    (
        "evaluate.bootstrap",
        5,
        "evaluate.bootstrap = 5: Input should be greater than or equal to 20",
    ),
    ("train.kernel_size", 4, "train.kernel_size = 4: Input should be 3, 5 or 7"),
    (
        "evaluate.scores",
        ["recon", "lof"],
        "evaluate.scores[1] = 'lof': unknown anomaly score; allowed: recon, knn, gmm",
    ),
    (
        "evaluate.clusterers",
        ["umap", "dbscan"],
        "evaluate.clusterers[1] = 'dbscan': unknown clusterer; allowed: kmeans, gmm, umap",
    ),
    (
        "evaluate.clusterers",
        ["umap", "umap"],
        "evaluate.clusterers = ['umap', 'umap']: entries must be distinct",
    ),
    ("evaluate.scores", [], "evaluate.scores = []: List should have at least 1 item"),
    ("evaluate.gmm.components", 0, "evaluate.gmm.components = 0: Input should be greater than"),
    ("evaluate.knn", {"k": 1, "metric": "cosine"}, "evaluate.knn.metric: unknown key; allowed"),
    ("train.channels", [32, 64, 64, 64], "train.channels = [32, 64, 64, 64]: List should have at"),
    (
        "champions.anomaly",
        "auc_gmm",
        "champions.anomaly = 'auc_gmm': not a metric of the form (roc_auc | average_precision",
    ),
    (
        "evaluate.scores",
        ["recon", "knn"],
        "champions.anomaly = 'roc_auc_gmm': gmm is not among evaluate's methods (recon, knn)",
    ),
    (
        "evaluate.clusterers",
        ["kmeans"],
        "champions.encoder = 'ari_all_umap': umap is not among evaluate's methods (kmeans)",
    ),
    (
        "generate.samplers.prior",
        ["vae", "ae"],
        "generate.samplers.prior = ['vae', 'ae']: ae (kind ae) has no prior to draw from; "
        "list variants of kind vae: ",
    ),
    (
        "generate.samplers.gmm",
        ["vea"],
        "generate.samplers.gmm = ['vea']: vea is not a variant (ae, ae_l1, ",
    ),
    (
        "generate.samplers",
        {"flow": "all"},
        "generate.samplers.flow = 'flow': unknown sampler; allowed: prior, gmm",
    ),
    ("generate.interpolation.steps", 2, "generate.interpolation.steps = 2: Input should be"),
    (
        "evaluate.clusterers",
        ["k-means"],
        "evaluate.clusterers[0] = 'k-means': String should match pattern '^[a-z][a-z0-9_]*$'",
    ),
]


@pytest.mark.parametrize(
    ("name", "shown"),
    [("a.b", "a.b"), ("v" * 41, "v" * 41), ("x" * 300, "x" * 40 + "...")],
)
def test_dotted_and_long_variant_names_are_one_line(tmp_path: Path, name: str, shown: str):
    params = copy.deepcopy(DEFAULT)
    params["variants"][name] = {"kind": "ae"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(AelabError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: variants.{shown} = ")
    assert "a variant name is 1-40 lowercase letters, digits or _" in str(caught.value)


def test_a_forty_character_variant_name_is_accepted(tmp_path: Path):
    params = copy.deepcopy(DEFAULT)
    params["variants"]["v" * 40] = {"kind": "ae"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert "v" * 40 in load_params(path).variants


def test_default_params_are_accepted():
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params.data.source == "sample"
    assert params.split.normal_digits == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_value_is_one_line_naming_the_key(tmp_path: Path, key, value, expected):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value(key, value)))
    with pytest.raises(AelabError) as caught:
        load_params(path, **method_registries())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {expected}"), message


def test_the_allowed_methods_are_the_registries_names(tmp_path: Path):
    """A name is allowed once its registry holds it; a stage that runs no method (given
    no registry) checks only its form."""
    path = tmp_path / "params.yaml"
    chosen = ["gmm", "lof"]  # gmm: the champion's
    path.write_text(yaml.safe_dump(with_value("evaluate.scores", chosen)))
    scores = Registry("anomaly score")
    for name in chosen:
        scores.add(name, SCORES["knn"])
    assert load_params(path, scores=scores).evaluate.scores == chosen
    assert load_params(path).evaluate.scores == chosen
    with pytest.raises(AelabError, match="'lof': unknown anomaly score; allowed: recon, knn, gmm"):
        load_params(path, **method_registries())


def test_a_sampler_draws_only_from_the_kinds_its_entry_names(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value("generate.samplers", {"gmm": ["vae", "pca"]})))
    assert load_params(path, **method_registries()).generate.samplers == {"gmm": ["vae", "pca"]}
    samplers = Registry("sampler")
    samplers.add("gmm", Sampler(SAMPLERS["gmm"].draw, kinds=("vae",)))
    with pytest.raises(AelabError, match="gmm = \\['vae', 'pca'\\]: pca \\(kind pca\\) has no gmm"):
        load_params(path, samplers=samplers)


@pytest.mark.parametrize(
    ("text", "words"),
    [("seed: [1\n", "not valid YAML"), ("- a\n- b\n", "expected a mapping"), ("", "expected")],
)
def test_unreadable_file_is_one_line(tmp_path: Path, text, words):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(AelabError, match=words):
        load_params(path)


@pytest.mark.parametrize(
    ("digits", "says"),
    [(5000, "line 1: an integer of 5,000 digits, more than Python reads (4,300); shorten it"),
     (4000, "seed = " + "9" * 57 + "...: Input should be less than 4294967296")],
)  # fmt: skip
def test_a_huge_integer_is_one_line(tmp_path: Path, digits: int, says: str):
    """A seed of 5,000 digits was a 16-frame ValueError traceback from PyYAML; one of 4,000
    is read, and refused as any seed out of range."""
    path = tmp_path / "params.yaml"
    rest = yaml.safe_dump(with_value("seed", ...), sort_keys=False)
    path.write_text(f"seed: {'9' * digits}\n{rest}")
    with pytest.raises(AelabError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: {says}") and "\n" not in str(caught.value)


def test_missing_file_names_it(tmp_path: Path):
    with pytest.raises(AelabError, match="params.yaml: file not found"):
        load_params(tmp_path / "params.yaml")


def test_mirrors_get_a_trailing_slash(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value("data.mirrors", ["https://mirror.example/mnist"])))
    assert load_params(path).data.mirrors == ["https://mirror.example/mnist/"]


def test_a_variants_seeds_follow_the_seed_its_own_count_or_trains(tmp_path: Path):
    params = copy.deepcopy(DEFAULT)
    params["seed"], params["train"]["seeds"] = 7, 3
    params["variants"] = {"ae": {"kind": "ae"}, "pca": {"kind": "pca", "latent_dim": 2,
                                                        "seeds": 1}}  # fmt: skip
    params["generate"]["samplers"] = {"gmm": "all"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    loaded = load_params(path)
    assert loaded.seeds_of("ae") == [7, 8, 9]
    assert loaded.seeds_of("pca") == [7]
    assert loaded.seed_of("ae", 2) == 9
    with pytest.raises(AelabError, match="unknown variant 'vae'; params.yaml defines: ae, pca"):
        loaded.seeds_of("vae")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["download", "split"])
def test_stage_with_bad_params_exits_with_one_line_and_writes_nothing(project: Path, stage):
    (project / "params.yaml").write_text(yaml.safe_dump(with_value("split.val_fraction", 2)))
    files_before = sorted(project.rglob("*"))
    result = run(["python", "-m", "stages", stage], cwd=project, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "split.val_fraction = 2" in result.stderr
    assert sorted(project.rglob("*")) == files_before
