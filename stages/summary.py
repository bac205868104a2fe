"""Stage `summary`: evaluate's seeds and resamples (data/evaluation/paired.npz) rendered ->
reports/summary.md, one table per task with the best (variant, method) or the tie and the
network-against-PCA verdict, each judged on a paired difference; the training reports
mark a variant with a seed that did not converge. Rendering only, so a change to the text
reruns this step alone."""

from pathlib import Path

from aelab.analysis.intervals import from_arrays
from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import atomic_open, load_arrays, load_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.reports.summary import summary


def main(root: Path | None = None) -> None:
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE)
    fix = f"run `dvc repro evaluate` (or `dvc checkout {paths.PAIRED}`)"
    evaluated = from_arrays(load_arrays(root / paths.PAIRED, (), fix))
    # Rows in params.yaml's order, then the baselines (the file's are sorted).
    order = [*params.variants, *sorted(set(evaluated) - set(params.variants))]
    estimates = {name: evaluated[name] for name in order if name in evaluated}
    pca = [name for name, config in params.variants.items() if config.kind == "pca"]
    kinds = {name: config.kind for name, config in params.variants.items()}
    text = summary(estimates, params.evaluate, pca, unconverged(root, params.variants),
                   list(params.generate.samplers), kinds)  # fmt: skip
    with atomic_open(root / paths.SUMMARY, "w") as handle:
        handle.write(text)
    print(text, end="")


def unconverged(root: Path, variants: dict) -> dict[str, str]:
    """variant -> "k of n seeds" for the variants with a seed stopped by max_epochs."""
    flagged = {}
    for name in variants:
        seeds = load_json(root / paths.train_report(name), f"train@{name}").values()
        late = sum(seed.get("converged") is False for seed in seeds)
        if late:
            flagged[name] = f"{late} of {len(seeds)} seeds"
    return flagged


if __name__ == "__main__":
    run_stage(main)
