"""Stage `split`: normal digits into train/val, every digit into test, plus their counts
(DVC metrics, and a run of the data experiment with each file's checksum)."""

from pathlib import Path

from aelab.data import digits
from aelab.data.split import split_digits, split_stats
from aelab.errors import run_stage
from aelab.io import file_sha256, save_json
from aelab.params import load_params
from aelab.tracker import Tracker, flatten, shared_params

INPUT = "data/raw/digits.npz"
OUTPUT_DIR = "data/split"
STATS = "reports/split.json"


def main() -> None:
    params = load_params()
    with Tracker(params.tracking.data_experiment, "split") as tracker:
        downloaded = digits.load(
            INPUT, digits.Digits, fix=f"run `dvc repro -f download` (or `dvc checkout {INPUT}`)"
        )
        sets = split_digits(downloaded, params.split, params.seed)
        run_id = tracker.call(
            "start_run", name="split", params=shared_params(params, ("split",)), variant=False
        )
        stats = split_stats(sets)
        files = {name: f"{OUTPUT_DIR}/{name}.npz" for name in sets}
        for name, subset in sets.items():
            digits.save(files[name], subset)
        sizes = {f"{name}_bytes": Path(path).stat().st_size for name, path in files.items()}
        tracker.call("log_metrics", run_id=run_id, metrics={**flatten(stats), **sizes})
        checksums = {f"sha256.{name}": file_sha256(path) for name, path in files.items()}
        tracker.call("set_tags", run_id=run_id, tags=checksums)
        save_json(STATS, stats)
    sizes = ", ".join(f"{name} {len(subset)}" for name, subset in sets.items())
    print(f"split: {sizes} -> {OUTPUT_DIR}/")


if __name__ == "__main__":
    run_stage(main)
