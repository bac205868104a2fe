"""What a seed costs: a variant's seeds trained together (one model step for all,
aelab.training.loop) against one after another, each way on one thread, side by side.

For a dense variant (dae) and a conv one (conv_ae), 3 and 10 seeds, the same epochs (the
stopping rule held off, so every way does the same work):
- `apart`: one network per seed, one after another (`fit` with one seed at a time);
- `together`: every seed in one group (`fit` with all seeds);
- `grouped_conv` (conv only): together, but each convolution one call over all members
  (`groups=seeds`), the alternative to the per-member calls aelab makes.
Each measurement runs in its own process, with the instruction-set pins every stage holds
(aelab.core.pins), the ways alternating, so that all see the same machine noise. Needs the
split digits (`dvc repro split`). Prints the figures and writes them, with the machine, to
benchmarks/results/seeds_speed.json.

    python benchmarks/seeds_speed.py [--epochs 5] [--repeats 3] [--seeds 3 10]
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
import torch.nn.functional as F
from machine import describe, pinned_environment

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "results" / "seeds_speed.json"
VARIANTS = {"dae": ("apart", "together"), "conv_ae": ("apart", "together", "grouped_conv")}


def one_run(way: str, variant: str, seeds: int, epochs: int) -> dict:
    from aelab.core.params import load_params
    from aelab.training.loop import fit
    from aelab.training.seeds import training_digits

    params = load_params(ROOT / "params.yaml")
    config = params.variant(variant).model_copy(
        update={"max_epochs": epochs, "lr_patience": epochs, "patience": epochs + 1}
    )
    listed = [params.seed + k for k in range(seeds)]
    train, val = training_digits(ROOT, torch.device("cpu"))
    if way == "grouped_conv":
        use_grouped_convolutions()
    start = time.perf_counter()
    if way == "apart":
        trained = [one for seed in listed for one in fit(config, [seed], train, val, variant)]
    else:
        trained = fit(config, listed, train, val, variant)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "seconds_per_seed_epoch": seconds / seeds / epochs,
            "final_val_mse": [one.history[-1]["val_mse"] for one in trained]}  # fmt: skip


def use_grouped_convolutions() -> None:
    """aelab's member convolutions as one grouped call each: the members' channels side by
    side, (B, S * C, H, W), and their kernels stacked along the output channels."""
    from aelab.models import layers

    def grouped(x, weight, bias, call, **options):
        members, batch = x.shape[:2]
        inputs = x.transpose(0, 1).flatten(1, 2)  # (B, S * C, H, W)
        out = call(inputs, weight.flatten(0, 1), bias.flatten(), groups=members, **options)
        return out.view(batch, members, -1, *out.shape[2:]).transpose(0, 1)

    layers.Conv2d.forward = lambda self, x: grouped(
        x, self.weight, self.bias, F.conv2d, stride=self.stride, padding=self.padding
    )
    layers.ConvTranspose2d.forward = lambda self, x: grouped(
        x, self.weight, self.bias, F.conv_transpose2d, stride=self.stride,
        padding=self.padding, output_padding=self.output_padding,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # variant seeds way
    args = parser.parse_args()
    if args.one:
        variant, seeds, way = args.one
        print(json.dumps(one_run(way, variant, int(seeds), args.epochs)))
        return
    runs = {f"{variant} {seeds} {way}": [] for variant, ways in VARIANTS.items()
            for seeds in args.seeds for way in ways}  # fmt: skip
    for repeat in range(args.repeats):
        for name, done in runs.items():
            command = [sys.executable, __file__, "--one", *name.split(), "--epochs",
                       str(args.epochs)]  # fmt: skip
            child = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                                   env=pinned_environment())  # as every stage runs  # fmt: skip
            done.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1}/{args.repeats} {name:24s} "
                  f"{done[-1]['seconds']:6.1f} s", flush=True)  # fmt: skip
    report(runs, args)


def report(runs: dict[str, list[dict]], args: argparse.Namespace) -> None:
    table = {}
    for name, done in runs.items():
        variant, seeds, way = name.split()
        apart = runs[f"{variant} {seeds} apart"]
        table[name] = {
            "seconds_per_seed_epoch": statistics.median(r["seconds_per_seed_epoch"] for r in done),
            # Each repeat's runs ran back to back: their ratio shows the spread.
            "speedup_over_apart": [a["seconds"] / r["seconds"]
                                   for a, r in zip(apart, done, strict=True)],
            "same_losses_as_apart": all(a["final_val_mse"] == r["final_val_mse"]
                                        for a, r in zip(apart, done, strict=True)),
        }  # fmt: skip
    results = {
        "command": "python benchmarks/seeds_speed.py (make bench-seeds)",
        "machine": describe(),
        "setup": {"epochs": args.epochs, "repeats": args.repeats, "torch_threads": 1},
        "results": table,
        "runs": runs,
    }
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    for name, row in table.items():
        ratios = row["speedup_over_apart"]
        print(f"{name:24s} {1000 * row['seconds_per_seed_epoch']:7.0f} ms per seed and epoch, "
              f"{statistics.median(ratios):.2f}x apart's speed (per repeat "
              f"{min(ratios):.2f}-{max(ratios):.2f}x), same losses as apart: "
              f"{row['same_losses_as_apart']}")  # fmt: skip
    print(f"written to {OUTPUT}")


if __name__ == "__main__":
    main()
