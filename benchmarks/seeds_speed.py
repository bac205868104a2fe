"""A variant's seeds side by side (aelab.training.seeds: one process per core, one thread
each) against one after another on all of torch's threads (the stage before), timed.

Same variant, same seeds, same number of epochs (the stopping rule is held off, so both
do the same work). Each measurement runs in its own process, alternating the two ways so
that both see the same machine noise. Needs the split digits (`dvc repro split`).
Prints the figures and writes them, with the machine, to
benchmarks/results/seeds_speed.json.

    python benchmarks/seeds_speed.py [--variant dae] [--epochs 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from machine import describe

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "results" / "seeds_speed.json"
WAYS = ("side_by_side", "one_after_another")


def one_run(way: str, variant: str, epochs: int) -> dict:
    from aelab.core.params import load_params
    from aelab.models import build_model
    from aelab.training.loop import fit, seed_everything
    from aelab.training.seeds import train_seeds, training_digits

    params = load_params(ROOT / "params.yaml")
    config = params.variant(variant).model_copy(
        update={"max_epochs": epochs, "lr_patience": epochs, "patience": epochs + 1}
    )
    seeds = [params.seed + k for k in range(config.seeds)]
    device = torch.device("cpu")
    start = time.perf_counter()
    if way == "side_by_side":
        losses = [t.history[-1]["val_mse"] for t in train_seeds(variant, config, seeds, device)]
    else:
        train, val = training_digits(device)
        losses = []
        for seed in seeds:
            seed_everything(seed)
            model = build_model(config)
            losses.append(fit(model, train, val, config, seed, variant)[-1]["val_mse"])
    return {"seconds": time.perf_counter() - start, "final_val_mse": losses,
            "seeds": len(seeds), "torch_threads": torch.get_num_threads()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="dae")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.variant, args.epochs)))
        return
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way, done in runs.items():
            command = [sys.executable, __file__, "--one", way, "--variant", args.variant,
                       "--epochs", str(args.epochs)]  # fmt: skip
            child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
            done.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1}/{args.repeats} {way:17s} "
                  f"{done[-1]['seconds']:6.1f} s", flush=True)  # fmt: skip
    pairs = zip(runs["side_by_side"], runs["one_after_another"], strict=True)
    ratios = [after["seconds"] / side["seconds"] for side, after in pairs]
    medians = {way: statistics.median(r["seconds"] for r in rs) for way, rs in runs.items()}
    results = {
        "command": "python benchmarks/seeds_speed.py (make bench-seeds)",
        "machine": describe(),
        "setup": {"variant": args.variant, "epochs": args.epochs, "repeats": args.repeats},
        "median_seconds": medians,
        "speedup": medians["one_after_another"] / medians["side_by_side"],
        "speedup_per_repeat": ratios,
        "same_losses": all(
            a["final_val_mse"] == b["final_val_mse"] for a, b in zip(*runs.values(), strict=True)
        ),  # fmt: skip
        "runs": runs,
    }
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"side by side {medians['side_by_side']:.1f} s, one after another "
          f"{medians['one_after_another']:.1f} s (median of {args.repeats}): "
          f"{results['speedup']:.2f}x (per repeat {min(ratios):.2f}-{max(ratios):.2f}x); "
          f"written to {OUTPUT}")  # fmt: skip


if __name__ == "__main__":
    main()
