"""Stage `generate`: what every variant creates. For each seed's network and each of its
samplers (params `generate.samplers`), as many digits as there are normal test digits,
and the straight lines between the codes of seeded pairs of normal test digits, read by
the digit classifier -> data/generated/<variant>/seed_<k>.npz; the real digits' reading
-> data/generated/real.npz. evaluate turns them into Fréchet distances."""

from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from aelab.analysis.generation import path_jumps
from aelab.analysis.samplers import SAMPLERS, draw, sampled
from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import save_arrays
from aelab.core.params import PARAMS_FILE, load_params
from aelab.data import digits
from aelab.data.features import load_features
from aelab.models.checkpoints import load_checkpoint
from aelab.training.classifier import classify, load_classifier
from aelab.training.generation import (
    SHOWN_PAIRS,
    interpolation_pairs,
    interpolations,
    read_samples,
)
from aelab.training.loop import as_inputs, pick_device


def main(root: Path | None = None) -> None:
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE, samplers=SAMPLERS)
    device = pick_device("auto")
    classifier = load_classifier(root / paths.CLASSIFIER_DIR, device=device)
    test, val = digits.load_split(root, "test"), digits.load_split(root, "val")
    normal = ~test.is_anomaly
    images = as_inputs(test.images[normal], device)
    pairs = interpolation_pairs(test.labels[normal], params.generate.interpolation.pairs,
                                params.seed)  # fmt: skip
    real_val = classify(classifier, as_inputs(val.images, device))
    save_arrays(root / paths.REAL_FEATURES, {
        "test_features": classify(classifier, images)["features"],
        "val_features": real_val["features"], "val_probabilities": real_val["probabilities"],
        "pairs": pairs,
    })  # fmt: skip
    jobs = [(name, k, seed) for name in params.variants
            for k, seed in enumerate(params.seeds_of(name))]  # fmt: skip
    for name, k, seed in tqdm(jobs, desc="generate", unit="network"):
        model = load_checkpoint(root / paths.checkpoint_dir(name, k), device)
        train_codes = load_features(root / paths.features_file(name, k))["train_latent"]
        codes = {sampler: draw(sampler, train_codes, len(images), params.generate, seed)
                 for sampler in sampled(params, name)}  # fmt: skip
        midpoints, lines = interpolations(model, classifier, images[pairs],
                                          params.generate.interpolation.steps)  # fmt: skip
        save_arrays(root / paths.generated_file(name, k), {
            **read_samples(model, classifier, codes),
            "interp_features": midpoints,
            "interp_jump": path_jumps(lines.astype(np.float64)),
            "interp_paths": lines[:SHOWN_PAIRS],
        })  # fmt: skip
    print(f"generate: {len(jobs)} networks, {len(images)} digits per sampler -> "
          f"{paths.GENERATED_DIR}/")  # fmt: skip


if __name__ == "__main__":
    # As in evaluate: the mixtures' small matrix products are faster on one BLAS thread.
    with threadpool_limits(limits=1, user_api="blas"):
        run_stage(main)
