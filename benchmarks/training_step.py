"""What `training_step` saves against autograd, per variant, measured side by side.

For each network variant as params.yaml defines it, on the 5,000 bundled digits: two
copies of the same model train in one process, alternating epoch by epoch, one with
`model(x).loss.backward()` and one with `model.training_step(x)` (the dense layers
differentiated by hand). Alternating within one process puts both under the same machine
noise; the figure is the median of the per-round time ratios. Both copies end with the
same weights, bit for bit, which the script checks. Prints the figures and writes them
to reports/training_step.json.

    python benchmarks/training_step.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from aelab.data.sources import load_sample
from aelab.models import LatentModel, build_model
from aelab.params import VariantConfig, load_params
from aelab.training import adam, as_inputs, keep_freed_memory, train_epoch

OUTPUT = Path("reports/training_step.json")


def epochs_of(model: LatentModel, config: VariantConfig, data: torch.Tensor):
    """A function that trains `model` one more epoch each call."""
    optimizer = adam(model, config.lr)
    shuffle = torch.Generator().manual_seed(0)
    return lambda: train_epoch(model, optimizer, data, config.batch_size, shuffle)


def compare(config: VariantConfig, data: torch.Tensor, rounds: int) -> dict:
    models = {}
    for name in ("autograd", "training_step"):
        torch.manual_seed(0)
        models[name] = build_model(config)
    # The plain step for one copy: forward, then loss.backward().
    plain = models["autograd"]
    plain.training_step = partial(LatentModel.training_step, plain)
    train = {name: epochs_of(model, config, data) for name, model in models.items()}
    seconds: dict[str, list[float]] = {name: [] for name in train}
    for _ in range(rounds + 1):  # the first round warms up and is not counted
        for name, one_epoch in train.items():
            torch.manual_seed(len(seconds[name]))  # the same noise for both copies
            start = time.perf_counter()
            one_epoch()
            seconds[name].append(time.perf_counter() - start)
    plain, fast = seconds["autograd"][1:], seconds["training_step"][1:]
    ratios = [a / b for a, b in zip(plain, fast, strict=True)]
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            models["autograd"].state_dict().values(),
            models["training_step"].state_dict().values(),
            strict=True,
        )
    )
    return {
        "autograd_samples_per_second": len(data) / statistics.median(plain),
        "training_step_samples_per_second": len(data) / statistics.median(fast),
        "speedup_median": statistics.median(ratios),
        "speedup_quartiles": statistics.quantiles(ratios, n=4)[::2],
        "same_weights": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    keep_freed_memory()
    data = as_inputs(load_sample().images, torch.device("cpu"))
    params = load_params(Path("params.yaml"))
    results = {}
    for name, config in params.variants.items():
        if config.kind == "pca":  # fitted in closed form: no step to compare
            continue
        results[name] = row = compare(config, data, args.rounds)
        q1, q3 = row["speedup_quartiles"]
        print(
            f"{name:12s} autograd {row['autograd_samples_per_second']:7.0f} samples/s  "
            f"training_step {row['training_step_samples_per_second']:7.0f} samples/s  "
            f"x{row['speedup_median']:.3f} (quartiles {q1:.3f}-{q3:.3f})  "
            f"same weights: {row['same_weights']}",
            flush=True,
        )
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps({"rounds": args.rounds, "variants": results}, indent=2) + "\n")
    print(f"written to {OUTPUT}")


if __name__ == "__main__":
    main()
