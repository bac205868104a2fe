"""Stage `split`: normal digits into train/val, every digit into test, plus their counts
(reports/split.json, a DVC metrics file)."""

from pathlib import Path

from aelab.core import paths
from aelab.core.errors import run_stage
from aelab.core.io import save_json
from aelab.core.params import PARAMS_FILE, load_params
from aelab.data import digits
from aelab.data.split import split_digits, split_stats


def main(root: Path | None = None) -> None:
    root = root or paths.project_root()
    params = load_params(root / PARAMS_FILE)
    fix = f"run `dvc repro -f download` (or `dvc checkout {paths.RAW_DIGITS}`)"
    downloaded = digits.load(root / paths.RAW_DIGITS, digits.Digits, fix=fix)
    sets = split_digits(downloaded, params.split, params.seed)
    for name, subset in sets.items():
        digits.save(root / paths.split_file(name), subset)
    save_json(root / paths.SPLIT_STATS, split_stats(sets))
    sizes = ", ".join(f"{name} {len(subset)}" for name, subset in sets.items())
    print(f"split: {sizes} -> {paths.SPLIT_DIR}/")


if __name__ == "__main__":
    run_stage(main)
