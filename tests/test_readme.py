"""The README's figures are the committed reports': each is recomputed here from
reports/ as committed (CI reproduces the workspace's beside this test) and looked for in the
README, so a commit that moves them fails until the README follows."""

from __future__ import annotations

import functools
import json
import re
import statistics
import subprocess

import pytest
from helpers import PROJECT_ROOT

from aelab.core.params import load_params

README = (PROJECT_ROOT / "README.md").read_text()


def flat(text: str) -> str:
    """The README's prose on one line, so that a figure may span a line break."""
    return re.sub(r"\s+", " ", text)


@functools.cache
def committed(name: str) -> str:
    """reports/<name> as HEAD has it."""
    return subprocess.run(["git", "show", f"HEAD:reports/{name}"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def reports(name: str) -> dict:
    return json.loads(committed(name))


def median_half_width(prefix: str) -> float:
    half_widths = reports("intervals.json")
    return statistics.median(
        half
        for metrics in half_widths.values()
        for metric, half in metrics.items()
        if metric.startswith(prefix) and half is not None
    )


@pytest.mark.parametrize(
    ("claim", "prefix", "digits"),
    [("of an ROC AUC is {}", "roc_auc_", 3), ("of an ARI on every digit {}", "ari_all_", 3),
     ("of a PSNR {} dB", "psnr", 2)],
)  # fmt: skip
def test_median_half_widths(claim, prefix, digits):
    assert claim.format(f"{median_half_width(prefix):.{digits}f}") in flat(README)


def test_psnr_sentence_matches_the_reports():
    means, halves = reports("metrics.json"), reports("intervals.json")
    params = load_params(PROJECT_ROOT / "params.yaml")
    dense = [
        means[name]["psnr"]
        for name, config in params.variants.items()
        if config.kind != "pca" and config.arch == "mlp"
    ]
    summary = flat(committed("summary.md")).partition("**Best PSNR:**")[2]
    best = summary.split()[0]
    paired = re.search(r"beats PCA: (\+[\d.]+ ± [\d.]+) against pca", summary).group(1)
    sentence = (
        f"PCA reaches {means['pca']['psnr']:.2f} ± {halves['pca']['psnr']:.2f} dB PSNR, the dense "
        f"networks {min(dense):.1f}–{max(dense):.1f} dB, and `{best}`, the best, "
        f"{means[best]['psnr']:.2f} ± {halves[best]['psnr']:.2f}: {paired.lstrip('+')} dB above "
        "PCA in the paired difference."
    )
    assert sentence in flat(README)


def test_compression_ratio():
    ratios = {metrics.get("compression_ratio") for metrics in reports("metrics.json").values()}
    ratios.discard(None)
    assert len(ratios) == 1
    assert f"({ratios.pop():g} by default)" in README
