"""Stage `download`: the digits of `data.source`, in aelab's one format, to data/raw/."""

from aelab.core.errors import run_stage
from aelab.core.params import load_params
from aelab.core.paths import RAW_DIGITS
from aelab.data import digits
from aelab.data.sources import load_source


def main() -> None:
    params = load_params()
    downloaded = load_source(params.data)
    digits.save(RAW_DIGITS, downloaded)
    print(f"download: {len(downloaded)} {params.data.source} digits -> {RAW_DIGITS}")


if __name__ == "__main__":
    run_stage(main)
