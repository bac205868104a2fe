"""The field's one-class benchmark (`aelab benchmark oneclass`): one DVC experiment per
digit and protocol (aelab.data.protocols), and the table of their test ROC AUCs beside
the published means.

Each (variant · score) row has the ten digits' AUROC and their mean. The mean's 95 %
interval combines the digits' own intervals (seeds and test digits, reports/intervals.json
of each experiment): the ten digits are the whole set averaged, not a sample of digits,
so their spread is not noise. A digit whose experiment failed or was never run is marked
missing and the mean says over how many digits it is; only rows with all ten compete for
best.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aelab.analysis.ranking import by_mean, leaders
from aelab.core import paths
from aelab.core.errors import AelabError
from aelab.core.io import atomic_open, save_json
from aelab.core.params import PARAMS_FILE
from aelab.data.protocols import (
    DIGITS,
    ONE_VS_REST,
    ONE_VS_REST_ANOMALOUS,
    PROTOCOLS,
    normal_digits,
)
from aelab.reports import experiments, figures

AUROC = "roc_auc_"
# Built from DVC experiments, not by a stage: committed with git beside the pipeline's reports.
TABLES = paths.REPORTS_DIR / "oneclass.json"
REPORT = paths.REPORTS_DIR / "oneclass.md"
# Published one-vs-rest means over the ten MNIST digits, as the papers' tables report them.
REFERENCES = {
    ONE_VS_REST: [
        {"method": "one-class Deep SVDD", "mean": 0.948,
         "source": "Ruff et al. 2018, ICML, Table 1 (the authors' PyTorch code README gives "
                   "per-digit values averaging 0.938)"},
        {"method": "AnoGAN", "mean": 0.937,
         "source": "Schlegl et al. 2017, as tabulated by later one-class papers"},
        {"method": "OCGAN", "mean": 0.975, "source": "Perera et al. 2019, CVPR"},
        {"method": "GEOM", "mean": 0.980, "source": "Golan and El-Yaniv 2018, NeurIPS"},
        {"method": "ARNet", "mean": 0.983, "source": "Fei et al. 2020, IEEE TMM"},
    ],
}  # fmt: skip
TITLES = {
    ONE_VS_REST: "one-vs-rest: one digit normal, the nine others anomalous",
    ONE_VS_REST_ANOMALOUS: "one-vs-rest-anomalous: nine digits normal, one anomalous",
}
FIGURE_METHODS = 4  # the best rows drawn in the figure


def figure_path(protocol: str) -> Path:
    return paths.REPORTS_DIR / f"oneclass_{protocol}.png"


def experiment_name(protocol: str, digit: int) -> str:
    suffix = "" if protocol == ONE_VS_REST else "-anomalous"
    return f"oneclass{suffix}-{digit}"


# Running the experiments.


def run(root: Path, protocol: str, digits: list[int], jobs: int, changes: list[str],
        push_remote: str | None,
        progress: Callable[[int, int], None]) -> dict[int, str]:  # fmt: skip
    """Queue and run one experiment per digit of the project at `root` (`changes` on top of
    each digit's split), two or `jobs` at a time; push the ones that succeeded to
    `push_remote`. Each failed digit's reason."""
    names = {digit: experiment_name(protocol, digit) for digit in digits}
    experiments.forget(root, list(names.values()))
    for digit, name in names.items():
        split = ",".join(map(str, normal_digits(protocol, digit)))
        experiments.queue(root, name, [f"split.normal_digits=[{split}]", *changes])
    experiments.start(root, jobs)
    try:
        final = experiments.wait(root, list(names.values()), progress)
    except KeyboardInterrupt:
        experiments.stop(root, list(names.values()))
        raise
    failed = {digit: experiments.failure(root, name) for digit, name in names.items()
              if final[name] != "Success"}  # fmt: skip
    if push_remote is not None:
        done = [name for digit, name in names.items() if digit not in failed]
        if done:
            experiments.push(root, push_remote, done)
    return failed


def pull(root: Path, protocol: str, remote: str) -> list[int]:
    """The digits whose experiments `remote` had for this commit, pulled."""
    names = {experiment_name(protocol, digit): digit for digit in DIGITS}
    return sorted(names[name] for name in experiments.pull(root, remote, list(names)))


# The table.


def results(protocol: str, shown: dict[str, dict]) -> dict[int, dict]:
    """Each digit's experiment metrics and half-widths, from `dvc exp show` (`shown`)."""
    found = {}
    for digit in DIGITS:
        metrics = shown.get(experiment_name(protocol, digit), {}).get("metrics", {})
        if metrics.get(str(paths.METRICS)):
            found[digit] = {"means": metrics[str(paths.METRICS)],
                            "half_widths": metrics.get(str(paths.INTERVALS), {})}  # fmt: skip
    return found


def rows(found: dict[int, dict]) -> list[dict]:
    """One row per (variant, score) with an AUROC in any digit's experiment, best mean first."""
    methods = {}
    for result in found.values():
        for variant, metrics in result["means"].items():
            for key, value in metrics.items():
                if key.startswith(AUROC) and value is not None:
                    methods[(variant, key.removeprefix(AUROC))] = None
    table = [_row(variant, score, found) for variant, score in methods]
    return sorted(table, key=lambda row: -row["mean"])


def _row(variant: str, score: str, found: dict[int, dict]) -> dict:
    key = AUROC + score
    auroc, half = {}, {}
    for digit, result in sorted(found.items()):
        value = result["means"].get(variant, {}).get(key)
        if value is not None:
            auroc[str(digit)] = value
            half[str(digit)] = result["half_widths"].get(variant, {}).get(key) or 0.0
    values = np.array(list(auroc.values()))
    # The mean of n independent digits' means: its half-width is the root sum of squares / n.
    mean_half = math.sqrt(sum(h * h for h in half.values())) / len(values)
    return {"method": f"{variant} · {score}", "variant": variant, "score": score,
            "auroc": auroc, "half_width": half, "mean": float(values.mean()),
            "mean_half_width": mean_half, "digits": len(values)}  # fmt: skip


def protocol_table(root: Path, protocol: str, shown: dict[str, dict], failed: dict[int, str],
                   commit: str, baseline: dict) -> dict:  # fmt: skip
    """The protocol's section of the reports/oneclass.json of the project at `root`;
    `baseline`: the workspace's params.yaml, against which each experiment's own changes
    are listed. A digit still missing keeps the reason an earlier run on this commit gave
    (it failed, say)."""
    found = results(protocol, shown)
    earlier = load_tables(root).get(protocol, {})
    known = earlier.get("missing", {}) if earlier.get("commit") == commit else {}
    missing = {str(d): failed.get(d) or known.get(str(d), "not run")
               for d in DIGITS if d not in found}  # fmt: skip
    settings = {}
    for digit in found:
        params = shown[experiment_name(protocol, digit)]["params"].get("params.yaml", {})
        changed = changes_from(baseline, params)
        if changed:
            settings[str(digit)] = changed
    return {
        "title": TITLES[protocol],
        "commit": commit,
        "settings": settings,
        "experiments": {str(d): experiment_name(protocol, d) for d in DIGITS},
        "missing": missing,
        "rows": rows(found),
        "references": REFERENCES.get(protocol, []),
    }


def changes_from(baseline: dict, params: dict, prefix: str = "") -> list[str]:
    """`params`' differences from `baseline` as `-S key=value` changes, the split's normal
    digits (the protocol's own) left out."""
    changed = []
    for key in sorted(set(baseline) | set(params)):
        name, old, new = f"{prefix}{key}", baseline.get(key), params.get(key)
        if name == "split.normal_digits" or old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed += changes_from(old, new, f"{name}.")
        else:
            changed.append(f"{name}={new if isinstance(new, str) else json.dumps(new)}")
    return changed


def best(table: dict) -> list[str]:
    """The best complete row, or every complete row tied with it (intervals overlap)."""
    complete = {row["method"]: (row["mean"], row["mean_half_width"])
                for row in table["rows"] if row["digits"] == len(DIGITS)}  # fmt: skip
    return leaders(complete, higher=True) if complete else []


def markdown(tables: dict[str, dict]) -> str:
    parts = [
        "# The one-class benchmark: test ROC AUC per digit",
        "",
        "`aelab benchmark oneclass` (docs/oneclass.md): one DVC experiment per digit. Each "
        "cell is that experiment's ROC AUC on the sample's test digits (mean over its seeds); "
        "the mean's ± is its 95 % interval from the digits' own intervals. Published means "
        "are on the full MNIST (about 6,000 training digits per class, not about 360).",
    ]
    for protocol in PROTOCOLS:
        if protocol in tables:
            parts += ["", _protocol_markdown(tables[protocol])]
    return "\n".join(parts) + "\n"


def _protocol_markdown(table: dict) -> str:
    header = "| method | " + " | ".join(map(str, DIGITS)) + " | mean |"
    lines = [f"## {table['title']}", ""]
    lines.append(f"Baseline commit {table['commit'][:7]}; {_settings(table['settings'])}")
    if table["missing"]:
        missing = "; ".join(f"{d} ({why})" for d, why in table["missing"].items())
        lines.append(f"Missing digits: {missing}. Their cells are empty and the means say "
                     "over how many digits they are.")  # fmt: skip
    leading = best(table)
    if leading:
        verdict = "best" if len(leading) == 1 else "tied for best"
        lines.append(f"Mean over the ten digits, {verdict}: " + ", ".join(
            f"**{name}** {_mean(_find(table, name))}" for name in leading) + ".")  # fmt: skip
    lines += ["", header, "|---|" + "---:|" * (len(DIGITS) + 1)]
    for row in table["rows"]:
        cells = [f"{row['auroc'][str(d)]:.3f}" if str(d) in row["auroc"] else "missing"
                 for d in DIGITS]  # fmt: skip
        name = f"**{row['method']}**" if row["method"] in leading else row["method"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_mean(row)} |")
    for reference in table["references"]:
        lines.append(f"| *{reference['method']}* ({reference['source']}) | "
                     + " | " * (len(DIGITS) - 1) + f" | {reference['mean']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def _settings(settings: dict[str, list[str]]) -> str:
    """The experiments' changes to params.yaml beyond the split, once when all share them."""

    def shown(changes: list[str]) -> str:
        return ", ".join(f"`-S {change}`" for change in changes) or "none"

    distinct = {tuple(changes) for changes in settings.values()}
    if len(distinct) <= 1 and len(settings) in (0, len(DIGITS)):
        return f"changes to params.yaml beyond the split: {shown(list(next(iter(distinct), ())))}."
    per_digit = "; ".join(f"{d}: {shown(changes)}" for d, changes in settings.items())
    return f"changes to params.yaml beyond the split, by digit (others none): {per_digit}."


def _find(table: dict, method: str) -> dict:
    return next(row for row in table["rows"] if row["method"] == method)


def _mean(row: dict) -> str:
    text = f"{row['mean']:.3f} ± {row['mean_half_width']:.3f}"
    return text if row["digits"] == len(DIGITS) else f"{text} ({row['digits']} of 10 digits)"


def figure(table: dict):
    """The best rows' AUROC per digit, the published means as dashed lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    column = {row["method"]: (row["mean"], row["mean_half_width"]) for row in table["rows"]}
    for method in by_mean(column, higher=True)[:FIGURE_METHODS] if column else []:
        row = _find(table, method)
        shown = [d for d in DIGITS if str(d) in row["auroc"]]
        ax.errorbar(shown, [row["auroc"][str(d)] for d in shown],
                    yerr=[row["half_width"][str(d)] for d in shown], marker="o", capsize=3,
                    label=f"{method} (mean {_mean(row)})")  # fmt: skip
    for reference, style in zip(table["references"], ["--", ":", "-.", (0, (5, 1)), (0, (1, 3))],
                                strict=False):  # fmt: skip
        label = f"{reference['method']} {reference['mean']:.3f} (published mean)"
        ax.axhline(reference["mean"], color="grey", linestyle=style, linewidth=1, label=label)
    ax.set_xticks(list(DIGITS))
    normal = table["title"] == TITLES[ONE_VS_REST]
    ax.set_xlabel("digit (normal)" if normal else "digit (anomalous)")
    ax.set_ylabel("test ROC AUC")
    ax.set_title(table["title"])
    ax.legend(fontsize=7, loc="lower left")
    return fig


def load_tables(root: Path) -> dict[str, dict]:
    """reports/oneclass.json's protocols, or none (missing, or not this benchmark's JSON)."""
    try:
        tables = json.loads((root / TABLES).read_text())
    except (OSError, ValueError):
        return {}
    return {p: t for p, t in tables.items() if p in PROTOCOLS} if isinstance(tables, dict) else {}


def write(root: Path, protocol: str, table: dict) -> None:
    """The protocol's section into the reports/oneclass.json of the project at `root` (the
    other's kept), the markdown of both, and the protocol's figure."""
    tables = {**load_tables(root), protocol: table}
    save_json(root / TABLES, tables)
    with atomic_open(root / REPORT, "w") as handle:
        handle.write(markdown(tables))
    figures.save(figure(table), root / figure_path(protocol))


def check_changes(root: Path, changes: list[str]) -> None:
    """A -S that sets the split's normal digits would undo the protocol's own, in whatever
    form DVC takes it: `split.normal_digits=[1]`, `params.yaml:split.normal_digits=[1]`,
    `split={normal_digits: [1]}`, `++split.normal_digits=[1]`, `~split`. Each change is read
    as DVC reads it: a file before the first `:` of its key (params.yaml without one), the
    rest by Hydra's override grammar, which DVC applies; a file from the project at `root`,
    where DVC runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for change in changes:
        file, override = _file_and_override(change)
        try:
            (parsed,) = parser.parse_overrides([override])
        except OverrideParseException as error:
            reason = "; ".join(line for line in str(error).splitlines()
                               if line.strip() and not line.startswith("See "))  # fmt: skip
            raise AelabError(f"-S {change!r}: not a change DVC can apply ({reason}); give "
                             f"key=value, e.g. -S train.seeds=1") from None  # fmt: skip
        in_params = (root / file).resolve() == (root / PARAMS_FILE).resolve()
        if in_params and _sets_normal_digits(parsed):
            raise AelabError(f"-S {change!r}: the protocol sets split.normal_digits; drop it")


NORMAL_DIGITS = "split.normal_digits"


def _file_and_override(change: str) -> tuple[Path, str]:
    """DVC's reading of `-S [file:]override` (dvc.utils.cli_parse.to_path_overrides)."""
    if ":" not in change.partition("=")[0]:
        return Path(PARAMS_FILE), change
    file, _, override = change.partition(":")
    return Path(file), override


def _sets_normal_digits(override) -> bool:
    """Whether a parsed Hydra override changes, adds or deletes split.normal_digits, or the
    whole split section with it (a mapping without normal_digits merges into the split)."""
    key = override.key_or_group
    if key == NORMAL_DIGITS or key.startswith(f"{NORMAL_DIGITS}."):
        return True
    if key != NORMAL_DIGITS.split(".")[0]:
        return False
    value = None if override.is_delete() else override.value()
    return not isinstance(value, dict) or "normal_digits" in value
