"""Peak resident memory of every stage on full-MNIST-sized input (70,000 digits).

MNIST itself cannot be downloaded here, so the stand-in is the bundled 5,000 digits tiled
14 times, each copy shifted by up to 2 pixels. The stages run one by one in a fresh clone
(`python -m stages.<stage>`, as DVC runs them), training for one epoch (memory does not
grow with epochs: the whole training set is one tensor from the start). The logging
service that the stages share is measured too. Prints a table, writes
reports/stage_memory.json, and exits 1 if a stage peaks at 2 GiB or more.

    python benchmarks/stage_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "reports" / "stage_memory.json"
COPIES = 14  # 14 x 5,000 = 70,000 digits, MNIST's size
LIMIT_MIB = 2048


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


def peak_mib(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run `command` and return its own peak resident memory (wait4's ru_maxrss)."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return usage.ru_maxrss / 1024


def service_peaks_mib(clone: Path) -> list[float]:
    """VmHWM of the logging service of the clone's store (python -m aelab.tracker)."""
    peaks = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes().split(b"\0")
            text = status.read_text()
        except OSError:
            continue
        if b"aelab.tracker" in cmdline and any(str(clone).encode() in arg for arg in cmdline):
            kib = next(line.split()[1] for line in text.splitlines() if line.startswith("VmHWM"))
            peaks.append(int(kib) / 1024)
    return peaks


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "aelab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["train"]["epochs"] = 1
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        n = stand_in_digits(clone)
        env = {
            **os.environ,
            "PYTHONPATH": str(clone / "src"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        stages = [["stages.split"]]
        for name in params["variants"]:
            stages.append(["stages.train", "--variant", name])
        for name in params["variants"]:
            stages.append(["stages.extract", "--variant", name])
        stages += [["stages.evaluate"], ["stages.figures"]]
        peaks = {}
        for stage in stages:
            label = stage[0].removeprefix("stages.") + (f"@{stage[2]}" if len(stage) > 1 else "")
            peaks[label] = peak_mib([sys.executable, "-m", *stage], clone, env)
            print(f"{label:22s} {peaks[label]:7.0f} MiB", flush=True)
        services = service_peaks_mib(clone)
    results = {
        "digits": n,
        "stand_in": f"the bundled 5,000 digits x {COPIES}, shifted by up to 2 pixels",
        "epochs": 1,
        "peak_mib": peaks,
        "logging_service_peak_mib": max(services) if services else None,
        "limit_mib": LIMIT_MIB,
        "all_under_limit": max(peaks.values()) < LIMIT_MIB,
    }
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    worst = max(peaks, key=peaks.get)
    if not results["all_under_limit"]:
        raise SystemExit(f"{worst} peaked at {peaks[worst]:.0f} MiB, over {LIMIT_MIB} MiB")
    print(
        f"{n} digits: largest peak {peaks[worst]:.0f} MiB ({worst}); logging service "
        f"{results['logging_service_peak_mib'] or 0:.0f} MiB; written to reports/stage_memory.json"
    )


if __name__ == "__main__":
    main()
