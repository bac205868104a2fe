"""Peak resident memory of every stage on full-MNIST-sized input (70,000 digits).

MNIST itself cannot be downloaded here, so the stand-in is the bundled 5,000 digits tiled
14 times, each copy shifted by up to 2 pixels. The stages run one by one in a fresh clone
(`python -m stages <stage>`, as DVC runs them), training one seed for one epoch: memory
does not grow with epochs or seeds (the whole training set is one tensor from the start,
and seeds run one after another). Only what can regress is measured: one variant per code
path (VARIANTS: a dense network, a convolutional one, the closed-form PCA), since the
other objectives train and extract through the same code with the same tensors; the
stages after extract see only codes and take the variants one at a time, so they run on
the dense network and PCA (CODES_ONLY) beside the raw pixels. Prints a table of peaks and
wall-clock seconds, writes it with the machine to benchmarks/results/stage_memory.json,
and exits 1 if a stage peaks at 2 GiB or more.

    python benchmarks/stage_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "benchmarks" / "results" / "stage_memory.json"
COPIES = 14  # 14 x 5,000 = 70,000 digits, MNIST's size
LIMIT_MIB = 2048
VARIANTS = ("ae", "conv_ae", "pca")  # of params.yaml's defaults: mlp, conv, closed form
# The stages after extract see codes, whatever the architecture: they run without conv_ae.
CODES_ONLY = ("ae", "pca")


def stand_in_digits(folder: Path) -> int:
    """data/raw/digits.npz with 70,000 digits, written as the download stage would."""
    sys.path.insert(0, str(folder / "src"))
    from aelab.data import digits
    from aelab.data.sources import load_sample

    sample = load_sample()
    rng = np.random.default_rng(0)
    shifted = [
        np.roll(sample.images, tuple(rng.integers(-2, 3, size=2)), axis=(1, 2))
        for _ in range(COPIES)
    ]
    big = digits.Digits(
        images=np.concatenate(shifted),
        labels=np.tile(sample.labels, COPIES),
        origin=np.tile(sample.origin, COPIES),
    )
    digits.save(folder / "data/raw/digits.npz", big)
    return len(big)


def peak_mib(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run `command`; its own peak resident memory (wait4's ru_maxrss) and its seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "aelab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["train"]["max_epochs"] = 1
        params["train"]["seeds"] = 1
        params["variants"] = {name: params["variants"][name] for name in VARIANTS}
        for entry in params["variants"].values():  # those that set their own cap too
            if entry["kind"] != "pca":
                entry["max_epochs"] = 1
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        n = stand_in_digits(clone)
        env = {
            **os.environ,
            "PYTHONPATH": str(clone / "src"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        # As DVC runs them: the log step checks `dvc status` only when run by hand.
        env["DVC_STAGE"] = "benchmark"
        per_variant = {"split": ["stages", "split"]}
        for stage in ("train", "extract"):
            for name in params["variants"]:
                per_variant[f"{stage}@{name}"] = ["stages", stage, "--variant", name]
        on_codes = {name: ["stages", name]
                    for name in ("classifier", "generate", "evaluate", "summary", "detector",
                                 "figures", "log")}  # fmt: skip
        peaks, seconds = {}, {}
        for stages in (per_variant, on_codes):
            for label, module in stages.items():
                command = [sys.executable, "-m", *module]
                peaks[label], seconds[label] = peak_mib(command, clone, env)
                print(f"{label:22s} {peaks[label]:7.0f} MiB {seconds[label]:7.0f} s", flush=True)
            params["variants"] = {name: params["variants"][name] for name in CODES_ONLY}
            (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    results = {
        "command": "python benchmarks/stage_memory.py (make bench-memory)",
        "machine": describe(),
        "digits": n,
        "stand_in": f"the bundled 5,000 digits x {COPIES}, shifted by up to 2 pixels",
        "epochs": 1,
        "seeds": 1,
        "variants": list(VARIANTS),
        "variants_after_extract": list(CODES_ONLY),
        "peak_mib": peaks,
        "seconds": {label: round(value, 1) for label, value in seconds.items()},
        "limit_mib": LIMIT_MIB,
        "all_under_limit": max(peaks.values()) < LIMIT_MIB,
    }
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    worst = max(peaks, key=peaks.get)
    if not results["all_under_limit"]:
        raise SystemExit(f"{worst} peaked at {peaks[worst]:.0f} MiB, over {LIMIT_MIB} MiB")
    print(f"{n} digits: largest peak {peaks[worst]:.0f} MiB ({worst}); written to {OUTPUT}")


if __name__ == "__main__":
    main()
