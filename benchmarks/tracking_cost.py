"""What MLflow logging adds to `make repro`, and what a no-op `dvc repro` costs.

Each repeat runs `dvc repro` (what `make repro` runs, with the venv's tools first on PATH)
of the whole pipeline on the bundled sample, twice: with logging and without it
(AELAB_TRACKING=off), each in its own fresh clone of the committed project (empty DVC
cache, no store). The order alternates every repeat, so a machine getting busier or
quieter favours neither. After each logged run, a no-op `dvc repro` is timed too. Prints
the figures and writes them, with the machine, to benchmarks/results/tracking_cost.json.

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

from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "benchmarks" / "results" / "tracking_cost.json"
NO_OP_REPEATS = 3


def environment(clone: Path, tracking: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(clone / "src"),
        "DVC_NO_ANALYTICS": "1",
        "AELAB_TRACKING": tracking,
    }


def timed(command: list[str], clone: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=clone, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def timed_repro(tracking: str) -> tuple[float, list[float]]:
    """Seconds of `dvc repro` in a fresh clone, and of the no-op reruns after it (logged
    runs only)."""
    with tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "aelab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = environment(clone, tracking)
        seconds = timed(["dvc", "repro"], clone, env)
        no_ops = []
        if tracking == "on":
            no_ops = [timed(["dvc", "repro"], clone, env) for _ in range(NO_OP_REPEATS)]
        return seconds, no_ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    no_ops: list[float] = []
    for repeat in range(args.repeats):
        for tracking in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
            total, reruns = timed_repro(tracking)
            seconds[tracking].append(total)
            no_ops += reruns
            print(f"repeat {repeat + 1}/{args.repeats} logging {tracking:3s} {total:6.1f} s",
                  flush=True)  # fmt: skip
    off, on = (statistics.median(seconds[mode]) for mode in ("off", "on"))
    pairs = [b / a - 1 for a, b in zip(seconds["off"], seconds["on"], strict=True)]
    results = {
        "command": "python benchmarks/tracking_cost.py (make bench-tracking)",
        "setup": "dvc repro of the whole pipeline on the sample, fresh clone and empty cache "
        "each, with logging (on) and AELAB_TRACKING=off, alternating",
        "machine": describe(),
        "seconds": seconds,
        "median_seconds": {"off": off, "on": on},
        "added_fraction_of_medians": on / off - 1,
        "added_fraction_per_pair": pairs,
        "no_op_repro_seconds": no_ops,
        "no_op_repro_median_seconds": statistics.median(no_ops),
    }
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"median without logging {off:.1f} s, with {on:.1f} s: {on / off - 1:+.1%} "
          f"(pairs: {', '.join(f'{p:+.1%}' for p in pairs)}); no-op dvc repro "
          f"{statistics.median(no_ops):.2f} s (median of {len(no_ops)})")  # fmt: skip
    print(f"written to {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
