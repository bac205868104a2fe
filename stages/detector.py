"""Stage `detector`: the best variant by `champions.anomaly`, packaged to score new images
-> detector/ (aelab.serving.detector), and what it was chosen by -> reports/detector.json."""

from pathlib import Path

from threadpoolctl import threadpool_limits

from aelab.analysis.scores import SCORES
from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import load_json, save_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.serving import detector


def main(root: Path | None = None) -> None:
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE, scores=SCORES)
    results = load_json(root / paths.METRICS, "evaluate")
    half_widths = load_json(root / paths.INTERVALS, "evaluate")
    config = detector.build(root, params, results, half_widths)
    save_json(root / paths.DETECTOR_REPORT, config)
    interval = f" ± {config['half_width']:.3f}" if config["half_width"] is not None else ""
    mean = f" {config['mean']:.3f}{interval}" if config["mean"] is not None else ""
    print(f"detector: {config['variant']} ({config['chosen_by']}{mean}), threshold "
          f"{config['threshold']:.4g} -> {paths.DETECTOR_DIR}/")  # fmt: skip


if __name__ == "__main__":
    with threadpool_limits(limits=1, user_api="blas"):  # as evaluate: the same mixture
        run_stage(main)
