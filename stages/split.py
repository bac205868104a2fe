"""Stage `split`: normal digits into train/val, every digit into test, plus their counts."""

from aelab.data import digits
from aelab.data.split import split_digits, split_stats
from aelab.errors import run_stage
from aelab.io import save_json
from aelab.params import load_params

INPUT = "data/raw/digits.npz"
OUTPUT_DIR = "data/split"
STATS = "reports/split.json"


def main() -> None:
    params = load_params()
    downloaded = digits.load(INPUT, digits.Digits, fix="run `dvc repro -f download`")
    sets = split_digits(downloaded, params.split, params.seed)
    for name, subset in sets.items():
        digits.save(f"{OUTPUT_DIR}/{name}.npz", subset)
    save_json(STATS, split_stats(sets))
    sizes = ", ".join(f"{name} {len(subset)}" for name, subset in sets.items())
    print(f"split: {sizes} -> {OUTPUT_DIR}/")


if __name__ == "__main__":
    run_stage(main)
