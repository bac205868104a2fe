"""What MLflow tracking adds to `dvc repro`: the whole pipeline on the bundled sample, from
an empty DVC cache, with tracking on and off (AELAB_TRACKING=off), alternating, each in its
own fresh clone of the committed project (so each "on" run also starts its own logging
service and creates its own mlflow.db), the order swapped every repeat. Prints the
figures and writes them to reports/tracking_cost.json.

    python benchmarks/tracking_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "reports" / "tracking_cost.json"


def timed_repro(tracking: str) -> float:
    """Seconds of one `dvc repro` in a fresh clone; tracking is "on" or "off"."""
    with tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "aelab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {
            **{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(clone / "src"),
            "DVC_NO_ANALYTICS": "1",
            "AELAB_TRACKING": tracking,
        }
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=clone, env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for repeat in range(args.repeats):
        # Alternate which goes first, so that a machine getting busier (or quieter) over
        # the run favours neither.
        for tracking in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
            runs = seconds[tracking]
            runs.append(timed_repro(tracking))
            print(f"repeat {repeat + 1}/{args.repeats} tracking {tracking:3s} {runs[-1]:6.1f} s",
                  flush=True)  # fmt: skip
    off, on = (statistics.median(seconds[mode]) for mode in ("off", "on"))
    pairs = [b / a for a, b in zip(seconds["off"], seconds["on"], strict=True)]
    results = {
        "setup": "dvc repro of the whole pipeline on the sample, empty cache, fresh clone each",
        "seconds": seconds,
        "median_seconds": {"off": off, "on": on},
        "added_fraction_of_medians": on / off - 1,
        "added_fraction_per_pair": [ratio - 1 for ratio in pairs],
    }
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"median without tracking {off:.1f} s, with {on:.1f} s: {on / off - 1:+.1%} "
          f"(pairs: {', '.join(f'{r - 1:+.1%}' for r in pairs)})")  # fmt: skip
    print(f"written to {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
