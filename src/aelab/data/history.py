"""The loss history of a trained network, models/<variant>/seed_<k>/history.csv: one row per
epoch, an `epoch` column, then the losses. The checkpoint writes it (`history_csv`);
figures and the log step read it (`read_history`), without importing torch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from aelab.core.errors import AelabError
from aelab.core.paths import HISTORY, model_dir

HISTORY_COLUMNS = {"epoch", "train_loss", "val_loss", "val_mse"}  # what every fit reports


def history_csv(history: list[dict[str, float]]) -> str:
    """The loss history as history.csv holds it: an `epoch` column, then the losses."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()


def read_history(folder: str | Path) -> list[dict[str, float]]:
    """The loss history of the checkpoint in `folder`, one row per epoch, as `fit` returned
    it (the epoch an int, every loss a float: written back, the same text). A missing,
    damaged or incomplete file is one AelabError naming it and the fix."""
    path = Path(folder) / HISTORY
    fix = restore_hint(Path(folder))
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; {fix}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise AelabError(f"{path}: unreadable ({error}); {fix}") from None
    try:
        history = [{key: int(value) if key == "epoch" else float(value)
                    for key, value in row.items()} for row in rows]  # fmt: skip
    except (TypeError, ValueError) as error:  # a row cut short or a cell that is no number
        raise AelabError(f"{path}: unreadable ({error}); {fix}") from None
    if not history or not set(history[0]) >= HISTORY_COLUMNS:
        raise AelabError(f"{path}: no epochs or no {sorted(HISTORY_COLUMNS)} columns; {fix}")
    return history


def restore_hint(folder: Path) -> str:
    """How to get a checkpoint folder models/<variant>/seed_<k>/ back (from the project
    root, wherever the folder is)."""
    variant = folder.parent.name
    return f"run `dvc repro -f train@{variant}` (or `dvc checkout {model_dir(variant)}`)"
