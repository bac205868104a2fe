"""Stage `download`: the digits of `data.source`, in aelab's one format, to data/raw/."""

from pathlib import Path

from aelab.core.errors import run_stage
from aelab.core.params import PARAMS_FILE, load_params
from aelab.core.paths import RAW_DIGITS, project_root
from aelab.data import digits
from aelab.data.sources import load_source


def main(root: Path | None = None) -> None:
    root = root or project_root()
    params = load_params(root / PARAMS_FILE)
    downloaded = load_source(params.data)
    digits.save(root / RAW_DIGITS, downloaded)
    print(f"download: {len(downloaded)} {params.data.source} digits -> {RAW_DIGITS}")


if __name__ == "__main__":
    run_stage(main)
