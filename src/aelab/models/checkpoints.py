"""A trained network on disk: models/<variant>/seed_<k>/ with the weights, the config and the
history (its format: aelab.data.history).

The weights are a plain state dict, loaded with `torch.load(weights_only=True)`, so a file
carrying pickled code is refused rather than run. The directory appears atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from aelab.core.errors import AelabError
from aelab.core.io import atomic_folder, file_sha256
from aelab.core.params import VARIANT_CONFIGS, VariantConfig
from aelab.core.paths import CONFIG, HISTORY, WEIGHTS
from aelab.data.history import history_csv, restore_hint
from aelab.models import LatentModel, build_model


def save_checkpoint(
    folder: str | Path, name: str, model: LatentModel, history: list[dict[str, float]]
) -> None:
    """Write weights, resolved config and loss history into `folder`, which appears whole
    or not at all (aelab.core.io.atomic_folder)."""
    with atomic_folder(folder) as staging:
        state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
        try:
            torch.save(state, staging / WEIGHTS)
        except RuntimeError as error:  # torch's own writer failed: a full disk, say
            reason = " ".join(str(error).split())[:200]
            raise AelabError(f"{folder}: writing the weights failed ({reason})") from None
        # torch.load does not check its zip's CRCs: a damaged file could load as other weights.
        checksum = file_sha256(staging / WEIGHTS)
        config = {"name": name, "weights_sha256": checksum, **model.config.model_dump()}
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (staging / HISTORY).write_text(history_csv(history))


def load_checkpoint(
    folder: str | Path, device: torch.device | str = "cpu", fix: str | None = None
) -> LatentModel:
    """Rebuild a trained network from its folder (models/<variant>/seed_<k>/); any bad file
    is one AelabError naming it and `fix` (by default: retrain the variant)."""
    folder = Path(folder)
    fix = fix or restore_hint(folder)
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
