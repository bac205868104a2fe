"""A trained network on disk: models/<variant>/seed_<k>/ with the weights, the config and the
history.

The weights are a plain state dict, loaded with `torch.load(weights_only=True)`, so a file
carrying pickled code is refused rather than run. The directory appears atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from aelab.core.errors import AelabError
from aelab.core.io import atomic_folder, file_sha256
from aelab.core.params import VARIANT_CONFIGS, VariantConfig
from aelab.core.paths import CONFIG, HISTORY, WEIGHTS
from aelab.models import LatentModel, build_model

HISTORY_COLUMNS = {"epoch", "train_loss", "val_loss", "val_mse"}  # what every fit reports


def save_checkpoint(
    folder: str | Path, name: str, model: LatentModel, history: list[dict[str, float]]
) -> None:
    """Write weights, resolved config and loss history into `folder`, which appears whole
    or not at all (aelab.core.io.atomic_folder)."""
    with atomic_folder(folder) as staging:
        state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
        torch.save(state, staging / WEIGHTS)
        # torch.load does not check its zip's CRCs: a damaged file could load as other weights.
        checksum = file_sha256(staging / WEIGHTS)
        config = {"name": name, "weights_sha256": checksum, **model.config.model_dump()}
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (staging / HISTORY).write_text(history_csv(history))


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
    fix = _retrain(Path(folder))
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


def _retrain(folder: Path) -> str:
    """How to get a checkpoint folder models/<variant>/seed_<k>/ back."""
    return f"run `dvc repro -f train@{folder.parent.name}` (or `dvc checkout {folder.parent}`)"


def load_checkpoint(
    folder: str | Path, device: torch.device | str = "cpu", fix: str | None = None
) -> LatentModel:
    """Rebuild a trained network from its folder (models/<variant>/seed_<k>/); any bad file
    is one AelabError naming it and `fix` (by default: retrain the variant)."""
    folder = Path(folder)
    fix = fix or _retrain(folder)
    config, checksum = _read_config(folder / CONFIG, fix)
    model = build_model(config)
    try:
        state = torch.load(folder / WEIGHTS, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError:
        raise AelabError(f"{folder / WEIGHTS}: file not found; {fix}") from None
    except Exception as error:  # unpickling, zip and shape errors all mean "not our weights"
        reason = " ".join(str(error).split())[:200]
        raise AelabError(f"{folder / WEIGHTS}: not a valid state dict ({reason}); {fix}") from None
    if file_sha256(folder / WEIGHTS) != checksum:
        raise AelabError(
            f"{folder / WEIGHTS}: its sha256 is not the one in {CONFIG} "
            f"(damaged or replaced); {fix}"
        )
    return model.to(device).eval()


def _read_config(path: Path, fix: str) -> tuple[VariantConfig, str]:
    """The variant's config and the sha256 its weights had when they were saved."""
    try:
        raw = json.loads(path.read_text())
        raw.pop("name")
        checksum = raw.pop("weights_sha256")
        return VARIANT_CONFIGS[raw["kind"]].model_validate(raw), checksum
    except FileNotFoundError:
        raise AelabError(f"{path}: file not found; {fix}") from None
    except Exception as error:  # JSON, missing keys, validation: all "unreadable"
        reason = " ".join(str(error).split())[:200]
        raise AelabError(f"{path}: unreadable ({reason}); {fix}") from None
