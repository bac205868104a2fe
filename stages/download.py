"""Stage `download`: the digits of `data.source`, in aelab's one format, to data/raw/."""

from aelab.data import digits
from aelab.data.sources import load_source
from aelab.errors import run_stage
from aelab.params import load_params
from aelab.paths import RAW_DIGITS


def main() -> None:
    params = load_params()
    downloaded = load_source(params.data)
    digits.save(RAW_DIGITS, downloaded)
    print(f"download: {len(downloaded)} {params.data.source} digits -> {RAW_DIGITS}")


if __name__ == "__main__":
    run_stage(main)
