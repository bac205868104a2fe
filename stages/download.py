"""Stage `download`: the digits of `data.source`, in aelab's one format, to data/raw/;
their counts and checksum in a run of the data experiment."""

from pathlib import Path

import numpy as np

from aelab.data import digits
from aelab.data.sources import load_source
from aelab.errors import run_stage
from aelab.io import file_sha256
from aelab.params import load_params
from aelab.tracker import Tracker, shared_params

OUTPUT = "data/raw/digits.npz"


def main() -> None:
    params = load_params()
    with Tracker(params.tracking.data_experiment, "download") as tracker:
        downloaded = load_source(params.data)
        run_id = tracker.call(
            "start_run", name="download", params=shared_params(params, ("data",)), variant=False
        )
        per_digit = np.bincount(downloaded.labels, minlength=10)
        digits.save(OUTPUT, downloaded)
        figures = {
            "digits": len(downloaded),
            "bytes": Path(OUTPUT).stat().st_size,
            **{f"digit_{d}": int(n) for d, n in enumerate(per_digit)},
        }
        tracker.call("log_metrics", run_id=run_id, metrics=figures)
        tracker.call("set_tags", run_id=run_id, tags={"sha256.digits": file_sha256(OUTPUT)})
    print(f"download: {len(downloaded)} {params.data.source} digits -> {OUTPUT}")


if __name__ == "__main__":
    run_stage(main)
