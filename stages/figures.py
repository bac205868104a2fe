"""Stage `figures`: the article's five pictures, a reconstruction grid, each variant's
generated digits and interpolations -> reports/figures/, and every variant's loss curves in
one table for `dvc plots` -> reports/history.csv (aelab.reports.figures draws them).
Pictures and curves show each variant's first seed (models/<variant>/seed_0/)."""

from pathlib import Path

from aelab.analysis.clusterers import CLUSTERERS
from aelab.analysis.samplers import SAMPLERS, sampled
from aelab.core import paths
from aelab.core.errors import AelabError, run_stage
from aelab.core.io import load_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.data import digits
from aelab.data.features import load_features
from aelab.data.generated import load_generated
from aelab.data.history import read_history
from aelab.models.checkpoints import load_checkpoint
from aelab.reports import figures


def main(root: Path | None = None) -> None:
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE, clusterers=CLUSTERERS, samplers=SAMPLERS)
    names = list(params.variants)
    require_metrics_of(root, names)
    # Every input is read before anything is drawn: a damaged one stops the stage at once.
    first = paths.FIRST_SEED
    features = {name: load_features(root / paths.features_file(name, first)) for name in names}
    histories = {name: read_history(root / paths.checkpoint_dir(name, first)) for name in names}
    generated = {name: load_generated(root, name, first, sampled(params, name)) for name in names}
    test = digits.load_split(root, "test")
    models = {name: load_checkpoint(root / paths.checkpoint_dir(name, first)) for name in names}
    figures.draw_variants(root, params, test, models, features, histories)
    figures.draw_generated(root, params, generated)
    figures.save_history_table(histories, root / paths.HISTORY_TABLE)
    print(f"figures: {paths.FIGURES_DIR}/, {paths.HISTORY_TABLE}")


def require_metrics_of(root: Path, variants: list[str]) -> None:
    """A stale reports/metrics.json (without a variant params.yaml lists) stops the stage
    with the fix: the figures must show what `evaluate` measured."""
    reported = load_json(root / paths.METRICS, "evaluate")
    missing = [name for name in variants if name not in reported]
    if missing:
        raise AelabError(
            f"{paths.METRICS} has no results for variant {missing[0]!r}; run `dvc repro evaluate`"
        )


if __name__ == "__main__":
    run_stage(main)
